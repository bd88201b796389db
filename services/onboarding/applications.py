"""Application intake: score an application, create the partner and, by the score, reject it
or leave it for a channel manager's decision (`review.py`). The figures are the applicant's own
declaration: a score may recommend approval, never grant it; onboarding starts when a channel
manager approves."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from services.onboarding import repository
from services.onboarding.announcements import record_step, record_version
from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.lifecycle import Change
from services.onboarding.domain.qualification import Application, Outcome, qualify
from services.onboarding.domain.tiers import authorised_products
from services.onboarding.repository import SERVICE, Row
from shared.db import Connection
from shared.errors import Conflict
from shared.events.partners import PartnerStatus
from shared.outbox import Outbox

# Whom the audit trail names for an application: the public intake authenticates no one.
APPLICANT = "applicant (unauthenticated)"


class DuplicateApplication(Conflict):
    """A partner already holds the domain (under any spelling). Nothing about it is told."""

    def __init__(self, domain: str) -> None:
        super().__init__(
            f"domain {domain} is already held by a partner; contact your channel manager"
        )


async def apply_for(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    application: Application,
    declared: Mapping[str, Any],
    at: datetime,
) -> Row:
    """Take an application (`declared`: everything the applicant sent, kept as is). Returns the
    new partner, applied (or rejected by its score), its domain claimed; a domain a partner
    already holds raises DuplicateApplication and changes nothing."""
    qualification = qualify(config.qualification, application, config.version)
    products = authorised_products(config, application.products, frozenset())
    inserted = await repository.insert_application(
        conn, config, application, declared, qualification, products, at
    )
    if inserted is None:
        raise DuplicateApplication(application.domain)
    row = await record_version(
        conn,
        outbox,
        inserted,
        Change.APPLIED,
        by=APPLICANT,
        reason=f"application received; {qualification.explanation}",
        at=at,
    )
    if qualification.outcome is Outcome.REJECT:
        return await reject(conn, outbox, row, qualification.explanation, at, by=SERVICE)
    return row


async def approve(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    row: Row,
    why: str,
    at: datetime,
    *,
    by: str,
) -> Row:
    """Qualified (`by`: the channel manager who approved), and onboarding starts at once."""
    row = await record_step(
        conn, outbox, row, PartnerStatus.QUALIFIED, Change.QUALIFIED, by=by, reason=why, at=at
    )
    return await record_step(
        conn,
        outbox,
        row,
        PartnerStatus.ONBOARDING,
        Change.ONBOARDING,
        by=by,
        reason=f"onboarding started: complete {', '.join(config.checklist)}",
        at=at,
    )


async def reject(
    conn: Connection, outbox: Outbox, row: Row, why: str, at: datetime, *, by: str
) -> Row:
    """A rejected application holds no domain: one it had verified is free again (found in
    review: a channel manager who verified an applicant's domain and then rejected it left the
    domain held for good, every later application for it refused)."""
    return await record_step(
        conn,
        outbox,
        row,
        PartnerStatus.REJECTED,
        Change.REJECTED,
        by=by,
        reason=why,
        at=at,
        domain_verified_at=None,
        domain_verified_by=None,
    )
