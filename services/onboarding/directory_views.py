"""The read side of the partner directory: every partner, filtered and paged for the channel
team's console (a partner's own view is `GET /partners`)."""

from __future__ import annotations

from typing import Any

from services.onboarding.directory_schemas import PartnerDirectoryOut, PartnerSummaryOut
from shared.db import Pool, from_row

# A partner a search names: its company name or domain holds the text (strpos: no LIKE
# wildcards to escape), or it is the partner's id.
_SEARCHED = """(${n}::text IS NULL OR strpos(lower(company_name), lower(${n})) > 0
    OR strpos(lower(coalesce(domain, '')), lower(${n})) > 0 OR partner_id = ${n})"""


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
    search: str | None = None,
) -> PartnerDirectoryOut:
    """Partners by company name (then id: a stable order to page through); `search` keeps
    those whose company name or domain holds it (any case) or whose id it is."""
    rows = await pool.fetch(
        f"""SELECT partner_id, company_name, domain, partner_type, status, tier, revenue,
                  agreement_valid_until, grace_until, updated_at, count(*) OVER () AS total
           FROM partners
           WHERE ($1::text IS NULL OR tier = $1) AND ($2::text IS NULL OR status = $2)
             AND ($3::text IS NULL OR partner_type = $3) AND {_SEARCHED.format(n=6)}
           ORDER BY lower(company_name), partner_id
           OFFSET $4 LIMIT $5""",
        tier,
        status,
        partner_type,
        offset,
        limit,
        search,
    )
    total = rows[0]["total"] if rows else 0
    if not rows and offset:
        total = await pool.fetchval(
            f"""SELECT count(*) FROM partners
               WHERE ($1::text IS NULL OR tier = $1) AND ($2::text IS NULL OR status = $2)
                 AND ($3::text IS NULL OR partner_type = $3) AND {_SEARCHED.format(n=4)}""",
            tier,
            status,
            partner_type,
            search,
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
