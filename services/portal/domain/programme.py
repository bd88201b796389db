"""The programme dashboard's figures from the services' answers, and the geometry of its
charts. Plain rules, no I/O."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from statistics import median
from typing import Any

ZERO = Decimal(0)
# A registration's history entries that decide it, and which of them a manager made.
DECIDING = frozenset({"decided", "reviewed", "auto_decided"})
FINAL = frozenset({"approved", "rejected"})
# Onboarding's history: every change but the application itself and plain updates is a
# decision about the partner; the service itself made it unless a person is named.
NOT_DECISIONS = frozenset({"applied", "updated"})
SERVICE_ACTORS = frozenset({"onboarding", "", None})


@dataclass(frozen=True)
class RevenueCell:
    quarter: str
    tier: str
    sourced: Decimal
    influenced: Decimal

    @property
    def total(self) -> Decimal:
        return self.sourced + self.influenced


def revenue_by_tier_and_quarter(partners: Iterable[dict[str, Any]]) -> list[RevenueCell]:
    """Sourced and influenced revenue per quarter and (current) tier, oldest quarter first."""
    cells: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for partner in partners:
        for period in (partner.get("revenue") or {}).get("by_period", []):
            cell = cells[(period["period"], partner["tier"])]
            cell[0] += Decimal(period["sourced"])
            cell[1] += Decimal(period["influenced"])
    return [RevenueCell(q, t, s, i) for (q, t), (s, i) in sorted(cells.items())]


@dataclass
class Decisions:
    approved: int = 0
    rejected: int = 0
    automatic: int = 0
    manual: int = 0
    hours: list[float] = field(default_factory=list)
    manual_hours: list[float] = field(default_factory=list)

    @property
    def decided(self) -> int:
        return self.approved + self.rejected

    @property
    def approval_rate(self) -> Decimal | None:
        return share(self.approved, self.decided)

    @property
    def automatic_share(self) -> Decimal | None:
        return share(self.automatic, self.automatic + self.manual)

    @property
    def median_hours(self) -> float | None:
        return round(median(self.hours), 1) if self.hours else None

    @property
    def median_manual_hours(self) -> float | None:
        return round(median(self.manual_hours), 1) if self.manual_hours else None


def share(part: int, whole: int) -> Decimal | None:
    """`part` of `whole` in percent (one decimal), None of nothing."""
    if whole == 0:
        return None
    return (Decimal(100 * part) / whole).quantize(Decimal("0.1"))


def registration_decisions(registrations: Iterable[tuple[dict[str, Any], list[Any]]]) -> Decisions:
    """Each registration's first approving or rejecting decision in its history: approved or
    rejected, by the rules (decided, auto_decided) or a manager (reviewed), and how long after
    submission. Registrations not decided yet count for nothing."""
    found = Decisions()
    for registration, history in registrations:
        decision = next(
            (e for e in history if e["what"] in DECIDING and e["status"] in FINAL), None
        )
        if decision is None:
            continue
        if decision["status"] == "approved":
            found.approved += 1
        else:
            found.rejected += 1
        waited = _hours(registration["submitted_at"], decision["at"])
        found.hours.append(waited)
        if decision["what"] == "reviewed":
            found.manual += 1
            found.manual_hours.append(waited)
        else:
            found.automatic += 1
    return found


def _hours(start: str, end: str) -> float:
    delta = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return max(0.0, delta.total_seconds() / 3600)


def onboarding_decisions(histories: Iterable[Sequence[dict[str, Any]]]) -> tuple[int, int]:
    """(automatic, manual) decisions in partners' histories."""
    automatic = manual = 0
    for history in histories:
        for entry in history:
            if entry["change"] in NOT_DECISIONS:
                continue
            if entry.get("acted_by") in SERVICE_ACTORS:
                automatic += 1
            else:
                manual += 1
    return automatic, manual


def top_partners(partners: Iterable[dict[str, Any]], count: int = 10) -> list[dict[str, Any]]:
    """The partners with the most attributed revenue (sourced + influenced), most first."""
    ranked = [{**p, "total": Decimal((p.get("revenue") or {}).get("total", "0"))} for p in partners]
    ranked = [p for p in ranked if p["total"] > 0]
    ranked.sort(key=lambda p: (-p["total"], p["partner_id"]))
    return ranked[:count]


@dataclass(frozen=True)
class Bar:
    label: str
    value: Decimal
    shown: str
    y: int
    width: float


BAR_HEIGHT = 22
BAR_GAP = 8
CHART_WIDTH = 100.0  # percent of the plot area


def bars(items: Sequence[tuple[str, Decimal, str]]) -> list[Bar]:
    """Horizontal bars: each item's width in percent of the largest, stacked top to bottom."""
    largest = max((value for _, value, _ in items), default=ZERO)
    return [
        Bar(
            label,
            value,
            shown,
            index * (BAR_HEIGHT + BAR_GAP),
            float(value / largest) * CHART_WIDTH if largest > 0 and value > 0 else 0.0,
        )
        for index, (label, value, shown) in enumerate(items)
    ]


def chart_height(count: int) -> int:
    return max(1, count) * (BAR_HEIGHT + BAR_GAP)
