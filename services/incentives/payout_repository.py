"""Write-side SQL of payouts: the partner's balance, the payout recorded under a reference, and
a new payout (its ledger entry and its reference, in the caller's transaction, under the
partner's lock: repository.lock_partner). `payout_references`' primary key (partner,
reference) refuses a second payout under one reference whatever the timing."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import asyncpg

from services.incentives.domain.programs import IncentivePrograms
from shared.db import Connection


async def ledger_balances(conn: Connection, partner_id: str) -> dict[str, Decimal]:
    """The partner's ledger balance in each currency it holds entries in."""
    rows = await conn.fetch(
        """SELECT currency, sum(amount) AS balance FROM ledger_entries
           WHERE partner_id = $1 GROUP BY currency""",
        partner_id,
    )
    return {r["currency"]: r["balance"] for r in rows}


async def by_reference(conn: Connection, partner_id: str, reference: str) -> asyncpg.Record | None:
    """The payout recorded under the partner's reference: what it asked for (`requested`,
    NULL: the whole balance) and what its ledger entry paid (`amount`, positive)."""
    return await conn.fetchrow(
        """SELECT e.entry_id, e.partner_id, r.reference, r.requested, -e.amount AS amount,
                  e.currency, r.balance_after, e.created_at AS paid_at, e.ingested_at
           FROM payout_references r JOIN ledger_entries e USING (entry_id)
           WHERE r.partner_id = $1 AND r.reference = $2""",
        partner_id,
        reference,
    )


async def insert(
    conn: Connection,
    programs: IncentivePrograms,
    *,
    payout_id: str,
    partner_id: str,
    requested: Decimal | None,
    amount: Decimal,
    reference: str,
    balance_after: Decimal,
    at: datetime,
) -> asyncpg.Record:
    """Book the payout of `amount` (asked for as `requested`, None: the whole balance) under
    `reference`; returns it as `by_reference` reads it (amounts as stored)."""
    await conn.execute(
        """INSERT INTO ledger_entries (entry_id, partner_id, entry_type, rule, period, amount,
               currency, note, programs_version, reference, created_at, ingested_at)
           VALUES ($1, $2, 'payout', 'payout', $3, $4, $5, $6, $7, $8, $9, $9)""",
        payout_id,
        partner_id,
        programs.period_of(at.date()),
        -amount,
        programs.currency,
        f"paid out ({reference})",
        programs.version,
        reference,
        at,
    )
    await conn.execute(
        """INSERT INTO payout_references (partner_id, reference, entry_id, requested,
               balance_after)
           VALUES ($1, $2, $3, $4, $5)""",
        partner_id,
        reference,
        payout_id,
        requested,
        balance_after,
    )
    written = await by_reference(conn, partner_id, reference)
    assert written is not None
    return written
