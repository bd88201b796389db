"""The read side of the finance team's payouts view: per partner what a period booked and paid,
the balance still owed and its settlement state; the payouts made in the period."""

from __future__ import annotations

from decimal import Decimal

from services.incentives.domain.programs import IncentivePrograms
from services.incentives.domain.settlement import Settlement, settlement_of
from services.incentives.payout_schemas import PartnerPayoutsOut, PayoutEntryOut, PayoutsOut
from shared.db import Connection, from_row

EARNINGS = ["accrual", "kicker", "spiff"]
PAYOUTS_SHOWN = 500


async def payouts(
    conn: Connection,
    programs: IncentivePrograms,
    *,
    period: str | None,
    state: Settlement | None,
    partner: str | None = None,
    offset: int,
    limit: int,
) -> PayoutsOut:
    rows = await conn.fetch(
        """
        SELECT partner_id,
               coalesce(sum(amount) FILTER (WHERE entry_type = ANY($2::text[]) AND in_period), 0)
                   AS earned,
               coalesce(sum(amount) FILTER (WHERE entry_type = 'reversal' AND in_period), 0)
                   AS reversed,
               coalesce(-sum(amount) FILTER (WHERE entry_type = 'payout' AND in_period), 0)
                   AS paid,
               sum(amount) AS balance,
               max(created_at) FILTER (WHERE entry_type = 'payout') AS last_paid_at
        FROM (SELECT *, ($1::text IS NULL OR period = $1) AS in_period FROM ledger_entries) e
        GROUP BY partner_id
        HAVING bool_or(in_period)
        ORDER BY sum(amount) DESC, partner_id
        """,
        period,
        EARNINGS,
    )
    everyone = [from_row(PartnerPayoutsOut, r, state=settlement_of(r["balance"])) for r in rows]
    matching = [
        p
        for p in everyone
        if (state is None or p.state is state) and (partner is None or p.partner_id == partner)
    ]
    made = await conn.fetch(
        """SELECT entry_id, partner_id, -amount AS amount, reference, period, created_at
           FROM ledger_entries WHERE entry_type = 'payout' AND ($1::text IS NULL OR period = $1)
           ORDER BY created_at DESC, entry_id LIMIT $2""",
        period,
        PAYOUTS_SHOWN,
    )
    periods = await conn.fetch("SELECT DISTINCT period FROM ledger_entries ORDER BY period DESC")
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
    )
