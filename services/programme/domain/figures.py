"""How a figure is computed from the facts: shares, percentiles, return per dollar. Money stays
Decimal throughout; a ratio is rounded once, at the end, half to even."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

RATIO_PLACES = Decimal("0.0001")


def ratio(part: Decimal | int, whole: Decimal | int) -> Decimal | None:
    """part / whole to four places (None when there is no whole to divide by)."""
    if whole == 0:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(RATIO_PLACES, rounding=ROUND_HALF_EVEN)


def above(part: int, whole: int, target: Decimal) -> bool | None:
    """Whether part / whole is above `target`, exactly (None when there is no whole). Found in
    review: comparing the share rounded to four places read 70.0003% as not above 70%."""
    if whole == 0:
        return None
    return Decimal(part) > target * whole


def percentile(values: Sequence[float], p: int) -> float | None:
    """The nearest-rank percentile: the smallest value with at least p% of values at or below
    it (an observed value, never an interpolation). None for no values."""
    if not values:
        return None
    if not 0 < p <= 100:
        raise ValueError("a percentile is between 1 and 100")
    ordered = sorted(values)
    # The rank ceil(p% of n) in integers: p / 100 * n in floats gave 14.000000000000002 for
    # p=56, n=25, one rank (a whole value) too high.
    rank = -(-p * len(ordered) // 100)
    return ordered[rank - 1]


@dataclass(frozen=True)
class Durations:
    """Waits in hours: how many, p50 and p90."""

    count: int
    p50_hours: float | None
    p90_hours: float | None

    @classmethod
    def of_seconds(cls, seconds: Sequence[float]) -> Durations:
        hours = [s / 3600 for s in seconds]
        p50, p90 = percentile(hours, 50), percentile(hours, 90)
        return cls(
            len(hours),
            round(p50, 4) if p50 is not None else None,
            round(p90, 4) if p90 is not None else None,
        )


def return_per_dollar(revenue: Decimal, spend: Decimal) -> Decimal | None:
    """Attributed revenue per unit of incentive and MDF spend (None with nothing spent)."""
    return ratio(revenue, spend)
