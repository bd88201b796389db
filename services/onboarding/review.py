"""A channel manager decides an application the scoring did not reject (left for review, or
recommended for approval: self-declared figures approve no one by themselves): their
cultural-fit judgement re-scores it, then it is approved (onboarding starts) or rejected."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from services.onboarding import repository
from services.onboarding.announcements import record_version
from services.onboarding.applications import approve, reject
from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.lifecycle import Change, check_awaiting_review
from services.onboarding.domain.qualification import qualify
from services.onboarding.repository import Row
from shared.db import Connection
from shared.events.partners import PartnerStatus
from shared.outbox import Outbox


async def decide_review(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    partner_id: str,
    *,
    approve_it: bool,
    note: str,
    cultural_fit: Decimal | None,
    by: str,
    at: datetime,
) -> Row:
    row = await repository.lock_partner(conn, partner_id)
    check_awaiting_review(partner_id, PartnerStatus(row["status"]), row["qualification_outcome"])
    qualification = qualify(
        config.qualification, repository.application_of(row), config.version, cultural_fit
    )
    verdict = "approved" if approve_it else "rejected"
    why = f"manual review {verdict} by {by}: {note or 'no note'} (score {qualification.total})"
    # Keep the outcome 'review' so the history shows a manager decided; the score is re-explained.
    row = await record_version(
        conn,
        outbox,
        row,
        Change.UPDATED,
        by=by,
        reason=f"manager input recorded; {qualification.explanation}",
        at=at,
        qualification=repository.qualification_json(qualification),
        decision_note=note,
    )
    if approve_it:
        return await approve(conn, outbox, config, row, why, at, by=by)
    return await reject(conn, outbox, row, why, at, by=by)
