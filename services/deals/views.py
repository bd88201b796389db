"""Reading registrations for the API: partners see their own, channel managers all."""

from __future__ import annotations

import json

from services.deals.repository import Row
from services.deals.schemas import RegistrationOut
from shared.db import Pool
from shared.http import partner_scope
from shared.identity import Caller


def registration_out(row: Row) -> RegistrationOut:
    out = dict(row)
    out["conflicts"] = json.loads(out["conflicts"])
    out["inputs"] = json.loads(out["inputs"])
    return RegistrationOut.model_validate(out)


async def registrations(pool: Pool, who: Caller, limit: int) -> list[RegistrationOut]:
    """The newest registrations the caller may see (at most `limit`, 1..500)."""
    rows = await pool.fetch(
        """SELECT * FROM registrations WHERE ($1::text IS NULL OR partner_id = $1)
           ORDER BY submitted_at DESC LIMIT $2""",
        who.partner_id,
        min(max(limit, 1), 500),
    )
    return [registration_out(r) for r in rows]


async def registration(pool: Pool, who: Caller, registration_id: str) -> RegistrationOut:
    """One registration; another partner's is not found, exactly as a missing one."""
    row = await pool.fetchrow(
        "SELECT * FROM registrations WHERE registration_id = $1", registration_id
    )
    partner_scope(who, row["partner_id"] if row else None, f"registration {registration_id}")
    assert row is not None
    return registration_out(row)
