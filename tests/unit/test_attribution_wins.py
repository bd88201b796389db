"""The rules of a won deal an outside probe found wanting: the window ends at the win, not at the
close day's end; a partner out of the programme when the deal was won gets no share (withheld,
not redistributed); a won deal without an amount holds no credit and is parked."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from services.attribution.domain.config import AttributionConfig, ModelName
from services.attribution.domain.deals import (
    DealState,
    settlement_trigger,
    wanted_attribution,
    won_at,
)
from services.attribution.domain.models import Touchpoint, TouchpointKind, attribute, in_window
from services.attribution.domain.parking import NO_AMOUNT, Parked, Standing, out_when_won
from services.attribution.domain.touchpoints import crm_counted_at
from shared.events.attribution import CreditKind
from shared.events.crm import DealStatus
from shared.events.partners import PartnerStatus

CLOSE = date(2026, 3, 31)
WON_AT = datetime(2026, 3, 31, 10, tzinfo=UTC)  # the win, mid-morning of the close day
LAST_TOUCH = AttributionConfig(model=ModelName.LAST_TOUCH)


def tp(touchpoint_id: str, partner: str, kind: TouchpointKind, at: datetime) -> Touchpoint:
    return Touchpoint(touchpoint_id, partner, kind, at)


COSELL = tp("t-cosell", "p-cosell", TouchpointKind.CO_SELL_MEETING, WON_AT - timedelta(hours=1))
GRAB = tp("t-grab", "p-src", TouchpointKind.IMPLEMENTATION, WON_AT + timedelta(hours=1))


def test_a_touchpoint_after_the_win_is_left_out_even_on_the_close_day() -> None:
    kept, excluded = in_window(LAST_TOUCH, [COSELL, GRAB], CLOSE, WON_AT)
    assert kept == [COSELL]
    assert excluded == [(GRAB, f"after the deal was won at {WON_AT.isoformat()} (+0d)")]
    at_the_win = tp("t-at", "p-src", TouchpointKind.TECHNICAL_VALIDATION, WON_AT)
    assert in_window(LAST_TOUCH, [at_the_win], CLOSE, WON_AT)[0] == []

    result = attribute(LAST_TOUCH, [COSELL, GRAB], Decimal(20000), "USD", CLOSE, WON_AT)
    assert [(line.partner_id, line.amount) for line in result.lines] == [
        ("p-cosell", Decimal("20000.00"))
    ]


def test_post_close_days_count_from_the_win_and_a_later_win_leaves_the_close_day() -> None:
    grace = AttributionConfig(model=ModelName.LAST_TOUCH, post_close_days=1)
    assert in_window(grace, [GRAB], CLOSE, WON_AT)[0] == [GRAB]
    late = tp("t-late", "p-src", TouchpointKind.IMPLEMENTATION, WON_AT + timedelta(days=1))
    assert in_window(grace, [late], CLOSE, WON_AT)[0] == []
    # a deal won after its close day (a backdated close date): the close day's end stands
    won_later = datetime(2026, 4, 3, tzinfo=UTC)
    evening = tp("t-eve", "p-src", TouchpointKind.REFERRAL, datetime(2026, 4, 1, 1, tzinfo=UTC))
    _, excluded = in_window(LAST_TOUCH, [evening], CLOSE, won_later)
    assert excluded == [(evening, "after the close date 2026-03-31 (+0d)")]


def test_the_crm_named_partner_counts_before_the_win() -> None:
    named_after = WON_AT + timedelta(seconds=5)  # a deal first seen won
    assert crm_counted_at(named_after, CLOSE, WON_AT) == WON_AT - timedelta(seconds=1)
    assert crm_counted_at(COSELL.occurred_at, CLOSE, WON_AT) == COSELL.occurred_at


def test_a_deal_is_won_by_the_snapshot_that_made_it_won_and_anew_after_a_reopen() -> None:
    later = WON_AT + timedelta(days=2)
    assert won_at(None, None, DealStatus.WON, WON_AT) == WON_AT
    assert won_at(DealStatus.OPEN, None, DealStatus.WON, WON_AT) == WON_AT
    assert won_at(DealStatus.WON, WON_AT, DealStatus.WON, later) == WON_AT  # an amount change
    assert won_at(DealStatus.WON, WON_AT, DealStatus.OPEN, later) is None  # reopened
    assert won_at(DealStatus.LOST, None, DealStatus.WON, later) == later


LINEAR = AttributionConfig(model=ModelName.LINEAR)
WON = DealState(2, DealStatus.WON, False, Decimal(30000), "USD", CLOSE, None, WON_AT)
SOURCED = tp("t-reg", "p-src", TouchpointKind.SOURCED_REGISTRATION, WON_AT - timedelta(days=9))
THIRD = tp("t-ref", "p-ref", TouchpointKind.REFERRAL, WON_AT - timedelta(days=3))


def test_a_partner_expelled_before_the_win_gets_no_share_and_no_one_gets_it() -> None:
    before = Standing(PartnerStatus.EXPELLED, WON_AT - timedelta(minutes=5))
    wanted, parked = wanted_attribution(LINEAR, WON, [SOURCED, COSELL, THIRD], {"p-src": before})
    assert wanted is not None
    assert [(line.partner_id, line.amount) for line in wanted.lines] == [
        ("p-cosell", Decimal("10000.00")),
        ("p-ref", Decimal("10000.00")),
    ]
    assert parked == (
        Parked(
            "p-src",
            CreditKind.SOURCED,
            Decimal("10000.00"),
            "USD",
            f"partner p-src was expelled (since {before.since.isoformat()}) when the deal was "
            f"won at {WON_AT.isoformat()}: its sourced share (33.33%, 10000.00 USD) is "
            "withheld, not given to the deal's other partners",
        ),
    )


def test_only_a_partner_out_of_the_programme_at_the_win_is_withheld() -> None:
    earlier, later = WON_AT - timedelta(days=1), WON_AT + timedelta(seconds=1)
    assert out_when_won(Standing(PartnerStatus.EXPELLED, earlier), WON_AT)
    assert out_when_won(Standing(PartnerStatus.REJECTED, earlier), WON_AT)
    assert out_when_won(Standing(PartnerStatus.EXPELLED, WON_AT), WON_AT)
    assert out_when_won(Standing(PartnerStatus.EXPELLED, later), None)  # win time unknown
    assert not out_when_won(Standing(PartnerStatus.EXPELLED, later), WON_AT)  # after the win
    for status in (PartnerStatus.ACTIVE, PartnerStatus.GRACE, PartnerStatus.SUSPENDED):
        assert not out_when_won(Standing(status, earlier), WON_AT)
    assert not out_when_won(None, WON_AT)  # not heard of yet
    after = {"p-src": Standing(PartnerStatus.EXPELLED, later)}
    wanted, parked = wanted_attribution(LINEAR, WON, [SOURCED, COSELL], after)
    assert wanted is not None
    assert parked == ()
    assert {line.partner_id for line in wanted.lines} == {"p-src", "p-cosell"}


def test_a_won_deal_without_an_amount_holds_nothing_and_is_parked_saying_why() -> None:
    cleared = DealState(3, DealStatus.WON, False, None, "USD", CLOSE, None, WON_AT)
    assert wanted_attribution(LINEAR, cleared, [SOURCED]) == (
        None,
        (Parked(None, None, None, None, NO_AMOUNT),),
    )
    assert settlement_trigger(cleared, "revision 3") == f"revision 3 ({NO_AMOUNT})"
    lost = DealState(4, DealStatus.LOST, False, None, "USD", CLOSE, None, None)
    assert wanted_attribution(LINEAR, lost, [SOURCED]) == (None, ())
