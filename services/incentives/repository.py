"""Write-side SQL of the incentive ledger: the locks, loads and writes the use cases make in
their transaction (the MDF fund's are in mdf_repository.py). Nothing here decides anything; the
use cases do, with the pure rules in domain/.

Per-partner work is serialised with a transaction-scoped advisory lock (two credits of one
partner arrive on different deal keys, so possibly on two instances at once); the "new logo"
check additionally locks the customer key. A run of credits takes all its locks at once, in
ascending key order, so two runs never wait for each other in a cycle.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

import asyncpg

from services.incentives.domain.earnings import Earnings
from services.incentives.domain.ledger import Entry, credit_entry_id
from services.incentives.domain.mdf import MdfAccrual
from services.incentives.domain.programs import IncentivePrograms
from services.incentives.domain.surroundings import Context, Subject, Surroundings
from shared.clock import now
from shared.db import Connection, advisory_key, columns, lock_in_order
from shared.events import Envelope, InvalidEvent, decode_envelope
from shared.events.attribution import CreditIssued, CreditReversed
from shared.events.partners import PartnerStateChanged

# ---- locks


def partner_lock(partner_id: str) -> int:
    return advisory_key("incentives", "partner", partner_id)


def customer_lock(customer_key: str) -> int:
    return advisory_key("incentives", "customer", customer_key)


async def lock_partner(conn: Connection, partner_id: str) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1)", partner_lock(partner_id))


def run_keys(subjects: Iterable[Subject], partners: Iterable[str] = ()) -> set[int]:
    """Every partner and customer lock a run of credits needs (and those of `partners`)."""
    keys = {partner_lock(partner_id) for partner_id in partners}
    for subject in subjects:
        keys.add(partner_lock(subject.partner_id))
        keys.update(customer_lock(key) for key in subject.customer_keys)
    return keys


async def lock_run(
    conn: Connection, subjects: Iterable[Subject], partners: Iterable[str] = ()
) -> None:
    """Take run_keys in one statement, in ascending key order."""
    await lock_in_order(conn, run_keys(subjects, partners))


# ---- the partner projection


async def upsert_partner(conn: Connection, event: PartnerStateChanged) -> None:
    """Keep the tier, status and type used by the rules (an older snapshot never wins the
    current row) and every version with its moment (a credit is judged as of its issue)."""
    await conn.execute(
        """
        INSERT INTO partners (partner_id, tier, status, version, updated_at, partner_type)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (partner_id) DO UPDATE SET tier = EXCLUDED.tier, status = EXCLUDED.status,
            version = EXCLUDED.version, updated_at = EXCLUDED.updated_at,
            partner_type = EXCLUDED.partner_type
        WHERE partners.version < EXCLUDED.version
        """,
        event.partner_id,
        event.tier,
        event.status.value,
        event.version,
        event.changed_at,
        event.partner_type,
    )
    await conn.execute(
        """INSERT INTO partner_versions (partner_id, version, changed_at, tier, status,
                                         partner_type)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING""",
        event.partner_id,
        event.version,
        event.changed_at,
        event.tier,
        event.status.value,
        event.partner_type,
    )


async def partner_status(conn: Connection, partner_id: str) -> str | None:
    status: str | None = await conn.fetchval(
        "SELECT status FROM partners WHERE partner_id = $1", partner_id
    )
    return status


# ---- credits held until their partner's state settles


async def hold_credits(
    conn: Connection, held: Sequence[tuple[Envelope[CreditIssued], str]]
) -> None:
    """Keep each credit's event with why it waits (a redelivered one is held once)."""
    if not held:
        return
    await conn.execute(
        """
        INSERT INTO held_credits (credit_id, partner_id, event, reason, held_at)
        SELECT credit_id, partner_id, event::jsonb, reason, $5
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
            WITH ORDINALITY AS h(credit_id, partner_id, event, reason, n)
        ORDER BY n
        ON CONFLICT (credit_id) DO NOTHING
        """,
        [event.data.credit_id for event, _ in held],
        [event.data.partner_id for event, _ in held],
        [event.model_dump_json() for event, _ in held],
        [reason for _, reason in held],
        now(),
    )


