"""Service layer of MDF: partner funds, lots, the MDF ledger, claims and expiry.

Every movement of one partner's fund first locks its `mdf_funds` row (SELECT ... FOR UPDATE), so
concurrent accruals, clawbacks, expiries and claim approvals serialise on it: a claim is checked
against the fund and debited while nobody else can change the fund.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
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
from shared.outbox import Outbox, OutgoingEvent
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
    return (await lock_funds(conn, [partner_id], create=create)).get(partner_id)


async def lock_funds(
    conn: Connection, partner_ids: Sequence[str], *, create: bool = True, load_lots: bool = True
) -> dict[str, Fund]:
    """Lock the partners' fund rows (in partner order) for the rest of the transaction, then
    load their live lots (unless `load_lots` is off: funds without lots); with `create`, a
    partner without a fund gets an empty one."""
    partners = sorted(set(partner_ids))
    lock = "SELECT partner_id, deficit FROM mdf_funds WHERE partner_id = ANY($1::text[]) ORDER BY partner_id FOR UPDATE"
    deficits = {r["partner_id"]: r["deficit"] for r in await conn.fetch(lock, partners)}
    missing = [p for p in partners if p not in deficits]
    if create and missing:
        await conn.execute(
            """INSERT INTO mdf_funds (partner_id, created_at)
               SELECT p, $2 FROM unnest($1::text[]) AS p ORDER BY p ON CONFLICT DO NOTHING""",
            missing,
            now(),
        )
        deficits.update({r["partner_id"]: r["deficit"] for r in await conn.fetch(lock, missing)})
    if not deficits or not load_lots:
        return {p: Fund(p, deficit, []) for p, deficit in deficits.items()}
    # Read after the lock is held (a statement of its own: a fresh snapshot), so lots reflect
    # whatever the previous holder of the lock (a claim approval, an expiry) committed.
    lots: dict[str, list[Lot]] = {p: [] for p in deficits}
    for r in await conn.fetch(
        """SELECT partner_id, lot_id, remaining, expires_at FROM mdf_lots
           WHERE partner_id = ANY($1::text[]) AND remaining > 0""",
        list(deficits),
    ):
        lots[r["partner_id"]].append(Lot(r["lot_id"], r["remaining"], r["expires_at"]))
    return {p: Fund(p, deficit, lots[p]) for p, deficit in deficits.items()}


SUMMARY_LOT = "unexpired lots"


async def lock_funds_summarised(
    conn: Connection, partner_ids: Sequence[str], start: datetime, end: datetime
) -> dict[str, Fund]:
    """Like lock_funds, for callers that only add lots and read the available amount at times
    between `start` and `end`: each fund's live lots come as one summary lot, so the cost does
    not grow with the partner's history (a lot per credit). Exact, since no lot expires in
    that window; a partner with one that does gets its lots one by one."""
    funds = await lock_funds(conn, partner_ids, create=True, load_lots=False)
    # What is left in all the lots comes from the fund's row (kept by triggers); only lots at
    # the window's edge are read: those expired or expiring by `end` (subtracted: few, once
    # the expiry job has run) and the first to expire after it (range scans on mdf_lots_live).
    summaries = await conn.fetch(
        """SELECT f.partner_id,
                  f.lots_remaining - coalesce(due.remaining, 0) AS live,
                  next.expires_at AS first_expiry,
                  coalesce(due.expiring, 0) AS expiring
           FROM mdf_funds AS f
           LEFT JOIN LATERAL (
               SELECT sum(remaining) AS remaining,
                      count(*) FILTER (WHERE expires_at > $2) AS expiring
               FROM mdf_lots
               WHERE partner_id = f.partner_id AND remaining > 0 AND expires_at <= $3
           ) AS due ON true
           LEFT JOIN LATERAL (
               SELECT expires_at FROM mdf_lots
               WHERE partner_id = f.partner_id AND remaining > 0 AND expires_at > $3
               ORDER BY expires_at LIMIT 1
           ) AS next ON true
           WHERE f.partner_id = ANY($1::text[])""",
        list(funds),
        start,
        end,
    )
    expiring = [r["partner_id"] for r in summaries if r["expiring"]]
    one_by_one = await lock_funds(conn, expiring) if expiring else {}
    for r in summaries:
        partner = r["partner_id"]
        if partner in one_by_one:
            funds[partner] = one_by_one[partner]
        elif r["first_expiry"] is not None:
            summary = Lot(SUMMARY_LOT, r["live"], r["first_expiry"])
            funds[partner] = Fund(partner, funds[partner].deficit, [summary])
    return funds


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


@dataclass(frozen=True)
class CreditAccrual:
    """An MDF accrual a credit earned, to book into the partner's fund."""

    accrual: MdfAccrual
    partner_id: str
    credit_id: str
    deal_key: str
    period: str
    at: datetime
    ingested_at: datetime | None
    traceparent: str | None = None  # the trace MdfAccrued continues (None: the current span's)


