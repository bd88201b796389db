"""The read side of the finance team's payouts view: per partner what a period booked and paid,
the balance still owed and its settlement state; the payouts made in the period."""

from __future__ import annotations

from decimal import Decimal

from services.incentives.domain.programs import IncentivePrograms
from services.incentives.domain.settlement import Settlement, settlement_of
from services.incentives.payout_schemas import PartnerPayoutsOut, PayoutEntryOut, PayoutsOut
from shared.db import Connection, from_row
from shared.errors import Unprocessable

# From the running totals per partner and period (incentives migration 0012), not the ledger's
# entries: earned there is every entry but payouts, so the period's earnings (accruals, kickers
# and SPIFFs) are it less its reversals. A partner is in a period it has a ledger entry in.
PARTNER_TOTALS_SQL = """
SELECT partner_id,
       coalesce(sum(earned - reversed) FILTER (WHERE in_period), 0) AS earned,
       coalesce(sum(reversed) FILTER (WHERE in_period), 0) AS reversed,
       coalesce(-sum(paid) FILTER (WHERE in_period), 0) AS paid,
       sum(earned + paid) AS balance,
       max(last_paid_at) AS last_paid_at
FROM (SELECT *, entries > 0 AND ($1::text IS NULL OR period = $1) AS in_period
      FROM period_totals) t
GROUP BY partner_id
HAVING bool_or(in_period)
ORDER BY sum(earned + paid) DESC, partner_id
"""
# Newest first, a page at a time after the payout made at `$3` with the id `$4` (the page
# before's last), through ledger_payouts_by_time; `$5` more than asked tells whether a page
# follows.
PAYOUTS_MADE_SQL = """SELECT entry_id, partner_id, -amount AS amount, reference, period, created_at
    FROM ledger_entries
    WHERE entry_type = 'payout' AND ($1::text IS NULL OR period = $1)
      AND ($2::text IS NULL OR partner_id = $2)
      AND ($3::timestamptz IS NULL OR created_at < $3
           OR (created_at = $3 AND entry_id > $4::text))
    ORDER BY created_at DESC, entry_id LIMIT $5"""
PAYOUTS_COUNTED_SQL = """SELECT count(*) FROM ledger_entries
    WHERE entry_type = 'payout' AND ($1::text IS NULL OR period = $1)
      AND ($2::text IS NULL OR partner_id = $2)"""
PERIODS_SQL = "SELECT DISTINCT period FROM period_totals WHERE entries > 0 ORDER BY period DESC"


async def payouts(
    conn: Connection,
    programs: IncentivePrograms,
    *,
    period: str | None,
    state: Settlement | None,
    partner: str | None = None,
    offset: int,
    limit: int,
    payouts_before: str | None = None,
    payouts_limit: int = 100,
) -> PayoutsOut:
    rows = await conn.fetch(PARTNER_TOTALS_SQL, period)
    known = await conn.fetch(
        "SELECT partner_id, status FROM partners WHERE partner_id = ANY($1::text[])",
        [r["partner_id"] for r in rows],
    )
    statuses: dict[str, str] = {k["partner_id"]: k["status"] for k in known}
    everyone = [
        from_row(
            PartnerPayoutsOut,
            r,
            state=settlement_of(r["balance"]),
            partner_status=statuses.get(r["partner_id"]),
        )
        for r in rows
    ]
    matching = [
        p
        for p in everyone
        if (state is None or p.state is state) and (partner is None or p.partner_id == partner)
    ]
    after_moment = None
    if payouts_before is not None:
        after_moment = await conn.fetchval(
            "SELECT created_at FROM ledger_entries WHERE entry_id = $1 AND entry_type = 'payout'",
            payouts_before,
        )
        if after_moment is None:
            raise Unprocessable(f"payouts_before names no payout: {payouts_before}")
    made = await conn.fetch(
        PAYOUTS_MADE_SQL, period, partner, after_moment, payouts_before, payouts_limit + 1
    )
    more = len(made) > payouts_limit
    made = made[:payouts_limit]
    periods = await conn.fetch(PERIODS_SQL)
    return PayoutsOut(
        period=period,
        currency=programs.currency,
        periods=[r["period"] for r in periods],
        totals={
            "earned": sum((p.earned for p in everyone), Decimal(0)),
            "reversed": sum((p.reversed for p in everyone), Decimal(0)),
            "paid": sum((p.paid for p in everyone), Decimal(0)),
            "owed": sum((p.balance for p in everyone if p.balance > 0), Decimal(0)),
        },
        partners=matching[offset : offset + limit],
        total_partners=len(matching),
        payouts=[
            PayoutEntryOut(
                entry_id=r["entry_id"],
                partner_id=r["partner_id"],
                amount=r["amount"],
                reference=r["reference"] or "",
                period=r["period"],
                paid_at=r["created_at"],
            )
            for r in made
        ],
        total_payouts=await conn.fetchval(PAYOUTS_COUNTED_SQL, period, partner),
        next_payouts_before=made[-1]["entry_id"] if more else None,
    )