@dataclass(frozen=True)
class HeldCredit:
    """A held credit as stored: its envelope's JSON, and the event it reads as under today's
    contract (None, with the reason, for one held before the contract refused it)."""

    credit_id: str
    value: bytes
    event: Envelope[CreditIssued] | None
    unreadable: str | None = None


def _held(credit_id: str, text: str) -> HeldCredit:
    value = text.encode()
    try:
        event = decode_envelope(value, {CreditIssued.event_type: CreditIssued})
    except InvalidEvent as error:
        return HeldCredit(credit_id, value, None, str(error))
    return HeldCredit(credit_id, value, event)


async def held_credits(conn: Connection, partner_id: str) -> list[HeldCredit]:
    """The credits waiting for `partner_id`, in the order they arrived."""
    rows = await conn.fetch(
        "SELECT credit_id, event::text FROM held_credits WHERE partner_id = $1 ORDER BY seq",
        partner_id,
    )
    return [_held(row["credit_id"], row["event"]) for row in rows]


async def held_credits_of(
    conn: Connection, partner_ids: Sequence[str]
) -> list[Envelope[CreditIssued]]:
    """The credits waiting for any of `partner_ids` (those the contract still reads)."""
    rows = await conn.fetch(
        """SELECT credit_id, event::text FROM held_credits WHERE partner_id = ANY($1::text[])
           ORDER BY seq""",
        list(partner_ids),
    )
    held = [_held(row["credit_id"], row["event"]) for row in rows]
    return [credit.event for credit in held if credit.event is not None]


async def release_held_credits(
    conn: Connection, partner_id: str, credit_ids: Sequence[str]
) -> list[HeldCredit]:
    """Take `credit_ids` off hold; returns them in the order they arrived."""
    rows = await conn.fetch(
        """DELETE FROM held_credits WHERE partner_id = $1 AND credit_id = ANY($2::text[])
           RETURNING seq, credit_id, event::text""",
        partner_id,
        list(credit_ids),
    )
    return [
        _held(row["credit_id"], row["event"]) for row in sorted(rows, key=lambda r: int(r["seq"]))
    ]


async def holds_any(conn: Connection, partner_id: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM held_credits WHERE partner_id = $1)", partner_id
        )
    )


# ---- credits


