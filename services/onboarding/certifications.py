"""People's certifications: recorded once per person, role, track and issue date; each new one
re-derives the partner's competencies, authorisations and tier at once."""

from __future__ import annotations

from datetime import datetime

from services.onboarding import repository
from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.lifecycle import check_may_be_certified
from services.onboarding.domain.tiers import Certification
from services.onboarding.reassessment import refresh
from shared.db import Connection
from shared.events.partners import PartnerStatus
from shared.outbox import Outbox


async def add_certification(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    partner_id: str,
    certification: Certification,
    person_name: str | None,
    at: datetime,
    *,
    by: str,
) -> tuple[str, bool]:
    """Record a certification and re-evaluate the partner. Returns the certification's id and
    whether it is new (the same one again changes nothing)."""
    row = await repository.lock_partner(conn, partner_id)
    check_may_be_certified(partner_id, PartnerStatus(row["status"]))
    certification_id, created = await repository.insert_certification(
        conn, partner_id, certification, person_name, at, recorded_by=by
    )
    if created:
        await refresh(conn, outbox, config, partner_id, as_of=at, acted_by=by)
    return certification_id, created
