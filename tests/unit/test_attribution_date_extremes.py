"""Attribution's rules at the ends of the calendar. deals.opportunities may come from any
producer, and a close date is any `date`: the end of 9999-12-31, a lock period after it or a
lookback before year 1 lie outside `datetime`'s range. The rules saturate there (the range's end
stands for an instant past it, `models.days_after`), so no snapshot is dead-lettered with an
OverflowError; a won deal is credited when its close date is one a credit can carry (1900-01-01
to 9999-12-30) and parked with that reason otherwise."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.attribution.domain.config import AttributionConfig, ModelName
from services.attribution.domain.corrections import HeldCredit, lock_date, settle
from services.attribution.domain.models import (
    CREDITED_CLOSE_DATES,
    EARLIEST,
    LATEST,
    CannotAttribute,
    Touchpoint,
    TouchpointKind,
    attribute,
    close_instant,
    days_after,
    in_window,
)
from services.attribution.domain.touchpoints import crm_counted_at
from shared.events.attribution import CreditKind

SOURCED, REFERRAL = TouchpointKind.SOURCED_REGISTRATION, TouchpointKind.REFERRAL
EVERY_MODEL = list(ModelName)


def tp(tid: str, partner: str, at: datetime, kind: TouchpointKind = REFERRAL) -> Touchpoint:
    return Touchpoint(tid, partner, kind, at)


def test_instants_past_the_calendar_saturate_at_its_ends() -> None:
    assert close_instant(date.max) == LATEST
    assert close_instant(date.min) == datetime(1, 1, 2, tzinfo=UTC)
    assert close_instant(date(2026, 3, 31)) == datetime(2026, 4, 1, tzinfo=UTC)
    assert days_after(close_instant(date.min), -366) == EARLIEST
    assert days_after(close_instant(date(9999, 12, 1)), 90) == LATEST
    # a policy's day count past what timedelta holds saturates too
    assert days_after(close_instant(date(2026, 3, 31)), 10**12) == LATEST
    assert days_after(close_instant(date(2026, 3, 31)), -(10**12)) == EARLIEST


@pytest.mark.parametrize("model", EVERY_MODEL)
def test_a_deal_won_on_the_last_day_a_credit_can_carry_is_credited(model: ModelName) -> None:
    close = date(9999, 12, 30)
    journey = [
        tp("t1", "alpha", datetime(2026, 1, 31, tzinfo=UTC), SOURCED),
        tp("t2", "beta", datetime(9999, 6, 1, tzinfo=UTC)),
        tp("t3", "gamma", datetime(9999, 12, 30, 12, tzinfo=UTC)),
    ]
    result = attribute(AttributionConfig(model=model), journey, Decimal("1000"), "USD", close)
    assert sum(line.amount for line in result.lines) == Decimal("1000.00")
    # the close date's own day counts; the sourcing registration ignores the lookback
    assert [t.touchpoint_id for t in result.considered] == ["t1", "t2", "t3"]


@pytest.mark.parametrize("close", [date.max, date.min, date(1899, 12, 31)])
def test_a_deal_won_on_a_day_no_credit_can_carry_is_refused_with_the_reason(close: date) -> None:
    """date.max is Postgres' infinity through asyncpg (no quarter, no difference): credits
    closing then made programme's KPIs and a partner's revenue answer 500 (found from outside)."""
    journey = [tp("t1", "alpha", datetime(2026, 1, 31, tzinfo=UTC), SOURCED)]
    with pytest.raises(CannotAttribute, match=f"close date {close} is not one a credit can carry"):
        attribute(AttributionConfig(), journey, Decimal("1000"), "USD", close)


def test_the_windows_reach_the_ends_of_the_calendar() -> None:
    wide = AttributionConfig(lookback_days=36_500, post_close_days=36_500)
    first = tp("first", "alpha", EARLIEST)
    last = tp("last", "beta", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
    for close, counted, left_out in (
        (date(1, 6, 1), "first", "last"),
        (date(9999, 6, 1), "last", "first"),
    ):
        kept, excluded = in_window(wide, [first, last], close)
        assert [t.touchpoint_id for t in kept] == [counted]
        assert [t.touchpoint_id for t, _ in excluded] == [left_out]


def test_the_crm_partner_of_a_deal_expected_to_close_at_the_calendar_end_counts_when_seen() -> None:
    seen = datetime(2026, 5, 1, 9, tzinfo=UTC)
    assert crm_counted_at(seen, date.max) == seen
    assert crm_counted_at(seen, date.min) == datetime(1, 1, 1, 23, 59, 59, tzinfo=UTC)


def held(close: date) -> tuple[HeldCredit, ...]:
    amount = Decimal("10.00")
    return (HeldCredit("c1", "alpha", CreditKind.INFLUENCED, amount, "USD", amount, "USD", close),)


def test_a_lock_period_past_the_calendar_never_ends() -> None:
    config = AttributionConfig(lock_period_days=90)
    assert lock_date(config, date.max) == LATEST
    assert lock_date(config, date(9999, 12, 1)) == LATEST
    assert lock_date(config, date.min) == datetime(1, 4, 2, tzinfo=UTC)
    late = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    moved = settle(config, held(date.max), None, late, "revision 2: lost")
    assert (moved.locked, [c.credit_id for c in moved.reverse]) == (False, ["c1"])
    final = settle(config, held(date.min), None, datetime(2026, 1, 1, tzinfo=UTC), "lost")
    assert (final.locked, final.reverse) == (True, ())
    assert "credits are final since 0001-04-02T00:00:00+00:00" in final.explanation


instants = st.datetimes(timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(
    close=st.dates(),
    moments=st.lists(instants, min_size=1, max_size=6),
    model=st.sampled_from(EVERY_MODEL),
    lookback=st.integers(0, 10**10),
    post_close=st.integers(0, 10**10),
    lock=st.integers(0, 10**10),
    at=instants,
)
def test_no_close_date_and_no_policy_overflows_the_rules(
    close: date,
    moments: list[datetime],
    model: ModelName,
    lookback: int,
    post_close: int,
    lock: int,
    at: datetime,
) -> None:
    config = AttributionConfig(
        model=model, lookback_days=lookback, post_close_days=post_close, lock_period_days=lock
    )
    journey = [
        tp(f"t{i}", f"p{i % 3}", moment, SOURCED if i == 0 else REFERRAL)
        for i, moment in enumerate(moments)
    ]
    if CREDITED_CLOSE_DATES[0] <= close <= CREDITED_CLOSE_DATES[1]:
        result = attribute(config, journey, Decimal("999.99"), "USD", close)
        assert sum(line.amount for line in result.lines) in (Decimal(0), Decimal("999.99"))
        assert all(line.amount >= 0 for line in result.lines)
    else:
        with pytest.raises(CannotAttribute):
            attribute(config, journey, Decimal("999.99"), "USD", close)
        result = None
    assert EARLIEST <= lock_date(config, close) <= LATEST
    settle(config, held(close), result, at, "revision 2")
    assert all(crm_counted_at(moment, close) <= moment for moment in moments)
