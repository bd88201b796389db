"""The ledger's periods (pure): months or quarters, as the programme books them; the period a
statement or the payouts view is asked for; earnings folded into calendar quarters, each with
what was earned, taken back and the net.

Payouts move money out of the balance but are not earnings: they are left out of the quarters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

from services.incentives.domain.earnings import ZERO, EntryType
from services.incentives.domain.ledger import EARNING_TYPES
from shared.inputs import EARLIEST_YEAR, LATEST_YEAR

_MONTH = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])$")
_QUARTER = re.compile(r"^([0-9]{4})-Q([1-4])$")


def quarter_of_period(period: str) -> str | None:
    """`2026-11` -> `2026-Q4`; a quarter stays itself; anything else is None."""
    if _QUARTER.fullmatch(period):
        return period
    month = _MONTH.fullmatch(period)
    if month is None:
        return None
    return f"{month.group(1)}-Q{(int(month.group(2)) - 1) // 3 + 1}"


def check_period(period: str, booked_by: Literal["month", "quarter"]) -> str:
    """`period` unchanged if a ledger booked by `booked_by` can hold it: in that form (every
    entry carries its period in the programme's form, and a statement's opening balance orders
    periods as text, which holds only within one form: 2026-12 sorts before 2026-Q1), in a year
    of 1900-9999 (the dates the platform takes). Else a ValueError saying what is expected."""
    quarter, month = _QUARTER.fullmatch(period), _MONTH.fullmatch(period)
    found = quarter or month
    if found is None:
        raise ValueError(f"period {period[:16]!r} is neither a quarter (YYYY-Qn) nor a month")
    if not EARLIEST_YEAR <= int(found.group(1)) <= LATEST_YEAR:
        raise ValueError(
            f"period {period}: the year must lie between {EARLIEST_YEAR} and {LATEST_YEAR}"
        )
    if booked_by == "quarter" and month is not None:
        raise ValueError(
            f"period {period} is a month, but the programme books by quarter: ask for a "
            f"quarter (YYYY-Qn), e.g. {quarter_of_period(period)}"
        )
    if booked_by == "month" and quarter is not None:
        first = (int(quarter.group(2)) - 1) * 3 + 1
        raise ValueError(
            f"period {period} is a quarter, but the programme books by month: ask for a "
            f"month (YYYY-MM), e.g. {quarter.group(1)}-{first:02d}"
        )
    return period


def last_quarters(today: date, count: int) -> list[str]:
    """The `count` calendar quarters ending with today's, oldest first."""
    year, quarter = today.year, (today.month - 1) // 3 + 1
    found = []
    for _ in range(count):
        found.append(f"{year}-Q{quarter}")
        year, quarter = (year, quarter - 1) if quarter > 1 else (year - 1, 4)
    return list(reversed(found))


@dataclass(frozen=True)
class QuarterEarnings:
    quarter: str
    earned: Decimal  # accruals, kickers and SPIFFs
    reversed: Decimal  # taken back (negative)

    @property
    def net(self) -> Decimal:
        return self.earned + self.reversed


def by_quarter(
    totals: Iterable[tuple[str, str, Decimal]], quarters: list[str]
) -> list[QuarterEarnings]:
    """(period, entry type, total) rows summed into each of `quarters` (zero where nothing was
    booked); rows outside them are left out."""
    earned = dict.fromkeys(quarters, ZERO)
    taken = dict.fromkeys(quarters, ZERO)
    for period, entry_type, total in totals:
        quarter = quarter_of_period(period)
        if quarter not in earned:
            continue
        if entry_type in EARNING_TYPES:
            earned[quarter] += total
        elif entry_type == EntryType.REVERSAL:
            taken[quarter] += total
    return [QuarterEarnings(q, earned[q], taken[q]) for q in quarters]
