"""The console's partners list: which partners a health filter keeps and how a list is paged.
Plain rules, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

PAGE = 25


def score_of(health: dict[str, Any] | None) -> Decimal | None:
    """A health answer's score (0-100), or None when there is none to read."""
    if not health:
        return None
    try:
        return Decimal(str(health.get("score")))
    except InvalidOperation:
        return None


def below(rows: Sequence[dict[str, Any]], threshold: Decimal) -> list[dict[str, Any]]:
    """The rows whose partner's health score is under `threshold` (a partner whose score could
    not be read is kept: a manager looking for trouble should see it)."""
    kept = []
    for row in rows:
        score = score_of(row.get("health"))
        if score is None or score < threshold:
            kept.append(row)
    return kept


@dataclass(frozen=True)
class Paging:
    offset: int
    shown: int
    total: int

    @property
    def first(self) -> int:
        return self.offset + 1 if self.shown else 0

    @property
    def last(self) -> int:
        return self.offset + self.shown

    @property
    def previous(self) -> int | None:
        return max(0, self.offset - PAGE) if self.offset > 0 else None

    @property
    def next(self) -> int | None:
        return self.offset + PAGE if self.offset + self.shown < self.total else None
