"""Write-side SQL of MDF: partner funds, their lots, the MDF ledger and claims.

Every movement of one partner's fund first locks its `mdf_funds` row (SELECT ... FOR UPDATE), so
concurrent accruals, clawbacks, expiries and claim approvals serialise on it: a claim is checked
against the fund and debited while nobody else can change the fund. A claim is recorded with its
proof reference (`mdf_claim_references`, whose primary key (partner, the reference's SHA-256)
refuses a second claim under one reference whatever the timing).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from services.incentives.domain.claims import ClaimAsk
from services.incentives.domain.mdf import Fund, Lot, MdfAccrual
from services.incentives.domain.programs import IncentivePrograms
from services.incentives.repository import Booking
from shared.clock import now
from shared.db import Connection


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
    lock = """SELECT partner_id, deficit, reserved FROM mdf_funds
              WHERE partner_id = ANY($1::text[]) ORDER BY partner_id FOR UPDATE"""
    rows = {r["partner_id"]: r for r in await conn.fetch(lock, partners)}
    missing = [p for p in partners if p not in rows]
    if create and missing:
        await conn.execute(
            """INSERT INTO mdf_funds (partner_id, created_at)
               SELECT p, $2 FROM unnest($1::text[]) AS p ORDER BY p ON CONFLICT DO NOTHING""",
            missing,
            now(),
        )
        rows.update({r["partner_id"]: r for r in await conn.fetch(lock, missing)})
    if not rows or not load_lots:
        return {p: Fund(p, r["deficit"], [], r["reserved"]) for p, r in rows.items()}
    # Read after the lock is held (a statement of its own: a fresh snapshot), so lots reflect
    # whatever the previous holder of the lock (a claim approval, an expiry) committed.
    lots: dict[str, list[Lot]] = {p: [] for p in rows}
    for r in await conn.fetch(
        """SELECT partner_id, lot_id, remaining, expires_at FROM mdf_lots
           WHERE partner_id = ANY($1::text[]) AND remaining > 0""",
        list(rows),
    ):
        lots[r["partner_id"]].append(Lot(r["lot_id"], r["remaining"], r["expires_at"]))
    return {p: Fund(p, r["deficit"], lots[p], r["reserved"]) for p, r in rows.items()}


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
            held = funds[partner]
            funds[partner] = Fund(partner, held.deficit, [summary], held.reserved)
    return funds


@dataclass(frozen=True)
class NewLot:
    """An accrual's lot and MDF entry, to write with the run's others."""

    booking: Booking
    accrual: MdfAccrual
    lot_id: str
    absorbed: Decimal  # what of the accrual repaid the fund's deficit
    note: str


async def insert_accruals(
    conn: Connection, programs: IncentivePrograms, lots: Sequence[NewLot]
) -> None:
    """The run's accruals: their lots, the deficits they repaid and their MDF entries, one
    statement each."""
    await conn.execute(
        """INSERT INTO mdf_lots (lot_id, partner_id, credit_id, amount, remaining, expires_at,
               created_at)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::numeric[],
               $5::numeric[], $6::timestamptz[], $7::timestamptz[])""",
        [lot.lot_id for lot in lots],
        [lot.booking.credit.partner_id for lot in lots],
        [lot.booking.credit.credit_id for lot in lots],
        [lot.accrual.amount for lot in lots],
        [lot.accrual.amount - lot.absorbed for lot in lots],
        [lot.accrual.expires_at for lot in lots],
        [lot.booking.at for lot in lots],
    )
    repaid: dict[str, Decimal] = {}
    for lot in lots:
        if lot.absorbed:
            partner = lot.booking.credit.partner_id
            repaid[partner] = repaid.get(partner, Decimal("0.00")) + lot.absorbed
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
        [lot.lot_id for lot in lots],
        [lot.booking.credit.partner_id for lot in lots],
        [lot.accrual.rule for lot in lots],
        [lot.booking.earnings.period for lot in lots],
        [lot.booking.credit.credit_id for lot in lots],
        [lot.accrual.basis for lot in lots],
        [lot.accrual.rate for lot in lots],
        [lot.accrual.uncapped_amount for lot in lots],
        [lot.accrual.amount for lot in lots],
        [lot.note for lot in lots],
        [lot.booking.at for lot in lots],
        programs.currency,
        programs.version,
        [lot.booking.ingested_at for lot in lots],
    )


async def insert_mdf_entry(conn: Connection, **values: Any) -> None:
    columns = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    await conn.execute(f"INSERT INTO mdf_entries ({columns}) VALUES ({params})", *values.values())


async def credit_accrual(conn: Connection, credit_id: str) -> asyncpg.Record | None:
    """The MDF accrual a credit's booking made (its entry id is its lot's), if any."""
    return await conn.fetchrow(
        """SELECT e.* FROM mdf_lots l
           JOIN mdf_entries e ON e.entry_id = l.lot_id AND e.entry_type = 'accrual'
           WHERE l.credit_id = $1""",
        credit_id,
    )


async def lot_for_update(conn: Connection, lot_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM mdf_lots WHERE lot_id = $1 FOR UPDATE", lot_id)


async def restore_expired(conn: Connection, lot_id: str) -> None:
    await conn.execute(
        "UPDATE mdf_lots SET remaining = remaining + expired, expired = 0 WHERE lot_id = $1",
        lot_id,
    )


async def take_from_lots(conn: Connection, takes: Iterable[tuple[str, Decimal]]) -> None:
    for lot_id, take in takes:
        await conn.execute(
            "UPDATE mdf_lots SET remaining = remaining - $2 WHERE lot_id = $1", lot_id, take
        )


async def add_deficit(conn: Connection, partner_id: str, amount: Decimal) -> None:
    await conn.execute(
        "UPDATE mdf_funds SET deficit = deficit + $2 WHERE partner_id = $1", partner_id, amount
    )


# Read through mdf_lots_live_by_expiry: the due lots alone, not every live lot.
PARTNERS_WITH_LOTS_DUE_SQL = """SELECT DISTINCT partner_id FROM mdf_lots
    WHERE remaining > 0 AND expires_at <= $1 LIMIT $2"""


async def partners_with_lots_due(conn: Connection, at: datetime, limit: int) -> list[str]:
    rows = await conn.fetch(PARTNERS_WITH_LOTS_DUE_SQL, at, limit)
    return [row["partner_id"] for row in rows]


async def lots_due_for_update(
    conn: Connection, partner_id: str, at: datetime
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT * FROM mdf_lots WHERE partner_id = $1 AND remaining > 0
           AND expires_at <= $2 FOR UPDATE""",
        partner_id,
        at,
    )


