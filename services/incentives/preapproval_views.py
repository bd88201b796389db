"""Read-side SQL of MDF pre-approvals."""

from __future__ import annotations

from services.incentives.preapproval_schemas import PreapprovalOut
from shared.db import Pool

COLUMNS = """preapproval_id, partner_id, reference, campaign_id, activity_kind, description,
    starts_on, ends_on, amount, currency, status, reason, reserved, claimed, expires_at,
    requested_at, decided_at, expired_at"""


async def preapprovals(
    pool: Pool, partner_id: str | None, campaign_id: str | None, limit: int
) -> list[PreapprovalOut]:
    """The latest pre-approvals of `partner_id` (None: every partner's), of one campaign if
    `campaign_id` is given."""
    rows = await pool.fetch(
        f"""SELECT {COLUMNS} FROM mdf_preapprovals
            WHERE ($1::text IS NULL OR partner_id = $1)
              AND ($2::text IS NULL OR campaign_id = $2)
            ORDER BY requested_at DESC LIMIT $3""",
        partner_id,
        campaign_id,
        limit,
    )
    return [PreapprovalOut.model_validate(dict(r)) for r in rows]


async def preapproval(pool: Pool, preapproval_id: str) -> PreapprovalOut | None:
    row = await pool.fetchrow(
        f"SELECT {COLUMNS} FROM mdf_preapprovals WHERE preapproval_id = $1", preapproval_id
    )
    return None if row is None else PreapprovalOut.model_validate(dict(row))
