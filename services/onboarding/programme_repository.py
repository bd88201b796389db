"""Write-side SQL of the programme: the signals exchanged with attribution (enablement
announced, health as scored), the programme year's reviews, notices and appeals, and partner
account managers."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime
from decimal import Decimal

from services.onboarding.repository import Row
from shared.db import Connection, Pool
from shared.events.attribution import PartnerHealthScored

# -- signals ----------------------------------------------------------------------------------


async def partners_with_status(pool: Pool, statuses: Collection[str]) -> list[str]:
    rows = await pool.fetch(
        "SELECT partner_id FROM partners WHERE status = ANY($1::text[]) ORDER BY partner_id",
        sorted(statuses),
    )
    return [r["partner_id"] for r in rows]


async def lock_enablement_announced(conn: Connection, partner_id: str) -> Row | None:
    return await conn.fetchrow(
        "SELECT * FROM enablement_announced WHERE partner_id = $1 FOR UPDATE", partner_id
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
    rows = list(latest.values())
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
        [r.partner_id for r in rows],
        [r.score for r in rows],
        [r.day for r in rows],
        [r.scored_at for r in rows],
        [json.dumps(list(r.reasons)) for r in rows],
    )