async def expire_lot(conn: Connection, lot_id: str) -> None:
    await conn.execute(
        "UPDATE mdf_lots SET expired = expired + remaining, remaining = 0 WHERE lot_id = $1",
        lot_id,
    )


# ---- MDF claims


async def insert_claim(
    conn: Connection,
    programs: IncentivePrograms,
    *,
    ask: ClaimAsk,
    at: datetime,
    preapproval_id: str | None = None,
) -> tuple[str, Decimal]:
    """Record a requested claim (drawing on `preapproval_id` if given) under its proof
    reference; returns its id and its amount as stored (to the cent: a request's 1e1 is
    10.00)."""
    claim_id = str(uuid.uuid4())
    stored: Decimal = await conn.fetchval(
        """INSERT INTO mdf_claims (claim_id, partner_id, amount, currency, description,
               proof_reference, status, requested_at, preapproval_id)
           VALUES ($1, $2, $3, $4, $5, $6, 'requested', $7, $8) RETURNING amount""",
        claim_id,
        ask.partner_id,
        ask.amount,
        programs.currency,
        ask.description,
        ask.proof_reference,
        at,
        preapproval_id,
    )
    await conn.execute(
        """INSERT INTO mdf_claim_references (partner_id, proof_reference, proof_digest, claim_id)
           VALUES ($1, $2, sha256(convert_to($2, 'UTF8')), $3)""",
        ask.partner_id,
        ask.proof_reference,
        claim_id,
    )
    return claim_id, stored


async def claim_by_reference(
    conn: Connection, partner_id: str, proof_reference: str
) -> asyncpg.Record | None:
    """The claim recorded under the partner's proof reference (read after the fund's lock is
    held: a statement of its own sees what the lock's previous holder committed)."""
    return await conn.fetchrow(
        """SELECT c.* FROM mdf_claim_references r JOIN mdf_claims c USING (claim_id)
           WHERE r.partner_id = $1 AND r.proof_digest = sha256(convert_to($2, 'UTF8'))""",
        partner_id,
        proof_reference,
    )


async def claim(
    conn: Connection, claim_id: str, *, for_update: bool = False
) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT * FROM mdf_claims WHERE claim_id = $1{lock}", claim_id)


async def record_decision(
    conn: Connection, claim_id: str, *, status: str, reason: str, at: datetime
) -> None:
    await conn.execute(
        "UPDATE mdf_claims SET status = $2, reason = $3, decided_at = $4 WHERE claim_id = $1",
        claim_id,
        status,
        reason,
        at,
    )
