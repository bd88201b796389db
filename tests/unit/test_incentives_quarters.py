"""Earnings by quarter: the ledger's periods folded into calendar quarters, to the cent."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from services.incentives.domain.quarters import by_quarter, last_quarters, quarter_of_period


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
