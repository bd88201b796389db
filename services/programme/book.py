"""Read side of the partner projection (the `partner_book` view): a partner's standing now,
and a partner account manager's book of partners (the KPIs' `manager` filter too)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from services.programme.book_schemas import (
    HealthStandingOut,
    PartnerStandingOut,
    ReviewStandingOut,
)
from services.programme.domain.profiles import review_standing
from shared.db import Connection, from_row

Shown = TypeVar("Shown", bound=BaseModel)


def with_standing(record: Shown, standing: PartnerStandingOut | None) -> Shown:
    """A plan or review as shown: with its partner's standing now."""
    return record.model_copy(update={"standing": standing})


async def with_standings(conn: Connection, partner_id: str, records: list[Shown]) -> list[Shown]:
    """One partner's plans or reviews as shown: each with the partner's standing now."""
    current = await standing(conn, partner_id)
    return [with_standing(record, current) for record in records]


async def manager_partner_ids(conn: Connection, manager: str) -> list[str]:
    """The partners whose account manager is `manager` now (their latest assignment)."""
    rows = await conn.fetch(
        "SELECT partner_id FROM partner_profiles WHERE account_manager = $1 ORDER BY partner_id",
        manager,
    )
    return [r["partner_id"] for r in rows]


async def standing(conn: Connection, partner_id: str) -> PartnerStandingOut | None:
    row = await conn.fetchrow("SELECT * FROM partner_book WHERE partner_id = $1", partner_id)
    return None if row is None else _standing(row)


async def manager_book(
    conn: Connection, manager: str, partner_type: str | None, after: str | None, limit: int
) -> tuple[list[PartnerStandingOut], int, bool]:
    """A page of the manager's partners (of the type they are now, if asked), by partner id,
    after the partner `after`; how many there are in all; and whether a page follows."""
    rows = await conn.fetch(
        """SELECT * FROM partner_book WHERE account_manager = $1
             AND ($2::text IS NULL OR partner_type = $2)
             AND ($3::text IS NULL OR partner_id > $3)
           ORDER BY partner_id LIMIT $4""",
        manager,
        partner_type,
        after,
        limit + 1,
    )
    total = await conn.fetchval(
        """SELECT count(*) FROM partner_book WHERE account_manager = $1
             AND ($2::text IS NULL OR partner_type = $2)""",
        manager,
        partner_type,
    )
    return [_standing(r) for r in rows[:limit]], total, len(rows) > limit


def _standing(row: Any) -> PartnerStandingOut:
    health = None
    if row["health_score"] is not None:
        health = HealthStandingOut(
            score=row["health_score"], previous_score=row["health_previous"], day=row["health_day"]
        )
    review = None
    if row["review_id"] is not None:
        review = from_row(
            ReviewStandingOut,
            row,
            outcome=row["review_outcome"],
            standing=review_standing(row["review_outcome"], row["appeal_upheld"]) or "",
            reasons=list(row["review_reasons"] or []),
            decided_at=row["review_decided_at"],
        )
    return from_row(PartnerStandingOut, row, health=health, requalification=review)
