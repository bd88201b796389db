"""Service layer of MDF: partner funds, lots, the MDF ledger, claims and expiry.

Every movement of one partner's fund first locks its `mdf_funds` row (SELECT ... FOR UPDATE), so
concurrent accruals, clawbacks, expiries and claim approvals serialise on it: a claim is checked
against the fund and debited while nobody else can change the fund.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from services.incentives.domain.earnings import ZERO
from services.incentives.domain.mdf import Lot, MdfAccrual, available, claim_decision, consume
from services.incentives.domain.programs import IncentivePrograms
from shared.db import Connection
from shared.events.incentives import MdfAccrued, MdfClaimDecided, MdfExpired
from shared.events.notifications import PartnerNotification
from shared.outbox import Outbox
from shared.topics import INCENTIVE_LEDGER, PARTNER_NOTIFICATIONS

ENTRY_NAMESPACE = uuid.UUID("3f6b2c1e-8d4a-4f0b-9c7e-5a1d2e3f4b60")


def entry_id(*parts: str) -> str:
    """A deterministic entry id: the same cause always names the same entry."""
    return str(uuid.uuid5(ENTRY_NAMESPACE, "/".join(parts)))


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Fund:
    partner_id: str
    deficit: Decimal
    lots: list[Lot]

    def available(self, at: datetime) -> Decimal:
        return available(self.lots, self.deficit, at)


async def lock_fund(conn: Connection, partner_id: str, *, create: bool = True) -> Fund | None:
    """Lock the partner's fund row for the rest of the transaction and load its live lots."""
    if create:
        await conn.execute(
            "INSERT INTO mdf_funds (partner_id, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            partner_id,
            now(),
        )
    row = await conn.fetchrow(
        "SELECT deficit FROM mdf_funds WHERE partner_id = $1 FOR UPDATE", partner_id
    )
    if row is None:
        return None
    lots = await conn.fetch(
        "SELECT lot_id, remaining, expires_at FROM mdf_lots WHERE partner_id = $1 AND remaining > 0",
        partner_id,
    )
    return Fund(
        partner_id,
        row["deficit"],
        [Lot(r["lot_id"], r["remaining"], r["expires_at"]) for r in lots],
    )


async def read_fund(conn: Connection, partner_id: str) -> dict[str, Any]:
    """The fund as a partner sees it (no lock: a read)."""
    deficit = await conn.fetchval("SELECT deficit FROM mdf_funds WHERE partner_id = $1", partner_id)
    lots = await conn.fetch(
        """SELECT lot_id, credit_id, amount, remaining, expired, expires_at FROM mdf_lots
           WHERE partner_id = $1 ORDER BY expires_at, lot_id""",
        partner_id,
    )
    at = now()
    fund = Fund(
        partner_id,
        deficit or ZERO,
        [Lot(r["lot_id"], r["remaining"], r["expires_at"]) for r in lots],
    )
    balance = await conn.fetchval(
        "SELECT coalesce(sum(amount), 0) FROM mdf_entries WHERE partner_id = $1", partner_id
    )
    return {
        "partner_id": partner_id,
        "available": str(fund.available(at)),
        "ledger_balance": str(balance),
        "deficit": str(fund.deficit),
        "lots": [
            {
                "lot_id": r["lot_id"],
                "credit_id": r["credit_id"],
                "amount": str(r["amount"]),
                "remaining": str(r["remaining"]),
                "expired": str(r["expired"]),
                "expires_at": r["expires_at"].isoformat(),
            }
            for r in lots
        ],
    }


async def _mdf_entry(conn: Connection, **values: Any) -> None:
    columns = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    await conn.execute(f"INSERT INTO mdf_entries ({columns}) VALUES ({params})", *values.values())


