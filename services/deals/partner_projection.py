"""The partner projection: deals' own view of each partner (status, tier, type, authorised
products and regions) from partners.lifecycle.v1; deals never reads onboarding's database."""

from __future__ import annotations

from services.deals import repository
from services.deals.domain.rules import ExistingRegistration
from shared.db import Connection
from shared.events.partners import PartnerStateChanged


async def apply_partner_state(conn: Connection, event: PartnerStateChanged) -> None:
    """Take the partner's new state; an older version than the one held is ignored."""
    await repository.store_partner(conn, event)


async def holder_types(
    conn: Connection, registrations: list[ExistingRegistration]
) -> dict[str, str | None]:
    """The partner type of each partner holding one of `registrations` (rules of engagement
    by partner type weigh the holder's against the requester's); unknown partners are left
    out (their type is unknown)."""
    partner_ids = sorted({r.partner_id for r in registrations})
    if not partner_ids:
        return {}
    rows = await conn.fetch(
        "SELECT partner_id, partner_type FROM partners WHERE partner_id = ANY($1::text[])",
        partner_ids,
    )
    return {r["partner_id"]: r["partner_type"] for r in rows}
