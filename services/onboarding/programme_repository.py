"""Write-side SQL of the programme: the signals exchanged with attribution (enablement
announced, health as scored), the programme year's reviews, notices and appeals, and partner
account managers."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from services.onboarding.repository import Row
from shared.db import Connection, Pool, advisory_key, columns
from shared.events.attribution import PartnerHealthScored

# -- signals ----------------------------------------------------------------------------------


async def partners_with_status(pool: Pool, statuses: Collection[str]) -> list[str]:
    rows = await pool.fetch(
        "SELECT partner_id FROM partners WHERE status = ANY($1::text[]) ORDER BY partner_id",
        sorted(statuses),
    )
    return [r["partner_id"] for r in rows]


async def lock_enablement_announced(conn: Connection, partner_id: str) -> Row | None:
    """What was last announced of the partner's enablement, locked for the transaction; a
    partner never announced has no row to lock, so the partner's announcing is locked instead
    (two instances' first runs both announced, the older measurement possibly last)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1)", advisory_key("onboarding-enablement", partner_id)
    )
    return await conn.fetchrow(
        "SELECT * FROM enablement_announced WHERE partner_id = $1", partner_id
    )


async def save_enablement_announced(
    conn: Connection, partner_id: str, score: Decimal, at: datetime
) -> None:
    await conn.execute(
        """INSERT INTO enablement_announced (partner_id, score, measured_at) VALUES ($1, $2, $3)
           ON CONFLICT (partner_id) DO UPDATE SET score = $2, measured_at = $3""",
        partner_id,
        score,
        at,
    )


async def record_health(conn: Connection, events: Sequence[PartnerHealthScored]) -> None:
    """Keep each partner's newest scored day (an older one never wins), one statement."""
    latest: dict[str, PartnerHealthScored] = {}
    for event in events:
        held = latest.get(event.partner_id)
        if held is None or (held.day, held.scored_at) < (event.day, event.scored_at):
            latest[event.partner_id] = event
    if not latest:
        return
    await conn.execute(
        """
        INSERT INTO partner_health (partner_id, score, day, scored_at, reasons)
        SELECT e.partner_id, e.score, e.day, e.scored_at,
               ARRAY(SELECT jsonb_array_elements_text(e.reasons::jsonb))
        FROM unnest($1::text[], $2::numeric[], $3::date[], $4::timestamptz[], $5::text[])
            AS e(partner_id, score, day, scored_at, reasons)
        ON CONFLICT (partner_id) DO UPDATE SET
            score = EXCLUDED.score, day = EXCLUDED.day, scored_at = EXCLUDED.scored_at,
            reasons = EXCLUDED.reasons
        WHERE (partner_health.day, partner_health.scored_at)
            < (EXCLUDED.day, EXCLUDED.scored_at)
        """,
        *columns(
            [
                (e.partner_id, e.score, e.day, e.scored_at, json.dumps(list(e.reasons)))
                for e in latest.values()
            ]
        ),
    )


# -- the programme year ---------------------------------------------------------------------


async def activated_on(conn: Connection, partner_id: str) -> datetime | None:
    """When the partner was (last) activated: its programme year counts from then."""
    value: datetime | None = await conn.fetchval(
        """SELECT max(changed_at) FROM partner_history
           WHERE partner_id = $1 AND change = 'activated'""",
        partner_id,
    )
    return value


async def reviews_of(conn: Connection, partner_id: str) -> list[Row]:
    return await conn.fetch(
        "SELECT * FROM programme_reviews WHERE partner_id = $1 ORDER BY decided_at, review_id",
        partner_id,
    )


async def notices_sent(conn: Connection, partner_id: str, review_on: date) -> list[int]:
    rows = await conn.fetch(
        "SELECT days_before FROM programme_notices WHERE partner_id = $1 AND review_on = $2",
        partner_id,
        review_on,
    )
    return [r["days_before"] for r in rows]