async def book_accruals(
    conn: Connection, programs: IncentivePrograms, accruals: Sequence[CreditAccrual]
) -> list[OutgoingEvent]:
    """Book accruals in order (each a lot and an MDF entry), several for one partner too: each
    sees the fund as the ones before it left it. Returns their MdfAccrued events, in order."""
    if not accruals:
        return []
    times = [a.at for a in accruals]
    funds = await lock_funds_summarised(
        conn, [a.partner_id for a in accruals], min(times), max(times)
    )
    lots: list[tuple[CreditAccrual, str, Decimal, str]] = []  # (accrual, lot id, absorbed, note)
    events: list[OutgoingEvent] = []
    for booked in accruals:
        accrual, partner_id, fund = booked.accrual, booked.partner_id, funds[booked.partner_id]
        # An outstanding deficit (clawback of funds already spent) is paid off first.
        absorbed = min(fund.deficit, accrual.amount)
        lot_id = entry_id(booked.credit_id, "mdf")
        fund = Fund(
            partner_id,
            fund.deficit - absorbed,
            [*fund.lots, Lot(lot_id, accrual.amount - absorbed, accrual.expires_at)],
        )
        funds[partner_id] = fund
        note = accrual.note
        if absorbed:
            note = (
                f"{note}; {absorbed} repaid an MDF deficit"
                if note
                else f"{absorbed} repaid an MDF deficit"
            )
        lots.append((booked, lot_id, absorbed, note))
        accrued = MdfAccrued(
            entry_id=lot_id,
            partner_id=partner_id,
            program_rule=accrual.rule,
            credit_id=booked.credit_id,
            deal_key=booked.deal_key,
            period=booked.period,
            basis=accrual.basis,
            rate=accrual.rate,
            uncapped_amount=accrual.uncapped_amount,
            amount=accrual.amount,
            currency=programs.currency,
            note=note,
            expires_at=accrual.expires_at,
            fund_available=fund.available(booked.at),
            accrued_at=booked.at,
            ingested_at=booked.ingested_at,
        )
        events.append(
            OutgoingEvent(
                INCENTIVE_LEDGER,
                accrued,
                partner_id,
                uuid.UUID(lot_id),
                traceparent=booked.traceparent,
            )
        )
    await conn.execute(
        """INSERT INTO mdf_lots (lot_id, partner_id, credit_id, amount, remaining, expires_at,
               created_at)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::numeric[],
               $5::numeric[], $6::timestamptz[], $7::timestamptz[])""",
        [lot_id for _, lot_id, _, _ in lots],
        [a.partner_id for a, _, _, _ in lots],
        [a.credit_id for a, _, _, _ in lots],
        [a.accrual.amount for a, _, _, _ in lots],
        [a.accrual.amount - absorbed for a, _, absorbed, _ in lots],
        [a.accrual.expires_at for a, _, _, _ in lots],
        [a.at for a, _, _, _ in lots],
    )
    repaid: dict[str, Decimal] = {}
    for a, _, absorbed, _ in lots:
        if absorbed:
            repaid[a.partner_id] = repaid.get(a.partner_id, ZERO) + absorbed
    if repaid:
        await conn.execute(
            """UPDATE mdf_funds f SET deficit = f.deficit - r.absorbed
               FROM unnest($1::text[], $2::numeric[]) AS r(partner_id, absorbed)
               WHERE f.partner_id = r.partner_id""",
            list(repaid),
            list(repaid.values()),
        )
    await conn.execute(
        """INSERT INTO mdf_entries (entry_id, partner_id, entry_type, rule, period, credit_id,
               lot_id, basis, rate, uncapped_amount, amount, currency, note, programs_version,
               created_at, ingested_at)
           SELECT e.lot_id, e.partner_id, 'accrual', e.rule, e.period, e.credit_id, e.lot_id,
               e.basis, e.rate, e.uncapped_amount, e.amount, $12, e.note, $13, e.created_at,
               e.ingested_at
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
               $6::numeric[], $7::numeric[], $8::numeric[], $9::numeric[], $10::text[],
               $11::timestamptz[], $14::timestamptz[])
               WITH ORDINALITY AS e(lot_id, partner_id, rule, period, credit_id, basis, rate,
                   uncapped_amount, amount, note, created_at, ingested_at, n)
           ORDER BY e.n""",
        [lot_id for _, lot_id, _, _ in lots],
        [a.partner_id for a, _, _, _ in lots],
        [a.accrual.rule for a, _, _, _ in lots],
        [a.period for a, _, _, _ in lots],
        [a.credit_id for a, _, _, _ in lots],
        [a.accrual.basis for a, _, _, _ in lots],
        [a.accrual.rate for a, _, _, _ in lots],
        [a.accrual.uncapped_amount for a, _, _, _ in lots],
        [a.accrual.amount for a, _, _, _ in lots],
        [note for _, _, _, note in lots],
        [a.at for a, _, _, _ in lots],
        programs.currency,
        programs.version,
        [a.ingested_at for a, _, _, _ in lots],
    )
    return events


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
