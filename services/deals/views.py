"""Reading registrations for the API: partners see their own, channel managers all; a partner
sees of a conflict only its kind (services/deals/domain/disclosure.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict

from services.deals.domain.disclosure import conflicts_seen, inputs_seen, reasons_seen
from services.deals.domain.rules import Decision
from services.deals.repository import Row
from services.deals.schemas import ConflictOut, RegistrationOut
from shared.db import Pool
from shared.events.registrations import ConflictInfo
from shared.http import partner_scope
from shared.identity import Caller


def conflicts_out(conflicts: Sequence[ConflictInfo], who: Caller) -> list[ConflictOut]:
    return [
        ConflictOut.model_validate(asdict(c))
        for c in conflicts_seen(conflicts, partner=not who.is_admin)
    ]


def registration_out(row: Row, who: Caller) -> RegistrationOut:
    out = dict(row)
    conflicts = [ConflictInfo.model_validate(c) for c in json.loads(out["conflicts"])]
    partner = not who.is_admin  # only channel managers see the evidence
    out["conflicts"] = conflicts_out(conflicts, who)
    out["reasons"] = reasons_seen(
        out["reasons"], out.pop("partner_reasons", None), conflicts, partner=partner
    )
    out["inputs"] = inputs_seen(json.loads(out["inputs"]), partner=partner)
    return RegistrationOut.model_validate(out)


async def registrations(pool: Pool, who: Caller, limit: int) -> list[RegistrationOut]:
    """The newest registrations the caller may see (at most `limit`, 1..500)."""
    rows = await pool.fetch(
        """SELECT * FROM registrations WHERE ($1::text IS NULL OR partner_id = $1)
           ORDER BY submitted_at DESC LIMIT $2""",
        who.partner_id,
        min(max(limit, 1), 500),
    )
    return [registration_out(r, who) for r in rows]


async def registration(pool: Pool, who: Caller, registration_id: str) -> RegistrationOut:
    """One registration; another partner's is not found, exactly as a missing one."""
    row = await pool.fetchrow(
        "SELECT * FROM registrations WHERE registration_id = $1", registration_id
    )
    partner_scope(who, row["partner_id"] if row else None, f"registration {registration_id}")
    assert row is not None
    return registration_out(row, who)


def reasons_for(decision: Decision, who: Caller) -> list[str]:
    """A decision's reasons as the caller may read them."""
    return list(decision.reasons if who.is_admin else decision.partner_reasons)
