"""Partner voice: Net Promoter Score. A person answers "how likely are you to recommend..."
from 0 to 10: 9-10 is a promoter, 7-8 passive, 0-6 a detractor; NPS = % promoters - %
detractors, from -100 to 100."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum

from shared.errors import Conflict, Unprocessable

DEFAULT_QUESTION = (
    "How likely are you to recommend our partner programme to a peer? (0 = not at all, "
    "10 = extremely likely)"
)
NPS_PLACES = Decimal("0.1")


class Category(StrEnum):
    PROMOTER = "promoter"
    PASSIVE = "passive"
    DETRACTOR = "detractor"


def category(score: int) -> Category:
    if not 0 <= score <= 10:
        raise ValueError("a score is from 0 to 10")
    if score >= 9:
        return Category.PROMOTER
    if score >= 7:
        return Category.PASSIVE
    return Category.DETRACTOR


@dataclass(frozen=True)
class Nps:
    responses: int
    promoters: int
    passives: int
    detractors: int
    score: Decimal | None  # None without responses

    @classmethod
    def of(cls, scores: Iterable[int]) -> Nps:
        counts = {c: 0 for c in Category}
        for score in scores:
            counts[category(score)] += 1
        total = sum(counts.values())
        value = None
        if total:
            difference = Decimal(counts[Category.PROMOTER] - counts[Category.DETRACTOR])
            value = (difference * 100 / total).quantize(NPS_PLACES, rounding=ROUND_HALF_EVEN)
        return cls(
            total,
            counts[Category.PROMOTER],
            counts[Category.PASSIVE],
            counts[Category.DETRACTOR],
            value,
        )


def check_open(closes_at: datetime, at: datetime) -> None:
    if at >= closes_at:
        raise Conflict(f"the survey closed at {closes_at.isoformat()}")


def check_closing(closes_at: datetime, at: datetime) -> None:
    if closes_at <= at:
        raise Unprocessable("closes_at must be in the future")