async def load_surroundings(
    conn: Connection, programs: IncentivePrograms, subjects: Sequence[Subject]
) -> Surroundings:
    """One query: whether each credit is booked (or a reversal waits for it), the partner's
    tier and status now and when the credit was issued, the customer's and the partner-region's
    first deal, and the period totals, per distinct partner and period."""
    rows = await conn.fetch(
        """
        WITH given AS (
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                 $6::timestamptz[], $7::text[])
                WITH ORDINALITY AS r(credit_id, partner_id, customer_keys, region, period,
                                     issued_at, replaces, n)
        ), run AS (
            -- A re-issue is judged when the credit it corrects was (see migration 0015).
            SELECT given.*,
                   coalesce(o.judged_at, o.processed_at, given.issued_at) AS judged_at
            FROM given LEFT JOIN credits o ON o.credit_id = given.replaces
        )
        SELECT run.credit_id, run.partner_id, run.region, run.period,
            c.credit_id IS NOT NULL AS booked, pending.reversal::text AS parked,
            p.tier, p.status, p.partner_type, p.version, cu.firsts AS customer_firsts,
            pr.first_deal_key AS region_first,
            coalesce(t.earned, 0) AS earned, coalesce(t.accrued, 0) AS accrued,
            v.tier AS tier_then, v.status AS status_then, v.partner_type AS type_then,
            run.judged_at
        FROM run
        LEFT JOIN LATERAL (
            SELECT tier, status, partner_type FROM partner_versions
            WHERE partner_id = run.partner_id AND changed_at <= run.judged_at
            ORDER BY changed_at DESC, version DESC LIMIT 1) v ON true
        LEFT JOIN period_totals t ON t.partner_id = run.partner_id AND t.period = run.period
        LEFT JOIN credits c ON c.credit_id = run.credit_id
        LEFT JOIN pending_reversals pending ON pending.credit_id = run.credit_id
        LEFT JOIN partners p ON p.partner_id = run.partner_id
        -- The first deal under each key the customer is known by (its keys, one a line).
        LEFT JOIN LATERAL (
            SELECT array_agg(k.customer_key || E'\n' || k.first_deal_key) AS firsts
            FROM customers k
            WHERE k.customer_key = ANY(string_to_array(run.customer_keys, E'\n'))) cu ON true
        LEFT JOIN partner_regions pr
            ON pr.partner_id = run.partner_id AND pr.region = run.region
        ORDER BY run.n
        """,
        [s.credit_id for s in subjects],
        [s.partner_id for s in subjects],
        ["\n".join(s.customer_keys) or None for s in subjects],
        [s.region for s in subjects],
        [s.period for s in subjects],
        [s.issued_at for s in subjects],
        [s.replaces for s in subjects],
    )
    known = Surroundings(programs.default_tier, set(), {}, {}, {}, {}, {}, {})
    waiting = set(programs.waiting_statuses)
    for row in rows:
        if row["booked"]:
            known.booked.add(row["credit_id"])
        elif row["parked"] is not None:
            known.parked[row["credit_id"]] = row["parked"]
        if row["tier"] is not None:
            known.partners[row["partner_id"]] = (row["tier"], row["status"], row["partner_type"])
            known.versions[row["partner_id"]] = row["version"]
        if row["tier_then"] is not None and row["status_then"] not in waiting:
            then = (row["tier_then"], row["status_then"], row["type_then"])
            known.at_issue[row["credit_id"]] = then
        known.judged_at[row["credit_id"]] = row["judged_at"]
        for first in row["customer_firsts"] or ():
            key, deal_key = first.split("\n", 1)
            known.first_deals[key] = deal_key
        if row["region_first"] is not None:
            known.first_region_deals[(row["partner_id"], row["region"])] = row["region_first"]
        known.earned[(row["partner_id"], row["period"])] = row["earned"]
        known.accrued[(row["partner_id"], row["period"])] = row["accrued"]
    return known


@dataclass(frozen=True)
class Booking:
    """What the rules decided for one credit of a run, to be written with the others; `cause`
    is the consumed event that brought the credit."""

    cause: Envelope[CreditIssued]
    context: Context
    earnings: Earnings
    accrual: MdfAccrual | None
    at: datetime
    customer_keys_filed: tuple[tuple[str, str], ...]  # (key, the customer's first deal)
    first_in_region: bool

    @property
    def credit(self) -> CreditIssued:
        return self.cause.data

    @property
    def ingested_at(self) -> datetime | None:
        return self.cause.data.ingested_at

    @cached_property
    def line_ids(self) -> tuple[str, ...]:
        """Each earning line's entry id (named by its credit and rule), in the lines' order:
        the row and the event of a line carry the same one, derived once."""
        credit = self.credit
        return tuple(
            credit_entry_id(credit.issued_at, credit.credit_id, line.rule)
            for line in self.earnings.lines
        )


async def insert_first_deals(conn: Connection, bookings: Sequence[Booking]) -> None:
    """The customers and partner-regions whose first credited deal is in the run."""
    await _insert_new_rows(
        conn,
        "customers (customer_key, first_deal_key, first_credit_id, first_seen_at)",
        "$1::text[], $2::text[], $3::text[], $4::timestamptz[]",
        [
            (key, first_deal, b.credit.credit_id, b.at)
            for b in bookings
            for key, first_deal in b.customer_keys_filed
        ],
    )
    await _insert_new_rows(
        conn,
        "partner_regions (partner_id, region, first_deal_key, first_credit_id)",
        "$1::text[], $2::text[], $3::text[], $4::text[]",
        [
            (b.credit.partner_id, b.context.region, b.credit.deal_key, b.credit.credit_id)
            for b in bookings
            if b.first_in_region
        ],
    )


