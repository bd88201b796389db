"""Write-side SQL of co-marketing campaigns: the record, its partners, the results reported,
and the facts heard from incentives (pre-approvals, claims) and attribution (credits through a
campaign touchpoint). Every fact has its natural key, so a republished event counts once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

import asyncpg

from shared.db import Connection
from shared.events.attribution import CreditIssued
from shared.events.incentives import MdfClaimDecided, MdfPreapprovalChanged


async def insert_campaign(
    conn: Connection,
    *,
    campaign_id: str,
    name: str,
    kind: str,
    description: str,
    starts_on: date,
    ends_on: date,
    partner_ids: Sequence[str],
    created_by: str,
    at: datetime,
) -> None:
    await conn.execute(
        """INSERT INTO campaigns (campaign_id, name, kind, description, starts_on, ends_on,
               created_by, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        campaign_id,
        name,
        kind,
        description,
        starts_on,
        ends_on,
        created_by,
        at,
    )
    await conn.execute(
        """INSERT INTO campaign_partners (campaign_id, partner_id)
           SELECT $1, p FROM unnest($2::text[]) AS p ON CONFLICT DO NOTHING""",
        campaign_id,
        list(partner_ids),
    )


async def lock_campaign(conn: Connection, campaign_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM campaigns WHERE campaign_id = $1 FOR UPDATE", campaign_id
    )


async def update_campaign(
    conn: Connection,
    campaign_id: str,
    *,
    name: str,
    description: str,
    starts_on: date,
    ends_on: date,
    partner_ids: Sequence[str] | None,
) -> None:
    """The campaign's record, and its partners as they are from now on (None: unchanged)."""
    await conn.execute(
        """UPDATE campaigns SET name = $2, description = $3, starts_on = $4, ends_on = $5
           WHERE campaign_id = $1""",
        campaign_id,
        name,
        description,
        starts_on,
        ends_on,
    )
    if partner_ids is None:
        return
    await conn.execute(
        "DELETE FROM campaign_partners WHERE campaign_id = $1 AND partner_id <> ALL($2::text[])",
        campaign_id,
        list(partner_ids),
    )
    await conn.execute(
        """INSERT INTO campaign_partners (campaign_id, partner_id)
           SELECT $1, p FROM unnest($2::text[]) AS p ON CONFLICT DO NOTHING""",
        campaign_id,
        list(partner_ids),
    )


async def cancel(conn: Connection, campaign_id: str, by: str, reason: str, at: datetime) -> None:
    await conn.execute(
        """UPDATE campaigns SET cancelled_at = $2, cancelled_by = $3, cancel_reason = $4
           WHERE campaign_id = $1""",
        campaign_id,
        at,
        by,
        reason,
    )


async def insert_report(
    conn: Connection,
    *,
    campaign_id: str,
    partner_id: str,
    leads: int,
    pipeline: Decimal,
    currency: str,
    by: str,
    at: datetime,
) -> None:
    await conn.execute(
        """INSERT INTO campaign_result_reports (campaign_id, partner_id, leads, pipeline,
               currency, reported_by, reported_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        campaign_id,
        partner_id,
        leads,
        pipeline,
        currency,
        by,
        at,
    )


async def record_preapprovals(conn: Connection, changes: Sequence[MdfPreapprovalChanged]) -> None:
    """The latest state of each pre-approval (a change older than the one held is ignored)."""
    for change in changes:
        await conn.execute(
            """INSERT INTO campaign_preapprovals (preapproval_id, campaign_id, partner_id, status,
                   amount, reserved, claimed, currency, changed_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               ON CONFLICT (preapproval_id) DO UPDATE SET
                   status = excluded.status, amount = excluded.amount,
                   reserved = excluded.reserved, claimed = excluded.claimed,
                   changed_at = excluded.changed_at
               WHERE campaign_preapprovals.changed_at <= excluded.changed_at""",
            change.preapproval_id,
            change.campaign_id,
            change.partner_id,
            change.status,
            change.amount,
            change.reserved,
            change.claimed,
            change.currency,
            change.changed_at,
        )


async def record_claims(conn: Connection, decided: Sequence[MdfClaimDecided]) -> None:
    """Approved claims against a campaign's pre-approvals: the campaign's MDF spent."""
    approved = [d for d in decided if d.status == "approved" and d.campaign_id and d.preapproval_id]
    if not approved:
        return
    await conn.execute(
        """INSERT INTO campaign_claims (claim_id, campaign_id, preapproval_id, partner_id,
               amount, currency, decided_at)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[],
                                $6::text[], $7::timestamptz[])
           ON CONFLICT (claim_id) DO NOTHING""",
        [d.claim_id for d in approved],
        [d.campaign_id for d in approved],
        [d.preapproval_id for d in approved],
        [d.partner_id for d in approved],
        [d.amount for d in approved],
        [d.currency for d in approved],
        [d.decided_at for d in approved],
    )


async def record_credits(conn: Connection, credits: Sequence[CreditIssued]) -> None:
    """Which credits came through a campaign touchpoint (the credits are kept in `credits`)."""
    through = [c for c in credits if c.campaign_id]
    if not through:
        return
    await conn.execute(
        """INSERT INTO campaign_credits (credit_id, campaign_id)
           SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING""",
        [c.credit_id for c in through],
        [c.campaign_id for c in through],
    )
