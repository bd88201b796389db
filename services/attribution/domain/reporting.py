"""What a partner's revenue report may ask for: a period to group by and an optional range of
close dates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from shared.errors import Unprocessable


class Period(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


@dataclass(frozen=True)
class RevenueQuery:
    period: Period
    since: date | None
    until: date | None

    @classmethod
    def parse(cls, period: str, since: date | None, until: date | None) -> RevenueQuery:
        """Raises Unprocessable for an unknown period or a range that ends before it starts."""
        if period not in {p.value for p in Period}:
            raise Unprocessable(f"period must be one of {', '.join(Period)}, not {period!r}")
        if since and until and since > until:
            raise Unprocessable("since is after until")
        return cls(Period(period), since, until)