async def _insert_new_rows(
    conn: Connection, table: str, arrays: str, rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert the rows not there yet, in one statement (none when there are no rows)."""
    if rows:
        await conn.execute(
            f"INSERT INTO {table} SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING",
            *columns(rows),
        )


async def insert_credits(
    conn: Connection, programs: IncentivePrograms, bookings: Sequence[Booking]
) -> None:
    await conn.execute(
        """INSERT INTO credits (credit_id, partner_id, deal_key, kind, amount, currency,
               customer_key, region, period, tier, new_logo, new_region, programs_version, notes,
               ingested_at, processed_at, judged_at)
           SELECT c.credit_id, c.partner_id, c.deal_key, c.kind, c.amount, c.currency,
               c.customer_key, c.region, c.period, c.tier, c.new_logo, c.new_region, $16,
               ARRAY(SELECT jsonb_array_elements_text(c.notes::jsonb)), c.ingested_at,
               c.processed_at, c.judged_at
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[],
               $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::bool[],
               $12::bool[], $13::text[], $14::timestamptz[], $15::timestamptz[],
               $17::timestamptz[])
               AS c(credit_id, partner_id, deal_key, kind, amount, currency, customer_key, region,
                    period, tier, new_logo, new_region, notes, ingested_at, processed_at,
                    judged_at)""",
        *columns(
            [
                (
                    b.credit.credit_id,
                    b.credit.partner_id,
                    b.credit.deal_key,
                    b.credit.kind.value,
                    b.credit.amount,
                    b.credit.currency,
                    b.context.customer_key,
                    b.context.region,
                    b.earnings.period,
                    b.context.tier,
                    b.context.new_logo,
                    b.context.new_region,
                    json.dumps(b.earnings.notes),
                    b.ingested_at,
                    b.at,
                )
                for b in bookings
            ]
        ),
        programs.version,
        [b.context.judged_at or b.credit.issued_at for b in bookings],
    )


async def insert_earning_lines(
    conn: Connection, programs: IncentivePrograms, bookings: Sequence[Booking]
) -> None:
    """Every earning line of the run, in order, each an entry named by its credit and rule."""
    lines = [(b, line) for b in bookings for line in b.earnings.lines]
    if not lines:
        return
    await conn.execute(
        """INSERT INTO ledger_entries (entry_id, partner_id, entry_type, rule, period,
               credit_id, deal_key, basis, rate, uncapped_amount, amount, currency, note,
               tier, programs_version, created_at, ingested_at)
           SELECT e.entry_id, e.partner_id, e.entry_type, e.rule, e.period, e.credit_id,
               e.deal_key, e.basis, e.rate, e.uncapped_amount, e.amount, $16, e.note, e.tier,
               $17, e.created_at, e.ingested_at
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
               $6::text[], $7::text[], $8::numeric[], $9::numeric[], $10::numeric[],
               $11::numeric[], $12::text[], $13::text[], $14::timestamptz[],
               $15::timestamptz[])
               WITH ORDINALITY AS e(entry_id, partner_id, entry_type, rule, period, credit_id,
                   deal_key, basis, rate, uncapped_amount, amount, note, tier, created_at,
                   ingested_at, n)
           ORDER BY e.n""",
        [line_id for b in bookings for line_id in b.line_ids],
        [b.credit.partner_id for b, _ in lines],
        [line.entry_type.value for _, line in lines],
        [line.rule for _, line in lines],
        [b.earnings.period for b, _ in lines],
        [b.credit.credit_id for b, _ in lines],
        [b.credit.deal_key for b, _ in lines],
        [line.basis for _, line in lines],
        [line.rate for _, line in lines],
        [line.uncapped_amount for _, line in lines],
        [line.amount for _, line in lines],
        [line.note for _, line in lines],
        [b.context.tier for b, _ in lines],
        [b.at for b, _ in lines],
        [b.ingested_at for b, _ in lines],
        programs.currency,
        programs.version,
    )


# ---- reversals


async def take_parked_reversal(conn: Connection, credit_id: str) -> CreditReversed | None:
    """The reversal that arrived before `credit_id`, removed from the parking table."""
    parked = await conn.fetchval(
        "DELETE FROM pending_reversals WHERE credit_id = $1 RETURNING reversal", credit_id
    )
    return None if parked is None else CreditReversed.model_validate_json(parked)


async def park_reversal(conn: Connection, reversal: CreditReversed) -> None:
    await conn.execute(
        """INSERT INTO pending_reversals (credit_id, reversal, received_at)
           VALUES ($1, $2::jsonb, $3) ON CONFLICT DO NOTHING""",
        reversal.credit_id,
        reversal.model_dump_json(),
        now(),
    )


async def credit_for_update(conn: Connection, credit_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM credits WHERE credit_id = $1 FOR UPDATE", credit_id)


async def lock_for_reversal(conn: Connection, partner_id: str, credit_id: str) -> None:
    """The partner's lock and its credit's customer's (a clawback may make the customer's first
    deal another's: `forget_first_deals`), in the order a booking run takes them."""
    customer = await conn.fetchval(
        "SELECT customer_key FROM credits WHERE credit_id = $1", credit_id
    )
    keys = {partner_lock(partner_id)} | ({customer_lock(customer)} if customer else set())
    await lock_in_order(conn, keys)


