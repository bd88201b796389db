"""Calendar quarters, the programme's reporting period ("2026-Q3")."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from shared.inputs import EARLIEST_YEAR, LATEST_YEAR

QUARTER_PATTERN = r"^[0-9]{4}-Q[1-4]$"  # ASCII digits only: \d takes any script's digits
_QUARTER = re.compile(QUARTER_PATTERN)
_MONTH = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])$")


@dataclass(frozen=True, order=True)
class Quarter:
    year: int
    number: int

    @classmethod
    def parse(cls, text: str) -> Quarter:
        """A quarter as given ("2026-Q3"), in the years a date can bound: the range it ends
        stops on the next quarter's first day, which year 9999's fourth quarter has not."""
        if not _QUARTER.fullmatch(text):
            raise ValueError(f"{text!r} is not a quarter like 2026-Q3")
        year = int(text[:4])
        if not EARLIEST_YEAR <= year < LATEST_YEAR:
            raise ValueError(
                f"{text!r} is outside the quarters {EARLIEST_YEAR}-Q1 to {LATEST_YEAR - 1}-Q4"
            )
        return cls(year, int(text[-1]))

    @classmethod
    def of(cls, day: date) -> Quarter:
        return cls(day.year, (day.month - 1) // 3 + 1)

    @property
    def first_day(self) -> date:
        return date(self.year, 3 * self.number - 2, 1)

    @property
    def previous(self) -> Quarter:
        if self.number == 1:
            return Quarter(self.year - 1, 4)
        return Quarter(self.year, self.number - 1)

    @property
    def next(self) -> Quarter:
        if self.number == 4:
            return Quarter(self.year + 1, 1)
        return Quarter(self.year, self.number + 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-Q{self.number}"


def quarter_of_period(period: str) -> str:
    """The quarter of an incentive period: programs book by quarter ("2026-Q3") or by month
    ("2026-08", configurable in incentives); a month belongs to its quarter."""
    if _QUARTER.fullmatch(period):
        return period
    month = _MONTH.fullmatch(period)
    if month is None:
        raise ValueError(f"incentive period {period!r} is neither a quarter nor a month")
    return str(Quarter(int(month[1]), (int(month[2]) - 1) // 3 + 1))


@dataclass(frozen=True)
class QuarterRange:
    """Quarters `first` to `last`, both included; an open end is unbounded."""

    first: Quarter | None = None
    last: Quarter | None = None

    def __post_init__(self) -> None:
        if self.first is not None and self.last is not None and self.last < self.first:
            raise ValueError(f"to_quarter {self.last} is before from_quarter {self.first}")

    @property
    def starts(self) -> date | None:
        """The first day in the range (None: no lower bound)."""
        return self.first.first_day if self.first is not None else None

    @property
    def ends(self) -> date | None:
        """The first day after the range (None: no upper bound)."""
        return self.last.next.first_day if self.last is not None else None
