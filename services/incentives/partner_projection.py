"""The partner projection: each partner's tier and status as onboarding last described them,
which the rules use when a credit is booked (an older snapshot never wins)."""

from __future__ import annotations

from services.incentives import repository
from shared.db import Connection
from shared.events.partners import PartnerStateChanged


async def project_partner(conn: Connection, event: PartnerStateChanged) -> None:
    await repository.upsert_partner(conn, event)
