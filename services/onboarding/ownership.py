"""Domain ownership: a partner proves it controls the domain its application claimed by
publishing the platform-issued token where the configured verifier looks; the platform checks,
and the domain is held from then on (recorded with who asked for the check)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.onboarding import repository, views
from services.onboarding.announcements import record_version
from services.onboarding.domain.lifecycle import Change
from services.onboarding.domain.verification import NotVerified, check_may_verify, proves
from services.onboarding.domain_verification import DomainVerifier
from services.onboarding.repository import Row
from shared.db import Pool
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
    otherwise. A domain already held stays held."""
    row = await views.partner_row(pool, partner_id)
    check_may_verify(partner_id, PartnerStatus(row["status"]))
    if row["domain_verified_at"] is not None:
        return row
    domain, token = row["domain"], row["domain_token"]
    if not proves(await verifier.published(domain), token):
        raise NotVerified(domain, token, verifier.where(domain))
    async with pool.acquire() as conn, conn.transaction():
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