async def forget_first_deals(conn: Connection, credit: asyncpg.Record) -> None:
    """A reversed credit's deal is no longer its customer's (or its partner's region's) first
    credited deal once nothing on it is credited (to anyone; in that region, to the partner):
    the next deal is then a new logo (a new region), as one never credited before. A lost first
    deal made every later deal of its customer lose the kicker (found in review)."""
    await conn.execute(
        """DELETE FROM customers WHERE first_deal_key = $1  -- under every key it is known by
             AND NOT EXISTS (SELECT 1 FROM credits
                             WHERE deal_key = $1 AND reversal_id IS NULL)""",
        credit["deal_key"],
    )
    await conn.execute(
        """DELETE FROM partner_regions
           WHERE partner_id = $1 AND region = $2 AND first_deal_key = $3
             AND NOT EXISTS (SELECT 1 FROM credits WHERE deal_key = $3 AND partner_id = $1
                               AND reversal_id IS NULL)""",
        credit["partner_id"],
        credit["region"],
        credit["deal_key"],
    )


async def earning_entries(conn: Connection, credit_id: str) -> list[asyncpg.Record]:
    """The entries a credit produced (what a reversal takes back), in ledger order."""
    return await conn.fetch(
        """SELECT * FROM ledger_entries WHERE credit_id = $1
           AND entry_type IN ('accrual', 'kicker', 'spiff') ORDER BY seq""",
        credit_id,
    )


async def insert_reversal_entry(
    conn: Connection,
    entry: Entry,
    original: asyncpg.Record,
    *,
    reversal_id: str,
    note: str,
    at: datetime,
    ingested_at: datetime | None,
) -> None:
    """A reversal `entry` of the ledger entry `original`, in its period, naming the reversal
    that caused it."""
    await conn.execute(
        """INSERT INTO ledger_entries (entry_id, partner_id, entry_type, rule, period,
               credit_id, deal_key, basis, rate, amount, currency, note, tier,
               programs_version, reverses, reference, created_at, ingested_at)
           VALUES ($1, $2, 'reversal', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
               $15, $16, $17)""",
        entry.entry_id,
        entry.partner_id,
        entry.rule,
        original["period"],
        entry.credit_id,
        original["deal_key"],
        original["basis"],
        original["rate"],
        entry.amount,
        original["currency"],
        note,
        original["tier"],
        original["programs_version"],
        entry.reverses,
        reversal_id,
        at,
        ingested_at,
    )


async def mark_reversed(conn: Connection, reversal: CreditReversed, at: datetime) -> None:
    await conn.execute(
        "UPDATE credits SET reversal_id = $2, reversed_at = $3 WHERE credit_id = $1",
        reversal.credit_id,
        reversal.reversal_id,
        at,
    )


async def customer_first_deal_is_partners(
    conn: Connection, customer_keys: Sequence[str], partner_id: str
) -> bool:
    """Whether the customer's first credited deal (under any key it is known by) is one the
    partner holds a credit on."""
    found: bool = await conn.fetchval(
        """SELECT EXISTS (
               SELECT 1 FROM customers cu JOIN credits c ON c.deal_key = cu.first_deal_key
               WHERE cu.customer_key = ANY($1::text[]) AND c.partner_id = $2)""",
        list(customer_keys),
        partner_id,
    )
    return found
