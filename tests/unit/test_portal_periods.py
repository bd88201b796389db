"""The statement periods the earnings page offers are in the form the incentive programme books
(pages.recent_periods, from incentives' current period): quarters for a quarterly programme,
months for a monthly one, over the same two years; every one a period incentives accepts."""

from __future__ import annotations

from typing import Literal

import pytest

from services.incentives.domain.quarters import check_period
from services.portal.domain import pages


def test_a_quarterly_programme_is_offered_quarters() -> None:
    offered = pages.recent_periods("2026-Q1")
    assert offered[:3] == ["2026-Q1", "2025-Q4", "2025-Q3"]
    assert (len(offered), offered[-1]) == (8, "2024-Q2")


def test_a_monthly_programme_is_offered_months() -> None:
    offered = pages.recent_periods("2026-02")
    assert offered[:4] == ["2026-02", "2026-01", "2025-12", "2025-11"]
    assert (len(offered), offered[-1]) == (24, "2024-03")
    assert pages.recent_periods("2026-11", years=1)[-1] == "2025-12"


@pytest.mark.parametrize(("current", "form"), [("2026-11", "month"), ("2026-Q4", "quarter")])
def test_every_period_offered_is_one_incentives_accepts(
    current: str, form: Literal["month", "quarter"]
) -> None:
    for period in pages.recent_periods(current):
        assert check_period(period, form) == period


@pytest.mark.parametrize("current", ["2026", "2026-13", "2026-Q5", "2026-W48", "", "2026-11 "])
def test_a_period_in_neither_form_is_refused(current: str) -> None:
    with pytest.raises(ValueError, match="is neither a quarter nor a month"):
        pages.recent_periods(current)