async def insert_notice(
    conn: Connection, partner_id: str, review_on: date, days: int, at: datetime
) -> bool:
    inserted = await conn.fetchval(
        """INSERT INTO programme_notices (partner_id, review_on, days_before, sent_at)
           VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1""",
        partner_id,
        review_on,
        days,
        at,
    )
    return inserted is not None


async def valid_certifications(conn: Connection, partner_id: str, as_of: datetime) -> int:
    """Certifications of the partner's people valid at `as_of` (a person who left no longer
    counts from when they left): each person's credential on a track and role once, however
    often it was earned (rows were counted, so a retake counted one person twice)."""
    count: int = await conn.fetchval(
        """SELECT count(DISTINCT (c.person, c.role, c.track))
           FROM certifications c LEFT JOIN people p ON p.person_id = c.person_id
           WHERE c.partner_id = $1 AND c.voided_at IS NULL AND c.issued_at <= $2
             AND LEAST(c.expires_at, p.left_at) > $2""",
        partner_id,
        as_of,
    )
    return count


async def health_of(conn: Connection, partner_id: str) -> Decimal | None:
    score: Decimal | None = await conn.fetchval(
        "SELECT score FROM partner_health WHERE partner_id = $1", partner_id
    )
    return score


async def insert_review(conn: Connection, review: dict[str, Any]) -> None:
    await conn.execute(
        f"""INSERT INTO programme_reviews ({", ".join(review)})
            VALUES ({", ".join(f"${i + 1}" for i in range(len(review)))})""",
        *review.values(),
    )


async def lock_review(conn: Connection, review_id: str) -> Row | None:
    return await conn.fetchrow(
        "SELECT * FROM programme_reviews WHERE review_id = $1 FOR UPDATE", review_id
    )


async def appeal_of_review(conn: Connection, review_id: str) -> Row | None:
    return await conn.fetchrow(
        "SELECT * FROM requalification_appeals WHERE review_id = $1", review_id
    )


async def insert_appeal(
    conn: Connection, appeal_id: str, review: Row, grounds: str, by: str, at: datetime
) -> Row:
    row = await conn.fetchrow(
        """INSERT INTO requalification_appeals (appeal_id, review_id, partner_id, grounds,
               filed_by, filed_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *""",
        appeal_id,
        review["review_id"],
        review["partner_id"],
        grounds,
        by,
        at,
    )
    assert row is not None
    return row


async def lock_appeal(conn: Connection, appeal_id: str) -> Row | None:
    return await conn.fetchrow(
        "SELECT * FROM requalification_appeals WHERE appeal_id = $1 FOR UPDATE", appeal_id
    )


async def decide_appeal(
    conn: Connection, appeal_id: str, upheld: bool, note: str, by: str, at: datetime
) -> Row:
    row = await conn.fetchrow(
        """UPDATE requalification_appeals SET upheld = $2, note = $3, decided_by = $4,
               decided_at = $5 WHERE appeal_id = $1 RETURNING *""",
        appeal_id,
        upheld,
        note,
        by,
        at,
    )
    assert row is not None
    return row


async def reverse_review(conn: Connection, review_id: str, at: datetime) -> None:
    await conn.execute(
        "UPDATE programme_reviews SET reversed_at = $2 WHERE review_id = $1", review_id, at
    )


# -- account managers -----------------------------------------------------------------------


async def assign_manager(
    conn: Connection,
    partner_id: str,
    manager: str,
    previous: str | None,
    note: str,
    by: str,
    at: datetime,
) -> None:
    await conn.execute(
        "UPDATE partners SET account_manager = $2 WHERE partner_id = $1", partner_id, manager
    )
    await conn.execute(
        """INSERT INTO account_manager_assignments (partner_id, manager, previous, note,
               assigned_by, assigned_at) VALUES ($1, $2, $3, $4, $5, $6)""",
        partner_id,
        manager,
        previous,
        note,
        by,
        at,
    )
