"""Domain ownership: a partner proves it controls the domain its application claimed by
publishing the platform-issued token where the configured verifier looks; the platform checks,
and the domain is held from then on (recorded with who asked for the check)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.onboarding import repository, views
from services.onboarding.announcements import record_version
from services.onboarding.domain.lifecycle import Change
from services.onboarding.domain.verification import (
    AlreadyHeld,
    NotVerified,
    check_may_verify,
    proves,
)
from services.onboarding.domain_verification import DomainVerifier
from services.onboarding.repository import Row
from shared.db import Connection, Pool
from shared.events.partners import PartnerStatus
from shared.outbox import Outbox


@dataclass(frozen=True)
class DomainVerification:
    """The verifier this instance checks domains with (ONBOARDING_DOMAIN_VERIFICATION)."""

    verifier: DomainVerifier


async def verify_domain(
    pool: Pool,
    outbox: Outbox,
    verifier: DomainVerifier,
    partner_id: str,
    *,
    by: str,
    at: datetime,
) -> Row:
    """Check the partner's claimed domain (outside any transaction: the check is a network
    call) and hold it when it publishes the token; NotVerified, and nothing changed,
    otherwise; AlreadyHeld when another partner proved it first (held domains are unique). A
    domain already held stays held."""
    row = await views.partner_row(pool, partner_id)
    check_may_verify(partner_id, PartnerStatus(row["status"]))
    if row["domain_verified_at"] is not None:
        return row
    domain, token = row["domain"], row["domain_token"]
    if not proves(await verifier.published(domain), token):
        raise NotVerified(domain, token, verifier.where(domain))
    try:
        async with pool.acquire() as conn, conn.transaction():
            return await _hold(conn, outbox, partner_id, domain, by=by, at=at)
    except asyncpg.UniqueViolationError as held:  # partners_held_domain: another proved it first
        raise AlreadyHeld(domain) from held


async def _hold(
    conn: Connection, outbox: Outbox, partner_id: str, domain: str, *, by: str, at: datetime
) -> Row:
    row = await repository.lock_partner(conn, partner_id)
    check_may_verify(partner_id, PartnerStatus(row["status"]))
    if row["domain_verified_at"] is not None:
        return row
    return await record_version(
        conn,
        outbox,
        row,
        Change.UPDATED,
        by=by,
        reason=f"domain {domain} verified: it publishes the platform's token",
        at=at,
        domain_verified_at=at,
        domain_verified_by=by,
    )
