"""Write-side SQL of MDF pre-approvals. Every change of one happens after the partner's
`mdf_funds` row is locked (mdf_repository.lock_fund), the lock order of every MDF movement;
`mdf_funds.reserved` is kept equal to the sum of its pre-approvals' `reserved` here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import asyncpg

from services.incentives.domain.preapprovals import CampaignBudget, Preapproval
from shared.db import Connection, from_row


async def insert(
    conn: Connection, preapproval_id: str, partner_id: str, budget: CampaignBudget, at: datetime
) -> None:
    await conn.execute(
        """INSERT INTO mdf_preapprovals (preapproval_id, partner_id, reference, campaign_id,
               activity_kind, description, starts_on, ends_on, amount, currency, status,
               requested_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'requested', $11)""",
        preapproval_id,
        partner_id,
        budget.reference,
        budget.campaign_id,
        budget.activity_kind,
        budget.description,
        budget.starts_on,
        budget.ends_on,
        budget.amount,
        budget.currency,
        at,
    )


async def by_reference(conn: Connection, partner_id: str, reference: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM mdf_preapprovals WHERE partner_id = $1 AND reference = $2",
        partner_id,
        reference,
    )


async def row(
    conn: Connection, preapproval_id: str, *, for_update: bool = False
) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(
        f"SELECT * FROM mdf_preapprovals WHERE preapproval_id = $1{lock}", preapproval_id
    )


async def load(conn: Connection, record: asyncpg.Record) -> Preapproval:
    """The pre-approval of a row, with what its undecided claims ask for."""
    pending = await conn.fetchval(
        """SELECT coalesce(sum(amount), 0) FROM mdf_claims
           WHERE preapproval_id = $1 AND status = 'requested'""",
        record["preapproval_id"],
    )
    return from_row(Preapproval, record, pending=pending)


async def save(
    conn: Connection,
    before: Preapproval,
    after: Preapproval,
    *,
    at: datetime,
    reason: str | None = None,
) -> asyncpg.Record:
    """Write the pre-approval's new state and move the fund's reservation by the same change.
    Returns the row as written."""
    decided = before.status == "requested" and after.status != "requested"
    expired = before.status != "expired" and after.status == "expired"
    written = await conn.fetchrow(
        """UPDATE mdf_preapprovals
           SET status = $2, reserved = $3, claimed = $4, expires_at = $5,
               reason = coalesce($6, reason),
               decided_at = CASE WHEN $7 THEN $9 ELSE decided_at END,
               expired_at = CASE WHEN $8 THEN $9 ELSE expired_at END
           WHERE preapproval_id = $1 RETURNING *""",
        after.preapproval_id,
        after.status,
        after.reserved,
        after.claimed,
        after.expires_at,
        reason,
        decided,
        expired,
        at,
    )
    assert written is not None
    change = after.reserved - before.reserved
    if change:
        await conn.execute(
            "UPDATE mdf_funds SET reserved = reserved + $2 WHERE partner_id = $1",
            after.partner_id,
            change,
        )
    return written


async def due(conn: Connection, at: datetime, limit: int) -> list[asyncpg.Record]:
    """Approved pre-approvals whose claim window has closed."""
    return await conn.fetch(
        """SELECT preapproval_id, partner_id FROM mdf_preapprovals
           WHERE status = 'approved' AND expires_at <= $1 ORDER BY expires_at LIMIT $2""",
        at,
        limit,
    )


async def approved_partners(conn: Connection, campaign_ids: Sequence[str]) -> list[str]:
    """The partners with an approved pre-approval for one of the campaigns."""
    rows = await conn.fetch(
        """SELECT DISTINCT partner_id FROM mdf_preapprovals
           WHERE campaign_id = ANY($1::text[]) AND status = 'approved'""",
        list(campaign_ids),
    )
    return [r["partner_id"] for r in rows]


async def move_deadlines(conn: Connection, moved: Mapping[str, int]) -> list[asyncpg.Record]:
    """Move the claim deadline of each approved pre-approval of a campaign by the days its end
    moved (the window it was approved with stays: days, counted in UTC as claim_deadline
    does). Expired ones stay as they are: what they held is released already. Returns the rows
    as written."""
    return await conn.fetch(
        """UPDATE mdf_preapprovals AS p
           SET expires_at = ((p.expires_at AT TIME ZONE 'UTC') + make_interval(days => m.days))
               AT TIME ZONE 'UTC'
           FROM unnest($1::text[], $2::int[]) AS m (campaign_id, days)
           WHERE p.campaign_id = m.campaign_id AND p.status = 'approved'
           RETURNING p.*""",
        list(moved),
        list(moved.values()),
    )
