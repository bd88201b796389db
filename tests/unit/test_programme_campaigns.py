"""Campaign rules: the state follows the dates unless cancelled, what may be cancelled, and
results per currency with the return per dollar of MDF spent."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.programme.domain.campaigns import (
    CampaignPlan,
    CampaignState,
    CurrencyFigures,
    by_currency,
    check_cancellable,
    check_dates,
    check_edit,
    state_of,
)

D = Decimal
START, END = date(2026, 11, 1), date(2026, 11, 30)


@pytest.mark.parametrize(
    ("today", "cancelled", "state"),
    [
        (date(2026, 10, 31), False, CampaignState.PLANNED),
        (START, False, CampaignState.RUNNING),
        (END, False, CampaignState.RUNNING),
        (date(2026, 12, 1), False, CampaignState.COMPLETED),
        (date(2026, 11, 15), True, CampaignState.CANCELLED),
        (date(2026, 12, 1), True, CampaignState.CANCELLED),
    ],
)
def test_the_state_follows_the_dates_unless_cancelled(
    today: date, cancelled: bool, state: CampaignState
) -> None:
    assert state_of(START, END, cancelled=cancelled, today=today) is state


def test_only_a_campaign_not_ended_can_be_cancelled() -> None:
    check_cancellable(CampaignState.PLANNED, "c")
    check_cancellable(CampaignState.RUNNING, "c")
    for state in (CampaignState.COMPLETED, CampaignState.CANCELLED):
        with pytest.raises(ValueError, match=f"campaign c is {state.value}: it cannot be"):
            check_cancellable(state, "c")


def test_inverted_dates_are_refused() -> None:
    with pytest.raises(ValueError, match="ends_on 2026-10-31 is before starts_on 2026-11-01"):
        check_dates(START, date(2026, 10, 31))


def test_results_per_currency_and_the_return_per_dollar_spent() -> None:
    rows = by_currency(
        pipeline={"USD": D("300000.00"), "EUR": D("1000.00")},
        revenue={"USD": D("40000.00")},
        approved={"USD": D("1500.00")},
        reserved={"USD": D("500.00")},
        claimed={"USD": D("1000.00")},
    )
    assert rows == [
        CurrencyFigures("EUR", D("1000.00")),
        CurrencyFigures(
            "USD", D("300000.00"), D("40000.00"), D("1500.00"), D("500.00"), D("1000.00")
        ),
    ]
    assert rows[0].return_per_dollar is None  # nothing spent
    assert rows[1].return_per_dollar == D("40.0000")
    assert CurrencyFigures(
        "USD", attributed_revenue=D("1"), mdf_claimed=D("3")
    ).return_per_dollar == D("0.3333")


PLAN = CampaignPlan(START, END, frozenset({"p-1", "p-2"}))


def edit(
    state: CampaignState,
    today: date,
    budgeted: frozenset[str] = frozenset(),
    *,
    starts_on: date = START,
    ends_on: date = END,
    partner_ids: frozenset[str] = PLAN.partner_ids,
) -> None:
    wanted = CampaignPlan(starts_on, ends_on, partner_ids)
    check_edit("c", state, PLAN, wanted, budgeted=budgeted, today=today)


def test_a_planned_campaign_moves_its_dates_and_partners_within_bounds() -> None:
    before = date(2026, 10, 20)
    edit(CampaignState.PLANNED, before, starts_on=date(2026, 11, 5), ends_on=date(2026, 12, 5))
    edit(CampaignState.PLANNED, before, starts_on=before)  # from today on
    edit(CampaignState.PLANNED, before, partner_ids=frozenset({"p-1", "p-3"}))  # p-2 leaves
    with pytest.raises(ValueError, match="starts_on 2026-10-19 is in the past"):
        edit(CampaignState.PLANNED, before, starts_on=date(2026, 10, 19))
    with pytest.raises(ValueError, match="p-2 asked for MDF for campaign c: a partner with a"):
        edit(
            CampaignState.PLANNED,
            before,
            frozenset({"p-2"}),
            partner_ids=frozenset({"p-1"}),
        )


def test_a_running_campaign_keeps_its_start_and_its_partners_and_ends_today_at_the_earliest() -> (
    None
):
    today = date(2026, 11, 10)
    edit(CampaignState.RUNNING, today, ends_on=today)  # ends today
    edit(CampaignState.RUNNING, today, ends_on=date(2026, 12, 31))  # extended
    edit(CampaignState.RUNNING, today, partner_ids=frozenset({"p-1", "p-2", "p-3"}))  # joins
    with pytest.raises(ValueError, match="started on 2026-11-01: its first day cannot move"):
        edit(CampaignState.RUNNING, today, starts_on=date(2026, 11, 2))
    with pytest.raises(ValueError, match="ends_on 2026-11-09 is before today"):
        edit(CampaignState.RUNNING, today, ends_on=date(2026, 11, 9))
    with pytest.raises(ValueError, match=r"has started: its partners can join, not leave \(p-2\)"):
        edit(CampaignState.RUNNING, today, partner_ids=frozenset({"p-1"}))


def test_a_partner_moves_the_end_of_a_campaign_with_mdf_only_earlier() -> None:
    """Found in review: a partner moved its campaign's end a century out, and its approved
    budget's claim deadline (and reservation) followed."""
    today, later, earlier = date(2026, 11, 10), date(2126, 1, 1), date(2026, 11, 20)
    wanted, mdf = CampaignPlan(START, later, PLAN.partner_ids), frozenset({"p-1"})
    check_edit("c", CampaignState.RUNNING, PLAN, wanted, budgeted=mdf, today=today)  # a manager
    with pytest.raises(ValueError, match="MDF was asked for campaign c: its claims' deadline"):
        check_edit(
            "c", CampaignState.RUNNING, PLAN, wanted, budgeted=mdf, today=today, by_partner=True
        )
    shorter = CampaignPlan(START, earlier, PLAN.partner_ids)
    check_edit(
        "c", CampaignState.RUNNING, PLAN, shorter, budgeted=mdf, today=today, by_partner=True
    )
    no_mdf = frozenset[str]()
    check_edit(
        "c", CampaignState.RUNNING, PLAN, wanted, budgeted=no_mdf, today=today, by_partner=True
    )


def test_a_campaign_ended_or_cancelled_is_not_changed() -> None:
    for state in (CampaignState.COMPLETED, CampaignState.CANCELLED):
        with pytest.raises(ValueError, match=f"campaign c is {state.value}: it cannot be changed"):
            edit(state, date(2026, 12, 10), ends_on=date(2026, 12, 31))
