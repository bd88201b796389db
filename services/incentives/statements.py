"""Read side of the ledger (balance, statement) and the one write that is not event-driven:
recording a payout."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from services.incentives.credits import lock_partner
from services.incentives.domain.programs import IncentivePrograms
from services.incentives.funds import now, read_fund
from shared.db import Connection
from shared.events.incentives import PayoutRecorded
from shared.outbox import Outbox
from shared.topics import INCENTIVE_LEDGER


def _entry_out(row: Any) -> dict[str, Any]:
    out = dict(row)
    for key in ("basis", "rate", "uncapped_amount", "amount"):
        if out.get(key) is not None:
            out[key] = str(out[key])
    for key in ("created_at", "ingested_at"):
        if out.get(key) is not None:
            out[key] = out[key].isoformat()
    return out


async def balance(conn: Connection, programs: IncentivePrograms, partner_id: str) -> dict[str, Any]:
    rows = await conn.fetch(
        """SELECT entry_type, coalesce(sum(amount), 0) AS total FROM ledger_entries
           WHERE partner_id = $1 GROUP BY entry_type""",
        partner_id,
    )
    totals = {r["entry_type"]: r["total"] for r in rows}
    zero = Decimal("0.00")
    return {
        "partner_id": partner_id,
        "currency": programs.currency,
        "balance": str(sum(totals.values(), zero)),
        "earned": str(sum((totals.get(t, zero) for t in ("accrual", "kicker", "spiff")), zero)),
        "reversed": str(totals.get("reversal", zero)),
        "paid": str(totals.get("payout", zero)),
        "mdf": await read_fund(conn, partner_id),
    }


async def statement(
    conn: Connection, programs: IncentivePrograms, partner_id: str, period: str
) -> dict[str, Any]:
    """Opening balance, the period's entries, totals by type and by rule, closing balance.

    An entry belongs to the revenue period of its credit (payouts: the period they were paid
    in), so a clawback lands in the period of what it takes back."""
    opening = await conn.fetchval(
        "SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE partner_id = $1 AND period < $2",
        partner_id,
        period,
    )
    rows = await conn.fetch(
        "SELECT * FROM ledger_entries WHERE partner_id = $1 AND period = $2 ORDER BY seq",
        partner_id,
        period,
    )
    by_type: dict[str, Decimal] = {}
    by_rule: dict[str, Decimal] = {}
    for row in rows:
        by_type[row["entry_type"]] = by_type.get(row["entry_type"], Decimal("0.00")) + row["amount"]
        by_rule[row["rule"]] = by_rule.get(row["rule"], Decimal("0.00")) + row["amount"]
    movement = sum((r["amount"] for r in rows), Decimal("0.00"))
    mdf_rows = await conn.fetch(
        "SELECT * FROM mdf_entries WHERE partner_id = $1 AND period = $2 ORDER BY seq",
        partner_id,
        period,
    )
    return {
        "partner_id": partner_id,
        "period": period,
        "currency": programs.currency,
        "opening_balance": str(opening),
        "entries": [_entry_out(r) for r in rows],
        "totals_by_type": {k: str(v) for k, v in by_type.items()},
        "totals_by_rule": {k: str(v) for k, v in by_rule.items()},
        "closing_balance": str(opening + movement),
        "mdf_entries": [_entry_out(r) for r in mdf_rows],
    }


class PayoutRefused(Exception):
    pass


async def record_payout(
    conn: Connection,
    outbox: Outbox,
    programs: IncentivePrograms,
    partner_id: str,
    amount: Decimal | None,
    reference: str,
) -> dict[str, Any]:
    """Pay `amount` (default: the whole balance) out of the partner's balance."""
    await lock_partner(conn, partner_id)
    current: Decimal = await conn.fetchval(
        "SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE partner_id = $1", partner_id
    )
    pay = current if amount is None else amount
    if pay <= 0:
        raise PayoutRefused(f"nothing to pay: the balance is {current}")
    if pay > current:
        raise PayoutRefused(f"payout of {pay} exceeds the balance of {current}")
    at = now()
    payout_id = str(uuid.uuid4())
    await conn.execute(
        """INSERT INTO ledger_entries (entry_id, partner_id, entry_type, rule, period, amount,
               currency, note, programs_version, reference, created_at, ingested_at)
           VALUES ($1, $2, 'payout', 'payout', $3, $4, $5, $6, $7, $8, $9, $9)""",
        payout_id,
        partner_id,
        programs.period_of(at.date()),
        -pay,
        programs.currency,
        f"paid out ({reference})",
        programs.version,
        reference,
        at,
    )
    event = PayoutRecorded(
        entry_id=payout_id,
        partner_id=partner_id,
        amount=pay,
        currency=programs.currency,
        reference=reference,
        balance_after=current - pay,
        paid_at=at,
        ingested_at=at,
    )
    await outbox.publish(
        conn, INCENTIVE_LEDGER, event, subject=partner_id, event_id=uuid.UUID(payout_id)
    )
    return event.model_dump(mode="json")
