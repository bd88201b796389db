"""Read-side SQL of MDF pre-approvals."""

from __future__ import annotations

from services.incentives.preapproval_schemas import PreapprovalOut
from shared.db import Pool

COLUMNS = """preapproval_id, partner_id, reference, campaign_id, activity_kind, description,
    starts_on, ends_on, amount, currency, status, reason, reserved, claimed, expires_at,
    requested_at, decided_at, expired_at"""


# A caller's pre-approvals (a manager: every partner's), of one campaign and status if given,
# newest or oldest first; the oldest requested ones are the console's queue
# (mdf_preapprovals_waiting).
_PREAPPROVALS_SQL = f"""SELECT {COLUMNS} FROM mdf_preapprovals
WHERE ($1::text IS NULL OR partner_id = $1) AND ($2::text IS NULL OR campaign_id = $2)
  AND ($3::text IS NULL OR status = $3)
ORDER BY {{order}} LIMIT $4"""
PREAPPROVALS_NEWEST_SQL = _PREAPPROVALS_SQL.format(order="requested_at DESC, preapproval_id DESC")
PREAPPROVALS_OLDEST_SQL = _PREAPPROVALS_SQL.format(order="requested_at, preapproval_id")


async def preapprovals(
    pool: Pool,
    partner_id: str | None,
    campaign_id: str | None,
    limit: int,
    status: str | None = None,
    oldest_first: bool = False,
) -> list[PreapprovalOut]:
    """The latest (or the oldest) pre-approvals of `partner_id` (None: every partner's), of one
    campaign if `campaign_id` is given, of one status if `status` is."""
    sql = PREAPPROVALS_OLDEST_SQL if oldest_first else PREAPPROVALS_NEWEST_SQL
    rows = await pool.fetch(sql, partner_id, campaign_id, status, limit)
    return [PreapprovalOut.model_validate(dict(r)) for r in rows]


async def preapproval(pool: Pool, preapproval_id: str) -> PreapprovalOut | None:
    row = await pool.fetchrow(
        f"SELECT {COLUMNS} FROM mdf_preapprovals WHERE preapproval_id = $1", preapproval_id
    )
    return None if row is None else PreapprovalOut.model_validate(dict(row))
