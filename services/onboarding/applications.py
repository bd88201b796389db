"""Application intake: score an application, create the partner and, by the score, start its
onboarding, reject it, or leave it for a channel manager's review (`review.py`)."""

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
from services.onboarding.repository import Row
from shared.db import Connection
from shared.errors import Conflict
from shared.events.partners import PartnerStatus
from shared.outbox import Outbox


class DuplicateApplication(Conflict):
    """The domain applied before (under any spelling). Nothing about that partner is told."""

    def __init__(self, domain: str) -> None:
        super().__init__(
            f"an application for domain {domain} already exists; contact your channel manager"
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
    new partner; a domain already known raises DuplicateApplication and changes nothing."""
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
        reason=f"application received; {qualification.explanation}",
        at=at,
    )
    if qualification.outcome is Outcome.APPROVE:
        return await approve(conn, outbox, config, row, qualification.explanation, at)
    if qualification.outcome is Outcome.REJECT:
        return await reject(conn, outbox, row, qualification.explanation, at)
    return row


async def approve(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    row: Row,
    why: str,
    at: datetime,
) -> Row:
    """Qualified, and onboarding starts at once."""
    row = await record_step(
        conn, outbox, row, PartnerStatus.QUALIFIED, Change.QUALIFIED, reason=why, at=at
    )
    return await record_step(
        conn,
        outbox,
        row,
        PartnerStatus.ONBOARDING,
        Change.ONBOARDING,
        reason=f"onboarding started: complete {', '.join(config.checklist)}",
        at=at,
    )


async def reject(conn: Connection, outbox: Outbox, row: Row, why: str, at: datetime) -> Row:
    return await record_step(
        conn, outbox, row, PartnerStatus.REJECTED, Change.REJECTED, reason=why, at=at
    )
