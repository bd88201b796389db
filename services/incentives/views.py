"""Read side of incentives: balances, statements, MDF funds and claims, shaped into the API's
response models. No locks: a read sees the last committed state."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter, ValidationError

from services.incentives.domain.earnings import ZERO
from services.incentives.domain.ledger import BalanceTotals, StatementTotals
from services.incentives.domain.mdf import Fund, Lot
from services.incentives.domain.programs import IncentivePrograms
from services.incentives.domain.quarters import by_quarter
from services.incentives.schemas import (
    BalanceOut,
    ClaimOut,
    EarningsOut,
    FundOut,
    HeldCreditOut,
    LedgerEntryOut,
    LotOut,
    MdfEntryOut,
    QuarterEarningsOut,
    StatementOut,
)
from shared.clock import now
from shared.db import Connection, Pool
from shared.events.bounds import Amount4

LEDGER_COLUMNS = """seq, entry_id, partner_id, entry_type, rule, period, credit_id, deal_key,
    basis, rate, uncapped_amount, amount, currency, note, tier, programs_version, reverses,
    reference, created_at, ingested_at"""
MDF_COLUMNS = """seq, entry_id, partner_id, entry_type, rule, period, credit_id, lot_id, claim_id,
    basis, rate, uncapped_amount, amount, currency, note, reverses, programs_version,
    created_at, ingested_at"""
CREDIT_AMOUNT: TypeAdapter[Decimal] = TypeAdapter(Amount4)
# A fund lists the lots that expire after $2 (spent, lapsed or live) and every lot still holding
# money: a lot per MDF accrual, kept for years, so the list is bounded by time, not by history.
# The two parts do not overlap; each is read through its own index (mdf_lots_by_partner from $2
# on, mdf_lots_live before it), in expiry order.
FUND_LOTS_SQL = """
SELECT lot_id, credit_id, amount, remaining, expired, expires_at FROM mdf_lots
WHERE partner_id = $1 AND remaining > 0 AND expires_at < $2
UNION ALL
SELECT lot_id, credit_id, amount, remaining, expired, expires_at FROM mdf_lots
WHERE partner_id = $1 AND expires_at >= $2
ORDER BY expires_at, lot_id"""
# How long a lot that ended (spent or lapsed) stays in its fund's list after its expiry.
ENDED_LOTS_SHOWN = timedelta(days=90)
CLAIM_COLUMNS = """claim_id, partner_id, amount, currency, description, proof_reference, status,
    reason, requested_at, decided_at, preapproval_id"""


async def fund(conn: Connection, partner_id: str) -> FundOut:
    """The fund as a partner sees it: what is available now, its MDF ledger balance, its
    deficit, the lots holding money and those that ended in the last 90 days."""
    row = await conn.fetchrow(
        "SELECT deficit, reserved FROM mdf_funds WHERE partner_id = $1", partner_id
    )
    at = now()
    lots_since = at - ENDED_LOTS_SHOWN
    lots = await conn.fetch(FUND_LOTS_SQL, partner_id, lots_since)
    held = Fund(
        partner_id,
        row["deficit"] if row else ZERO,
        [Lot(r["lot_id"], r["remaining"], r["expires_at"]) for r in lots],
        row["reserved"] if row else ZERO,
    )
    balance = await conn.fetchval(
        "SELECT coalesce(sum(amount), 0) FROM mdf_entries WHERE partner_id = $1", partner_id
    )
    return FundOut(
        partner_id=partner_id,
        available=held.available(at),
        ledger_balance=balance,
        deficit=held.deficit,
        reserved=held.reserved,
        lots=[LotOut.model_validate(dict(r)) for r in lots],
        lots_since=lots_since,
    )


async def balance(conn: Connection, programs: IncentivePrograms, partner_id: str) -> BalanceOut:
    rows = await conn.fetch(
        """SELECT entry_type, coalesce(sum(amount), 0) AS total FROM ledger_entries
           WHERE partner_id = $1 GROUP BY entry_type""",
        partner_id,
    )
    totals = BalanceTotals.of({r["entry_type"]: r["total"] for r in rows})
    return BalanceOut(
        partner_id=partner_id,
        currency=programs.currency,
        balance=totals.balance,
        earned=totals.earned,
        reversed=totals.reversed,
        paid=totals.paid,
        mdf=await fund(conn, partner_id),
    )


async def statement(
    conn: Connection, programs: IncentivePrograms, partner_id: str, period: str
) -> StatementOut:
    """Opening balance, the period's entries, totals by type and by rule, closing balance.

    An entry belongs to the revenue period of its credit (payouts: the period they were paid
    in), so a clawback lands in the period of what it takes back."""
    opening = await conn.fetchval(
        "SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE partner_id = $1 AND period < $2",
        partner_id,
        period,
    )
    rows = await conn.fetch(
        f"""SELECT {LEDGER_COLUMNS} FROM ledger_entries WHERE partner_id = $1 AND period = $2
            ORDER BY seq""",
        partner_id,
        period,
    )
    totals = StatementTotals.of(opening, ((r["entry_type"], r["rule"], r["amount"]) for r in rows))
    mdf_rows = await conn.fetch(
        f"""SELECT {MDF_COLUMNS} FROM mdf_entries WHERE partner_id = $1 AND period = $2
            ORDER BY seq""",
        partner_id,
        period,
    )
    return StatementOut(
        partner_id=partner_id,
        period=period,
        currency=programs.currency,
        opening_balance=opening,
        entries=[LedgerEntryOut.model_validate(dict(r)) for r in rows],
        totals_by_type=totals.by_type,
        totals_by_rule=totals.by_rule,
        closing_balance=totals.closing_balance,
        mdf_entries=[MdfEntryOut.model_validate(dict(r)) for r in mdf_rows],
    )


# A caller's claims (a manager: every partner's), of one status if given, newest or oldest
# first; the oldest requested ones are the console's queue (mdf_claims_waiting).
_CLAIMS_SQL = f"""SELECT {CLAIM_COLUMNS} FROM mdf_claims
WHERE ($1::text IS NULL OR partner_id = $1) AND ($2::text IS NULL OR status = $2)
ORDER BY {{order}} LIMIT $3"""
CLAIMS_NEWEST_SQL = _CLAIMS_SQL.format(order="requested_at DESC, claim_id DESC")
CLAIMS_OLDEST_SQL = _CLAIMS_SQL.format(order="requested_at, claim_id")


async def claims(
    pool: Pool, partner_id: str | None, limit: int, status: str | None, oldest_first: bool
) -> list[ClaimOut]:
    """The latest (or the oldest) claims of `partner_id` (None: of every partner), of one
    status if given."""
    sql = CLAIMS_OLDEST_SQL if oldest_first else CLAIMS_NEWEST_SQL
    rows = await pool.fetch(sql, partner_id, status, limit)
    return [ClaimOut.model_validate(dict(r)) for r in rows]


async def claim(pool: Pool, claim_id: str) -> ClaimOut | None:
    row = await pool.fetchrow(
        f"SELECT {CLAIM_COLUMNS} FROM mdf_claims WHERE claim_id = $1", claim_id
    )
    return None if row is None else ClaimOut.model_validate(dict(row))


async def held_credits(pool: Pool, partner_id: str | None, limit: int) -> list[HeldCreditOut]:
    """The credits waiting for their partner (of `partner_id`; None: of every partner), oldest
    first. The amount is read as the credit contract reads it, in Python: one held before the
    contract bounded amounts (1E+999999 cast to numeric made this answer 500 for every caller)
    is shown without it, its reason saying why."""
    rows = await pool.fetch(
        """SELECT credit_id, partner_id, event #>> '{data,deal_key}' AS deal_key,
               event #>> '{data,amount}' AS amount,
               event #>> '{data,currency}' AS currency, reason, held_at
           FROM held_credits WHERE ($1::text IS NULL OR partner_id = $1)
           ORDER BY seq LIMIT $2""",
        partner_id,
        limit,
    )
    return [_held(dict(row)) for row in rows]


def _held(row: dict[str, Any]) -> HeldCreditOut:
    try:
        amount: Decimal | None = CREDIT_AMOUNT.validate_python(row["amount"])
    except ValidationError as error:
        amount = None
        why = error.errors(include_url=False)[0]["msg"]
        row["reason"] += (
            f"; its amount {str(row['amount'])[:40]!r} is not one a credit may carry ({why}): "
            "it will be dead-lettered, not booked"
        )
    return HeldCreditOut.model_validate({**row, "amount": amount})


async def earnings_by_quarter(
    conn: Connection, programs: IncentivePrograms, partner_id: str, quarters: list[str]
) -> EarningsOut:
    """What the partner earned and had taken back in each of `quarters` (an entry belongs to
    its credit's revenue period, as on the statement)."""
    rows = await conn.fetch(
        """SELECT period, entry_type, sum(amount) AS total FROM ledger_entries
           WHERE partner_id = $1 AND period >= $2 GROUP BY period, entry_type""",
        partner_id,
        quarters[0][:4],  # periods sort as text: every period of that year or later
    )
    found = by_quarter(((r["period"], r["entry_type"], r["total"]) for r in rows), quarters)
    return EarningsOut(
        partner_id=partner_id,
        currency=programs.currency,
        quarters=[
            QuarterEarningsOut(quarter=q.quarter, earned=q.earned, reversed=q.reversed, net=q.net)
            for q in found
        ],
    )
