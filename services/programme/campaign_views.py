"""Read-side SQL of co-marketing campaigns: the records a caller may see and each campaign's
results, summed from the facts at read time. A fact counts for a campaign only if its partner
is one of the campaign's; `partner_id` narrows everything to one partner (a partner's view)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import asyncpg

from shared.db import Connection
from shared.errors import Unprocessable


async def campaign(conn: Connection, campaign_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM campaigns WHERE campaign_id = $1", campaign_id)


async def partners_of(conn: Connection, campaign_id: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT partner_id FROM campaign_partners WHERE campaign_id = $1 ORDER BY partner_id",
        campaign_id,
    )
    return [r["partner_id"] for r in rows]


async def campaigns(
    conn: Connection, partner_id: str | None, limit: int, offset: int, after: str | None = None
) -> list[asyncpg.Record]:
    """The latest-starting campaigns first; of one partner's if `partner_id` is given; after
    the campaign `after` names in that order (422 if it names none the caller sees). Found in
    review: pages were offsets, so a campaign planned or re-dated between two pages moved
    others past the next one, never shown."""
    since = None
    if after is not None:
        since = await conn.fetchval(
            """SELECT c.starts_on FROM campaigns AS c
               WHERE c.campaign_id = $1 AND ($2::text IS NULL OR EXISTS (
                   SELECT 1 FROM campaign_partners AS p
                   WHERE p.campaign_id = c.campaign_id AND p.partner_id = $2))""",
            after,
            partner_id,
        )
        if since is None:
            raise Unprocessable(f"after: {after} names no campaign in this list")
    return await conn.fetch(
        """SELECT c.* FROM campaigns AS c
           WHERE ($1::text IS NULL OR EXISTS (
               SELECT 1 FROM campaign_partners AS p
               WHERE p.campaign_id = c.campaign_id AND p.partner_id = $1))
             AND ($4::date IS NULL OR c.starts_on < $4
                  OR (c.starts_on = $4 AND c.campaign_id > $5))
           ORDER BY c.starts_on DESC, c.campaign_id LIMIT $2 OFFSET $3""",
        partner_id,
        limit,
        offset,
        since,
        after,
    )


_MEMBERS = """JOIN campaign_partners AS m
    ON m.campaign_id = f.campaign_id AND m.partner_id = f.partner_id"""


async def preapprovals(
    conn: Connection, campaign_id: str, partner_id: str | None
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""SELECT f.preapproval_id, f.partner_id, f.status, f.amount, f.reserved, f.claimed,
                   f.currency
            FROM campaign_preapprovals AS f {_MEMBERS}
            WHERE f.campaign_id = $1 AND ($2::text IS NULL OR f.partner_id = $2)
            ORDER BY f.preapproval_id""",
        campaign_id,
        partner_id,
    )


async def leads_and_pipeline(
    conn: Connection, campaign_id: str, partner_id: str | None
) -> tuple[int, dict[str, Decimal]]:
    """Leads and pipeline per currency: the latest report of each partner."""
    rows = await conn.fetch(
        f"""SELECT DISTINCT ON (f.partner_id) f.partner_id, f.leads, f.pipeline, f.currency
            FROM campaign_result_reports AS f {_MEMBERS}
            WHERE f.campaign_id = $1 AND ($2::text IS NULL OR f.partner_id = $2)
            ORDER BY f.partner_id, f.report_id DESC""",
        campaign_id,
        partner_id,
    )
    pipeline: dict[str, Decimal] = {}
    for r in rows:
        pipeline[r["currency"]] = pipeline.get(r["currency"], Decimal("0.00")) + r["pipeline"]
    return sum(r["leads"] for r in rows), pipeline


async def _per_currency(conn: Connection, sql: str, *args: Any) -> dict[str, Decimal]:
    return {r["currency"]: r["total"] for r in await conn.fetch(sql, *args)}


async def attributed_revenue(
    conn: Connection, campaign_id: str, partner_id: str | None
) -> dict[str, Decimal]:
    """Credits issued through the campaign's touchpoint, net of reversals (a reversed credit
    counts zero; its correction, if through the campaign too, counts)."""
    return await _per_currency(
        conn,
        """SELECT c.currency, sum(c.amount)::numeric(20, 2) AS total
           FROM campaign_credits AS k
           JOIN credits AS c ON c.credit_id = k.credit_id
           JOIN campaign_partners AS m
               ON m.campaign_id = k.campaign_id AND m.partner_id = c.partner_id
           WHERE k.campaign_id = $1 AND ($2::text IS NULL OR c.partner_id = $2)
             AND NOT EXISTS (SELECT 1 FROM credit_reversals AS r WHERE r.credit_id = c.credit_id)
           GROUP BY c.currency""",
        campaign_id,
        partner_id,
    )


async def mdf_claimed(
    conn: Connection, campaign_id: str, partner_id: str | None
) -> dict[str, Decimal]:
    return await _per_currency(
        conn,
        f"""SELECT f.currency, sum(f.amount) AS total FROM campaign_claims AS f {_MEMBERS}
            WHERE f.campaign_id = $1 AND ($2::text IS NULL OR f.partner_id = $2)
            GROUP BY f.currency""",
        campaign_id,
        partner_id,
    )
