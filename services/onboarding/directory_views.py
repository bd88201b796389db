"""The read side of the partner directory: every partner, filtered and paged for the channel
team's console (a partner's own view is `GET /partners`)."""

from __future__ import annotations

from typing import Any

from services.onboarding.directory_schemas import PartnerDirectoryOut, PartnerSummaryOut
from shared.db import Pool, from_row


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


async def directory(
    pool: Pool,
    *,
    tier: str | None,
    status: str | None,
    partner_type: str | None,
    offset: int,
    limit: int,
) -> PartnerDirectoryOut:
    """Partners by company name (then id: a stable order to page through)."""
    rows = await pool.fetch(
        """SELECT partner_id, company_name, domain, partner_type, status, tier, revenue,
                  agreement_valid_until, grace_until, updated_at, count(*) OVER () AS total
           FROM partners
           WHERE ($1::text IS NULL OR tier = $1) AND ($2::text IS NULL OR status = $2)
             AND ($3::text IS NULL OR partner_type = $3)
           ORDER BY lower(company_name), partner_id
           OFFSET $4 LIMIT $5""",
        tier,
        status,
        partner_type,
        offset,
        limit,
    )
    total = rows[0]["total"] if rows else 0
    if not rows and offset:
        total = await pool.fetchval(
            """SELECT count(*) FROM partners
               WHERE ($1::text IS NULL OR tier = $1) AND ($2::text IS NULL OR status = $2)
                 AND ($3::text IS NULL OR partner_type = $3)""",
            tier,
            status,
            partner_type,
        )
    return PartnerDirectoryOut(
        partners=[
            from_row(
                PartnerSummaryOut,
                r,
                attributed_revenue=str(r["revenue"]),
                agreement_valid_until=_iso(r["agreement_valid_until"]),
                grace_until=_iso(r["grace_until"]),
                updated_at=_iso(r["updated_at"]),
            )
            for r in rows
        ],
        total=total,
        offset=offset,
        limit=limit,
    )
