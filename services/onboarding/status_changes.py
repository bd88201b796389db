"""A channel manager's status decisions: suspend, expel, reinstate (any lifecycle-legal step;
the rules are `domain.lifecycle.manual_status_change`)."""

from __future__ import annotations

from datetime import datetime

from services.onboarding import repository
from services.onboarding.announcements import record_version
from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.lifecycle import manual_status_change
from services.onboarding.repository import Row
from shared.db import Connection
from shared.events.partners import PartnerStatus
from shared.outbox import Outbox


async def set_status(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    partner_id: str,
    target: PartnerStatus,
    reason: str,
    by: str,
    at: datetime,
) -> Row:
    row = await repository.lock_partner(conn, partner_id)
    change, fields = manual_status_change(
        partner_id,
        PartnerStatus(row["status"]),
        target,
        checklist=config.checklist,
        completed=repository.checklist_of(row),
        at=at,
    )
    return await record_version(
        conn, outbox, row, change, by=by, reason=f"channel manager: {reason}", at=at, **fields
    )
