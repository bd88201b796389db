"""Campaign rules: the state follows the dates unless cancelled, what may be cancelled, and
results per currency with the return per dollar of MDF spent."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.programme.domain.campaigns import (
    CampaignState,
    CurrencyFigures,
    by_currency,
    check_cancellable,
    check_dates,
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
