"""The partner projection: deals' own view of each partner (status, tier, type, authorised
products and regions) from partners.lifecycle.v1; deals never reads onboarding's database."""

from __future__ import annotations

from services.deals import repository
from shared.db import Connection
from shared.events.partners import PartnerStateChanged


async def apply_partner_state(conn: Connection, event: PartnerStateChanged) -> None:
    """Take the partner's new state; an older version than the one held is ignored."""
    await repository.store_partner(conn, event)
