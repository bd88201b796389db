"""The ledger's periods: the form a period is asked in, and earnings folded into calendar
quarters, to the cent."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Literal

import pytest

from services.incentives.domain.quarters import (
    by_quarter,
    check_period,
    last_quarters,
    quarter_of_period,
)


def test_periods_fold_into_calendar_quarters() -> None:
    assert quarter_of_period("2026-11") == "2026-Q4"
    assert quarter_of_period("2026-01") == "2026-Q1"
    assert quarter_of_period("2026-Q3") == "2026-Q3"
    assert quarter_of_period("2026-13") is None
    assert quarter_of_period("soon") is None
    # ASCII digits and nothing after (\d took any script's digits, $ a trailing newline)
    assert quarter_of_period("2026-Q3\n") is None
    assert quarter_of_period("\uff12\uff10\uff12\uff16-11") is None


def test_the_last_quarters_run_oldest_first_across_years() -> None:
    assert last_quarters(date(2026, 2, 10), 3) == ["2025-Q3", "2025-Q4", "2026-Q1"]
    assert last_quarters(date(2026, 12, 31), 1) == ["2026-Q4"]


def test_earned_and_taken_back_sum_per_quarter_and_payouts_are_not_earnings() -> None:
    rows = [
        ("2026-10", "accrual", Decimal("100.10")),
        ("2026-11", "kicker", Decimal("20.01")),
        ("2026-Q4", "spiff", Decimal("5.00")),
        ("2026-12", "reversal", Decimal("-20.01")),
        ("2026-12", "payout", Decimal("-50.00")),
        ("2026-08", "accrual", Decimal("7.77")),
        ("2024-03", "accrual", Decimal("999")),  # before the quarters asked for
    ]
    found = by_quarter(rows, ["2026-Q2", "2026-Q3", "2026-Q4"])
    assert [(q.quarter, q.earned, q.reversed, q.net) for q in found] == [
        ("2026-Q2", Decimal(0), Decimal(0), Decimal(0)),
        ("2026-Q3", Decimal("7.77"), Decimal(0), Decimal("7.77")),
        ("2026-Q4", Decimal("125.11"), Decimal("-20.01"), Decimal("105.10")),
    ]


def test_a_period_is_asked_in_the_form_the_programme_books_in_a_year_1900_to_9999() -> None:
    assert check_period("2026-Q4", "quarter") == "2026-Q4"
    assert check_period("2026-11", "month") == "2026-11"
    assert check_period("1900-Q1", "quarter") == "1900-Q1"
    assert check_period("9999-12", "month") == "9999-12"
    refused: dict[tuple[str, Literal["month", "quarter"]], str] = {
        ("2026-12", "quarter"): (
            "period 2026-12 is a month, but the programme books by quarter: ask for a quarter "
            "(YYYY-Qn), e.g. 2026-Q4"
        ),
        ("2026-Q3", "month"): (
            "period 2026-Q3 is a quarter, but the programme books by month: ask for a month "
            "(YYYY-MM), e.g. 2026-07"
        ),
        ("0000-01", "quarter"): "period 0000-01: the year must lie between 1900 and 9999",
        ("0000-Q1", "quarter"): "period 0000-Q1: the year must lie between 1900 and 9999",
        ("1899-12", "month"): "period 1899-12: the year must lie between 1900 and 9999",
        ("2026-13", "month"): "period '2026-13' is neither a quarter (YYYY-Qn) nor a month",
        ("2026-Q4\n", "quarter"): (
            "period '2026-Q4\\n' is neither a quarter (YYYY-Qn) nor a month"
        ),
    }
    for (period, booked_by), message in refused.items():
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            check_period(period, booked_by)
