"""A review's SQL: its deadline and the moment it began, and the reviews the SLA job works
through (instances share the work: rows another instance holds are skipped)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from decimal import Decimal

import asyncpg

from shared.db import Connection

# Reviews whose reminder or escalation is due; instances share the work (SKIP LOCKED).
REVIEWS_TO_REMIND_SQL = """
SELECT * FROM registrations
WHERE status = 'pending_review' AND review_due_at IS NOT NULL AND review_reminded_at IS NULL
  AND review_due_at > $1 AND review_due_at <= $2
ORDER BY review_due_at LIMIT 500 FOR UPDATE SKIP LOCKED
"""
REVIEWS_TO_ESCALATE_SQL = """
SELECT * FROM registrations
WHERE status = 'pending_review' AND review_due_at IS NOT NULL AND review_escalated_at IS NULL
  AND review_due_at <= $1
ORDER BY review_due_at LIMIT 500 FOR UPDATE SKIP LOCKED
"""
# Escalated reviews the policy decides: all of them, or (approve_under_limit) those within it.
# `conflicted`: the decision found a conflict (`overdue_decision` never approves one unseen).
# When approving, the query leaves those out, so they are not read again every batch; `$3`: the
# ones this run found it may not approve (`approval_problem`), left out of its next batches.
OVERDUE_REVIEWS_SQL = """
SELECT *, jsonb_array_length(COALESCE(inputs -> 'conflicts_considered', '[]')) > 0 AS conflicted
FROM registrations
WHERE status = 'pending_review' AND review_due_at IS NOT NULL AND review_escalated_at IS NOT NULL
  AND review_due_at <= $1
  AND ($2::numeric IS NULL OR (amount <= $2
       AND jsonb_array_length(COALESCE(inputs -> 'conflicts_considered', '[]')) = 0))
  AND NOT (registration_id = ANY($3::text[]))
ORDER BY review_due_at LIMIT 500 FOR UPDATE SKIP LOCKED
"""


async def reviews_to_remind(
    conn: Connection, at: datetime, horizon: datetime
) -> list[asyncpg.Record]:
    return list(await conn.fetch(REVIEWS_TO_REMIND_SQL, at, horizon))


async def reviews_to_escalate(conn: Connection, at: datetime) -> list[asyncpg.Record]:
    return list(await conn.fetch(REVIEWS_TO_ESCALATE_SQL, at))


async def overdue_reviews(
    conn: Connection, due_by: datetime, within: Decimal | None, skipped: Collection[str] = ()
) -> list[asyncpg.Record]:
    return list(await conn.fetch(OVERDUE_REVIEWS_SQL, due_by, within, list(skipped)))


async def mark_review(conn: Connection, registration_id: str, column: str, at: datetime) -> None:
    """Stamp a review's reminder or escalation (once each per deadline)."""
    assert column in ("review_reminded_at", "review_escalated_at")
    await conn.execute(
        f"UPDATE registrations SET {column} = $2 WHERE registration_id = $1", registration_id, at
    )


async def store_review_deadline(
    conn: Connection, registration_id: str, due_at: datetime, acceptance_due_at: datetime | None
) -> None:
    """A new review's deadline (its reminder and escalation are still to come)."""
    await conn.execute(
        """UPDATE registrations SET review_due_at = $2, acceptance_due_at = $3,
               review_reminded_at = NULL, review_escalated_at = NULL
           WHERE registration_id = $1""",
        registration_id,
        due_at,
        acceptance_due_at,
    )


async def review_began_at(
    conn: Connection, registration_id: str, submitted_at: datetime
) -> datetime:
    """When the registration's current review began: its last move into review from another
    status, or its submission when its decision sent it there."""
    began: datetime | None = await conn.fetchval(
        """SELECT at FROM registration_ledger
           WHERE registration_id = $1 AND status = 'pending_review'
             AND previous_status IS NOT NULL AND previous_status <> 'pending_review'
           ORDER BY seq DESC LIMIT 1""",
        registration_id,
    )
    return began or submitted_at
