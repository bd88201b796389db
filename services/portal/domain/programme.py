"""The programme dashboard's figures from programme's KPI report, and the geometry of its
charts. Plain rules, no I/O."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

ZERO = Decimal(0)
PERCENT = Decimal("0.1")
# A chart's item: label, value, its currency, and the words that say it all.
ChartItem = tuple[str, Decimal, str, str]


@dataclass(frozen=True)
class RevenueCell:
    quarter: str
    tier: str
    currency: str
    sourced: Decimal
    influenced: Decimal

    @property
    def total(self) -> Decimal:
        return self.sourced + self.influenced


def revenue_by_tier_and_quarter(rows: Iterable[Mapping[str, Any]]) -> list[RevenueCell]:
    """The KPI report's revenue rows (quarter, tier, type, region, currency) summed over type
    and region: one cell per quarter, tier and currency, oldest quarter first. Currencies are
    never added together."""
    cells: dict[tuple[str, str, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for row in rows:
        cell = cells[(row["quarter"], row["tier"], row["currency"])]
        cell[0] += Decimal(row["sourced"])
        cell[1] += Decimal(row["influenced"])
    return [RevenueCell(q, t, c, s, i) for (q, t, c), (s, i) in sorted(cells.items())]


def revenue_by_quarter(cells: Iterable[RevenueCell]) -> list[ChartItem]:
    """Chart items: each quarter's revenue in each currency, sourced and influenced together."""
    sums: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for cell in cells:
        totals = sums[(cell.quarter, cell.currency)]
        totals[0] += cell.sourced
        totals[1] += cell.influenced
    return [
        (f"{q} {c}", s + i, c, f"{s + i} {c} (sourced {s}, influenced {i})")
        for (q, c), (s, i) in sorted(sums.items())
    ]


def share_percent(part: int, whole: int) -> Decimal | None:
    """part / whole in percent with one decimal, from the counts themselves (found in review:
    the report's ratio, already rounded to four places, rounded again: 0.123496 showed 12.4%)."""
    if whole == 0:
        return None
    return (Decimal(part) * 100 / whole).quantize(PERCENT)


@dataclass(frozen=True)
class Decisions:
    """One kind of decision as the KPI report counts it (`automation.onboarding` or
    `automation.registrations`), in percent for the page."""

    decisions: int
    approved: int
    rejected: int
    automatic: int
    approval_rate: Decimal | None
    automatic_share: Decimal | None
    p50_hours: float | None
    p90_hours: float | None

    @property
    def manual(self) -> int:
        return self.decisions - self.automatic

    @classmethod
    def of(cls, share: Mapping[str, Any]) -> Decisions:
        waits = share["time_to_decision"]
        return cls(
            decisions=share["decisions"],
            approved=share["approved"],
            rejected=share["rejected"],
            automatic=share["automatic"],
            approval_rate=share_percent(share["approved"], share["decisions"]),
            automatic_share=share_percent(share["automatic"], share["decisions"]),
            p50_hours=_hours(waits["p50_hours"]),
            p90_hours=_hours(waits["p90_hours"]),
        )


def _hours(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


@dataclass(frozen=True)
class Spend:
    """What the programme spent in one currency against the revenue attributed in it."""

    currency: str
    revenue: Decimal
    incentives: Decimal
    mdf_claimed: Decimal

    @property
    def spent(self) -> Decimal:
        return self.incentives + self.mdf_claimed

    @property
    def per_hundred(self) -> Decimal | None:
        """Spend per 100 of attributed revenue; None without revenue."""
        if self.revenue <= 0:
            return None
        return (self.spent * 100 / self.revenue).quantize(Decimal("0.01"))


def spend_by_currency(rows: Iterable[Mapping[str, Any]]) -> list[Spend]:
    """The KPI report's spend rows (one per quarter and currency) summed per currency."""
    sums: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO, ZERO])
    for row in rows:
        totals = sums[row["currency"]]
        totals[0] += Decimal(row["attributed_revenue"])
        totals[1] += Decimal(row["incentives"])
        totals[2] += Decimal(row["mdf_claimed"])
    return [Spend(c, r, i, m) for c, (r, i, m) in sorted(sums.items())]


def top_partners(
    rows: Iterable[Mapping[str, Any]], names: Mapping[str, str]
) -> list[dict[str, Any]]:
    """The KPI report's top partners (per currency, most first), each with its company name
    (its id when the directory does not know it)."""
    return [
        {
            **row,
            "company_name": names.get(row["partner_id"]) or row["partner_id"],
            "sourced": Decimal(row["sourced"]),
            "influenced": Decimal(row["influenced"]),
            "total": Decimal(row["total"]),
        }
        for row in rows
    ]


@dataclass(frozen=True)
class Bar:
    label: str
    value: Decimal
    currency: str
    shown: str
    y: int
    width: float


BAR_HEIGHT = 22
BAR_GAP = 8
CHART_WIDTH = 100.0  # percent of the plot area


def bars(items: Sequence[ChartItem]) -> list[Bar]:
    """Horizontal bars stacked top to bottom, each as wide (in percent) as its value is of the
    largest in its currency: amounts in different currencies are never drawn on one scale."""
    largest: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for _, value, currency, _ in items:
        largest[currency] = max(largest[currency], value)
    return [
        Bar(
            label,
            value,
            currency,
            shown,
            index * (BAR_HEIGHT + BAR_GAP),
            float(value / largest[currency]) * CHART_WIDTH if value > 0 else 0.0,
        )
        for index, (label, value, currency, shown) in enumerate(items)
    ]


def chart_height(count: int) -> int:
    return max(1, count) * (BAR_HEIGHT + BAR_GAP)