async def book_accrual(
    conn: Connection,
    outbox: Outbox,
    programs: IncentivePrograms,
    accrual: MdfAccrual,
    *,
    partner_id: str,
    credit_id: str,
    deal_key: str,
    period: str,
    ingested_at: datetime | None,
) -> None:
    fund = await lock_fund(conn, partner_id)
    assert fund is not None
    at = now()
    # An outstanding deficit (clawback of funds already spent) is paid off first.
    absorbed = min(fund.deficit, accrual.amount)
    lot_id = entry_id(credit_id, "mdf")
    await conn.execute(
        """INSERT INTO mdf_lots (lot_id, partner_id, credit_id, amount, remaining, expires_at, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        lot_id,
        partner_id,
        credit_id,
        accrual.amount,
        accrual.amount - absorbed,
        accrual.expires_at,
        at,
    )
    if absorbed:
        await conn.execute(
            "UPDATE mdf_funds SET deficit = deficit - $2 WHERE partner_id = $1",
            partner_id,
            absorbed,
        )
    note = accrual.note
    if absorbed:
        note = (
            f"{note}; {absorbed} repaid an MDF deficit"
            if note
            else f"{absorbed} repaid an MDF deficit"
        )
    await _mdf_entry(
        conn,
        entry_id=lot_id,
        partner_id=partner_id,
        entry_type="accrual",
        rule=accrual.rule,
        period=period,
        credit_id=credit_id,
        lot_id=lot_id,
        basis=accrual.basis,
        rate=accrual.rate,
        uncapped_amount=accrual.uncapped_amount,
        amount=accrual.amount,
        currency=programs.currency,
        note=note,
        programs_version=programs.version,
        created_at=at,
        ingested_at=ingested_at,
    )
    lots_after = [*fund.lots, Lot(lot_id, accrual.amount - absorbed, accrual.expires_at)]
    available_after = available(lots_after, fund.deficit - absorbed, at)
    await outbox.publish(
        conn,
        INCENTIVE_LEDGER,
        MdfAccrued(
            entry_id=lot_id,
            partner_id=partner_id,
            program_rule=accrual.rule,
            credit_id=credit_id,
            deal_key=deal_key,
            period=period,
            basis=accrual.basis,
            rate=accrual.rate,
            uncapped_amount=accrual.uncapped_amount,
            amount=accrual.amount,
            currency=programs.currency,
            note=note,
            expires_at=accrual.expires_at,
            fund_available=available_after,
            accrued_at=at,
            ingested_at=ingested_at,
        ),
        subject=partner_id,
        event_id=uuid.UUID(lot_id),
    )


async def claw_back_accrual(
    conn: Connection,
    programs: IncentivePrograms,
    *,
    partner_id: str,
    credit_id: str,
) -> tuple[dict[str, Any], Decimal] | None:
    """Reverse the MDF accrual a credit produced, exactly. Returns (accrual entry, amount)."""
    lot_id = entry_id(credit_id, "mdf")
    accrual = await conn.fetchrow(
        "SELECT * FROM mdf_entries WHERE entry_id = $1 AND entry_type = 'accrual'", lot_id
    )
    if accrual is None:
        return None
    fund = await lock_fund(conn, partner_id, create=False)
    assert fund is not None
    at = now()
    lot = await conn.fetchrow("SELECT * FROM mdf_lots WHERE lot_id = $1 FOR UPDATE", lot_id)
    assert lot is not None
    lots = list(fund.lots)
    if lot["expired"] > 0:
        # What expired of this lot was never the partner's to use: restore it before the
        # clawback so only funds actually spent can turn into a deficit.
        await _mdf_entry(
            conn,
            entry_id=entry_id(lot_id, "expiry-reversal"),
            partner_id=partner_id,
            entry_type="expiry_reversal",
            rule=accrual["rule"],
            period=accrual["period"],
            credit_id=credit_id,
            lot_id=lot_id,
            amount=lot["expired"],
            currency=accrual["currency"],
            note="expired remainder restored before the accrual's clawback",
            programs_version=programs.version,
            created_at=at,
        )
        await conn.execute(
            "UPDATE mdf_lots SET remaining = remaining + expired, expired = 0 WHERE lot_id = $1",
            lot_id,
        )
        lots = [x for x in lots if x.lot_id != lot_id]
        lots.append(Lot(lot_id, lot["remaining"] + lot["expired"], lot["expires_at"]))
    amount: Decimal = accrual["amount"]
    takes, shortfall = consume(lots, amount, at, first=lot_id)
    for taken_lot, take in takes:
        await conn.execute(
            "UPDATE mdf_lots SET remaining = remaining - $2 WHERE lot_id = $1", taken_lot, take
        )
    note = "clawback: the credit behind this accrual was reversed"
    if shortfall > 0:
        await conn.execute(
            "UPDATE mdf_funds SET deficit = deficit + $2 WHERE partner_id = $1",
            partner_id,
            shortfall,
        )
        note += f"; {shortfall} already spent becomes a deficit repaid by future accruals"
    await _mdf_entry(
        conn,
        entry_id=entry_id(lot_id, "reversal"),
        partner_id=partner_id,
        entry_type="reversal",
        rule=accrual["rule"],
        period=accrual["period"],
        credit_id=credit_id,
        lot_id=lot_id,
        amount=-amount,
        currency=accrual["currency"],
        note=note,
        reverses=lot_id,
        programs_version=programs.version,
        created_at=at,
    )
    return dict(accrual), amount


async def request_claim(
    conn: Connection,
    programs: IncentivePrograms,
    *,
    partner_id: str,
    amount: Decimal,
    description: str,
    proof_reference: str,
) -> tuple[str | None, str, Decimal]:
    """Record a claim if the fund covers it now (approval checks again under the lock)."""
    fund = await lock_fund(conn, partner_id)
    assert fund is not None
    at = now()
    available_now = fund.available(at)
    ok, reason = claim_decision(available_now, amount)
    if not ok:
        return None, reason, available_now
    claim_id = str(uuid.uuid4())
    await conn.execute(
        """INSERT INTO mdf_claims (claim_id, partner_id, amount, currency, description,
               proof_reference, status, requested_at)
           VALUES ($1, $2, $3, $4, $5, $6, 'requested', $7)""",
        claim_id,
        partner_id,
        amount,
        programs.currency,
        description,
        proof_reference,
        at,
    )
    return claim_id, "requested", available_now


class ClaimConflict(Exception):
    """The claim cannot be decided as asked (already decided, or it would overdraw)."""


async def decide_claim(
    conn: Connection,
    outbox: Outbox,
    programs: IncentivePrograms,
    claim_id: str,
    *,
    approve: bool,
    note: str,
) -> dict[str, Any] | None:
    """Approve (debit the fund) or reject a requested claim. None: no such claim."""
    claim = await conn.fetchrow("SELECT * FROM mdf_claims WHERE claim_id = $1", claim_id)
    if claim is None:
        return None
    partner_id = claim["partner_id"]
    # Lock order everywhere: the fund first, then what belongs to it.
    fund = await lock_fund(conn, partner_id)
    assert fund is not None
    claim = await conn.fetchrow("SELECT * FROM mdf_claims WHERE claim_id = $1 FOR UPDATE", claim_id)
    assert claim is not None
    if claim["status"] != "requested":
        raise ClaimConflict(f"claim {claim_id} is already {claim['status']}")
    at = now()
    amount: Decimal = claim["amount"]
    available_now = fund.available(at)
    debit_id: str | None = None
    if approve:
        ok, reason = claim_decision(available_now, amount)
        if not ok:
            raise ClaimConflict(reason)
        takes, shortfall = consume(fund.lots, amount, at)
        assert shortfall == 0
        for lot_id, take in takes:
            await conn.execute(
                "UPDATE mdf_lots SET remaining = remaining - $2 WHERE lot_id = $1", lot_id, take
            )
        debit_id = entry_id(claim_id, "claim")
        await _mdf_entry(
            conn,
            entry_id=debit_id,
            partner_id=partner_id,
            entry_type="claim",
            rule="mdf:claim",
            period=programs.period_of(at.date()),
            claim_id=claim_id,
            amount=-amount,
            currency=claim["currency"],
            note=f"claim approved: {note}" if note else "claim approved",
            programs_version=programs.version,
            created_at=at,
            ingested_at=at,
        )
        available_now -= amount
        status, reason = "approved", note or "approved"
    else:
        status, reason = "rejected", note or "rejected"
    await conn.execute(
        "UPDATE mdf_claims SET status = $2, reason = $3, decided_at = $4 WHERE claim_id = $1",
        claim_id,
        status,
        reason,
        at,
    )
    decided = MdfClaimDecided(
        claim_id=claim_id,
        partner_id=partner_id,
        status=status,
        amount=amount,
        currency=claim["currency"],
        description=claim["description"],
        proof_reference=claim["proof_reference"],
        reason=reason,
        entry_id=debit_id,
        fund_available=available_now,
        decided_at=at,
        ingested_at=at,
    )
    await outbox.publish(conn, INCENTIVE_LEDGER, decided, subject=partner_id)
    await outbox.publish(
        conn,
        PARTNER_NOTIFICATIONS,
        PartnerNotification(
            notification_id=entry_id(claim_id, "notification"),
            partner_id=partner_id,
            recipient=partner_id,
            kind="mdf_claim",
            subject=f"MDF claim {status}: {amount} {claim['currency']}",
            body=f"Your MDF claim '{claim['description']}' was {status}: {reason}. "
            f"Available MDF: {available_now} {claim['currency']}.",
            created_at=at,
            ingested_at=at,
        ),
        subject=partner_id,
    )
    return decided.model_dump(mode="json")


async def expire_due(
    conn: Connection, outbox: Outbox, programs: IncentivePrograms, limit: int = 200
) -> int:
    """Expire the unused remainder of lots past their expiry (one partner at a time)."""
    at = now()
    partners = await conn.fetch(
        """SELECT DISTINCT partner_id FROM mdf_lots
           WHERE remaining > 0 AND expires_at <= $1 LIMIT $2""",
        at,
        limit,
    )
    expired_count = 0
    for row in partners:
        partner_id = row["partner_id"]
        async with conn.transaction():
            await lock_fund(conn, partner_id, create=False)
            lots = await conn.fetch(
                """SELECT * FROM mdf_lots WHERE partner_id = $1 AND remaining > 0
                   AND expires_at <= $2 FOR UPDATE""",
                partner_id,
                at,
            )
            for lot in lots:
                expiry_id = entry_id(lot["lot_id"], "expiry")
                await conn.execute(
                    "UPDATE mdf_lots SET expired = expired + remaining, remaining = 0 WHERE lot_id = $1",
                    lot["lot_id"],
                )
                await _mdf_entry(
                    conn,
                    entry_id=expiry_id,
                    partner_id=partner_id,
                    entry_type="expiry",
                    rule="mdf:expiry",
                    period=programs.period_of(at.date()),
                    credit_id=lot["credit_id"],
                    lot_id=lot["lot_id"],
                    amount=-lot["remaining"],
                    currency=programs.currency,
                    note=f"unused MDF expired at {lot['expires_at'].isoformat()}",
                    programs_version=programs.version,
                    created_at=at,
                )
                await outbox.publish(
                    conn,
                    INCENTIVE_LEDGER,
                    MdfExpired(
                        entry_id=expiry_id,
                        partner_id=partner_id,
                        lot_id=lot["lot_id"],
                        credit_id=lot["credit_id"],
                        amount=lot["remaining"],
                        currency=programs.currency,
                        expired_at=at,
                    ),
                    subject=partner_id,
                    event_id=uuid.UUID(expiry_id),
                )
                expired_count += 1
    return expired_count
