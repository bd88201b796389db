"""Service layer of the incentive ledger: credits in, earnings and clawbacks out.

Loads the facts the pure rules need (partner tier, whether the customer or region is new, what
the partner already earned in the period), books what they decide into the append-only ledger
and writes the events announcing it, all in the consumer's transaction. Credits come in runs
(the consumer hands over consecutive ones together; a single credit is a run of one): a run's
facts are loaded with one query, each credit sees the ones before it in the run (first deals,
period totals), and its rows and events are written with one statement per table.

Per-partner work is serialised with a transaction-scoped advisory lock (two credits of one
partner arrive on different deal keys, so possibly on two instances at once); the "new logo"
check additionally locks the customer key. A run takes all its locks at once, in ascending key
order, so two runs never wait for each other in a cycle.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from services.incentives.domain.earnings import (
    ZERO,
    CreditFacts,
    Earnings,
    EntryType,
    compute_earnings,
    customer_key,
)
from services.incentives.domain.ledger import Entry, reversals_for
from services.incentives.domain.mdf import MdfAccrual, accrue
from services.incentives.domain.programs import IncentivePrograms
from services.incentives.domain.surroundings import Context, Subject, Surroundings
from services.incentives.funds import (
    CreditAccrual,
    book_accruals,
    claw_back_accrual,
    entry_id,
    now,
)
from shared.db import Connection, advisory_key
from shared.events import InvalidEvent
from shared.events.attribution import CreditIssued, CreditReversed
from shared.events.incentives import IncentiveEarned, IncentiveReversed
from shared.events.notifications import PartnerNotification
from shared.events.partners import PartnerStateChanged
from shared.outbox import Outbox, OutgoingEvent
from shared.topics import INCENTIVE_LEDGER, PARTNER_NOTIFICATIONS

log = logging.getLogger(__name__)


async def lock_partner(conn: Connection, partner_id: str) -> None:
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1)", advisory_key("incentives", "partner", partner_id)
    )


async def apply_partner_state(conn: Connection, event: PartnerStateChanged) -> None:
    """Keep the tier and status used by the rules; an older snapshot never wins."""
    await conn.execute(
        """
        INSERT INTO partners (partner_id, tier, status, version, updated_at)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (partner_id) DO UPDATE SET tier = EXCLUDED.tier, status = EXCLUDED.status,
            version = EXCLUDED.version, updated_at = EXCLUDED.updated_at
        WHERE partners.version < EXCLUDED.version
        """,
        event.partner_id,
        event.tier,
        event.status.value,
        event.version,
        event.changed_at,
    )


def subject_of(programs: IncentivePrograms, credit: CreditIssued) -> Subject:
    return Subject.of(
        programs,
        credit_id=credit.credit_id,
        partner_id=credit.partner_id,
        deal_key=credit.deal_key,
        domain=credit.customer.domain,
        name=credit.customer.name,
        country=credit.customer.country,
        close_date=credit.close_date,
    )


async def load_surroundings(
    conn: Connection, programs: IncentivePrograms, subjects: Sequence[Subject]
) -> Surroundings:
    """One query: whether each credit is booked (or a reversal waits for it), the partner's
    tier and status, the customer's and the partner-region's first deal, and the period
    totals, per distinct partner and period."""
    rows = await conn.fetch(
        """
        WITH run AS (
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
                WITH ORDINALITY AS r(credit_id, partner_id, customer_key, region, period, n)
        )
        SELECT run.credit_id, run.partner_id, run.customer_key, run.region, run.period,
            c.credit_id IS NOT NULL AS booked, pending.reversal::text AS parked,
            p.tier, p.status, cu.first_deal_key AS customer_first,
            pr.first_deal_key AS region_first,
            coalesce(t.earned, 0) AS earned, coalesce(t.accrued, 0) AS accrued
        FROM run
        LEFT JOIN period_totals t ON t.partner_id = run.partner_id AND t.period = run.period
        LEFT JOIN credits c ON c.credit_id = run.credit_id
        LEFT JOIN pending_reversals pending ON pending.credit_id = run.credit_id
        LEFT JOIN partners p ON p.partner_id = run.partner_id
        LEFT JOIN customers cu ON cu.customer_key = run.customer_key
        LEFT JOIN partner_regions pr
            ON pr.partner_id = run.partner_id AND pr.region = run.region
        ORDER BY run.n
        """,
        [s.credit_id for s in subjects],
        [s.partner_id for s in subjects],
        [s.customer_key for s in subjects],
        [s.region for s in subjects],
        [s.period for s in subjects],
    )
    known = Surroundings(programs.default_tier, set(), {}, {}, {}, {}, {}, {})
    for row in rows:
        if row["booked"]:
            known.booked.add(row["credit_id"])
        elif row["parked"] is not None:
            known.parked[row["credit_id"]] = row["parked"]
        if row["tier"] is not None:
            known.partners[row["partner_id"]] = (row["tier"], row["status"])
        if row["customer_first"] is not None:
            known.first_deals[row["customer_key"]] = row["customer_first"]
        if row["region_first"] is not None:
            known.first_region_deals[(row["partner_id"], row["region"])] = row["region_first"]
        known.earned[(row["partner_id"], row["period"])] = row["earned"]
        known.accrued[(row["partner_id"], row["period"])] = row["accrued"]
    return known


async def load_context(
    conn: Connection,
    programs: IncentivePrograms,
    *,
    partner_id: str,
    deal_key: str,
    domain: str | None,
    name: str | None,
    country: str | None,
    close_date: date,
) -> Context:
    subject = Subject.of(
        programs,
        credit_id="",
        partner_id=partner_id,
        deal_key=deal_key,
        domain=domain,
        name=name,
        country=country,
        close_date=close_date,
    )
    return (await load_surroundings(conn, programs, [subject])).context(subject)


def evaluate(
    programs: IncentivePrograms,
    context: Context,
    *,
    credit_id: str,
    partner_id: str,
    kind: str,
    amount: Decimal,
    currency: str,
    products: frozenset[str],
    co_sell: bool,
    close_date: date,
    at: datetime,
) -> tuple[Earnings, MdfAccrual | None]:
    facts = CreditFacts(
        credit_id=credit_id,
        partner_id=partner_id,
        kind=kind,
        amount=amount,
        currency=currency,
        products=products,
        co_sell=co_sell,
        close_date=close_date,
        tier=context.tier,
        partner_status=context.status,
        new_logo=context.new_logo,
        new_region=context.new_region,
    )
    earnings = compute_earnings(programs, facts, context.earned_in_period)
    accrual = accrue(
        programs,
        tier=context.tier,
        kind=kind,
        amount=amount,
        period=earnings.period,
        accrued_in_period=context.mdf_accrued_in_period,
        eligible=context.status not in programs.ineligible_statuses,
        at=at,
    )
    return earnings, accrual


def validate_credit(programs: IncentivePrograms, credit: CreditIssued) -> None:
    if credit.currency != programs.currency:
        raise InvalidEvent(
            f"credit {credit.credit_id} is in {credit.currency}; the incentive programs pay in "
            f"{programs.currency} (attribution credits in the reporting currency)"
        )
    if credit.amount < 0:
        raise InvalidEvent(f"credit {credit.credit_id} has a negative amount {credit.amount}")


@dataclass(frozen=True)
class IssuedCredit:
    """A credit to book, when it entered the platform, and the trace what it causes continues
    (None: the current span's)."""

    credit: CreditIssued
    ingested_at: datetime | None
    traceparent: str | None = None


@dataclass(frozen=True)
class Booking:
    """What the rules decided for one credit of a run, to be written with the others."""

    issued: IssuedCredit
    context: Context
    earnings: Earnings
    accrual: MdfAccrual | None
    at: datetime
    first_of_customer: bool
    first_in_region: bool


async def apply_credit(
    conn: Connection,
    outbox: Outbox,
    programs: IncentivePrograms,
    credit: CreditIssued,
    *,
    ingested_at: datetime | None,
) -> str:
    """Book what a credit earns. Returns what happened (for logs and tests)."""
    return (await apply_credits(conn, outbox, programs, [IssuedCredit(credit, ingested_at)]))[0]


async def apply_credits(
    conn: Connection, outbox: Outbox, programs: IncentivePrograms, run: Sequence[IssuedCredit]
) -> list[str]:
    """Book what a run of credits earns, in order, with a few statements for the whole run.
    Returns what happened to each (for logs and tests)."""
    for issued in run:
        validate_credit(programs, issued.credit)
    keys = {advisory_key("incentives", "partner", i.credit.partner_id) for i in run}
    for issued in run:
        key = customer_key(issued.credit.customer.domain, issued.credit.customer.name)
        if key is not None:
            keys.add(advisory_key("incentives", "customer", key))
    await conn.execute(
        "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k ORDER BY k", sorted(keys)
    )
    outcomes: list[str] = []
    while len(outcomes) < len(run):
        outcomes += await _book_until_parked(conn, outbox, programs, run[len(outcomes) :])
    return outcomes


async def _book_until_parked(
    conn: Connection, outbox: Outbox, programs: IncentivePrograms, run: Sequence[IssuedCredit]
) -> list[str]:
    """Book the run up to the first credit a parked reversal waits for, then apply that
    reversal (what follows must see it: the caller books the rest afterwards)."""
    subjects = [subject_of(programs, issued.credit) for issued in run]
    known = await load_surroundings(conn, programs, subjects)
    bookings: list[Booking] = []
    outcomes: list[str] = []
    for issued, subject in zip(run, subjects, strict=True):
        credit = issued.credit
        if credit.credit_id in known.booked:
            log.info("credit already booked", extra={"credit_id": credit.credit_id})
            outcomes.append("duplicate credit")
            continue
        at = now()
        context = known.context(subject)
        earnings, accrual = evaluate(
            programs,
            context,
            credit_id=credit.credit_id,
            partner_id=credit.partner_id,
            kind=credit.kind.value,
            amount=credit.amount,
            currency=credit.currency,
            products=frozenset(credit.products),
            co_sell=credit.co_sell,
            close_date=credit.close_date,
            at=at,
        )
        first_of_customer, first_in_region = known.book(subject, earnings, accrual)
        bookings.append(
            Booking(issued, context, earnings, accrual, at, first_of_customer, first_in_region)
        )
        outcomes.append("credit booked")
        if credit.credit_id in known.parked:
            break
    await outbox.publish_many(conn, await _write(conn, programs, bookings))
    if bookings and bookings[-1].issued.credit.credit_id in known.parked:
        last = bookings[-1].issued
        parked = await conn.fetchval(
            "DELETE FROM pending_reversals WHERE credit_id = $1 RETURNING reversal",
            last.credit.credit_id,
        )
        if parked is not None:
            reversal = CreditReversed.model_validate_json(parked)
            await apply_reversal(
                conn,
                outbox,
                programs,
                reversal,
                ingested_at=reversal.ingested_at or last.ingested_at,
                traceparent=last.traceparent,
            )
            outcomes[-1] = "credit booked, then reversed by a reversal that had arrived first"
    return outcomes


async def _write(
    conn: Connection, programs: IncentivePrograms, bookings: Sequence[Booking]
) -> list[OutgoingEvent]:
    """Write the run's rows, one statement per table; returns the events announcing them."""
    if not bookings:
        return []
    firsts = [b for b in bookings if b.first_of_customer]
    if firsts:
        await conn.execute(
            """INSERT INTO customers (customer_key, first_deal_key, first_credit_id, first_seen_at)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
               ON CONFLICT DO NOTHING""",
            [b.context.customer_key for b in firsts],
            [b.issued.credit.deal_key for b in firsts],
            [b.issued.credit.credit_id for b in firsts],
            [b.at for b in firsts],
        )
    firsts = [b for b in bookings if b.first_in_region]
    if firsts:
        await conn.execute(
            """INSERT INTO partner_regions (partner_id, region, first_deal_key, first_credit_id)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
               ON CONFLICT DO NOTHING""",
            [b.issued.credit.partner_id for b in firsts],
            [b.context.region for b in firsts],
            [b.issued.credit.deal_key for b in firsts],
            [b.issued.credit.credit_id for b in firsts],
        )
    await conn.execute(
        """INSERT INTO credits (credit_id, partner_id, deal_key, kind, amount, currency,
               customer_key, region, period, tier, new_logo, new_region, programs_version, notes,
               ingested_at, processed_at)
           SELECT c.credit_id, c.partner_id, c.deal_key, c.kind, c.amount, c.currency,
               c.customer_key, c.region, c.period, c.tier, c.new_logo, c.new_region, $15,
               ARRAY(SELECT jsonb_array_elements_text(c.notes::jsonb)), c.ingested_at,
               c.processed_at
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[],
               $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::bool[],
               $12::bool[], $13::text[], $14::timestamptz[], $16::timestamptz[])
               AS c(credit_id, partner_id, deal_key, kind, amount, currency, customer_key, region,
                    period, tier, new_logo, new_region, notes, ingested_at, processed_at)""",
        [b.issued.credit.credit_id for b in bookings],
        [b.issued.credit.partner_id for b in bookings],
        [b.issued.credit.deal_key for b in bookings],
        [b.issued.credit.kind.value for b in bookings],
        [b.issued.credit.amount for b in bookings],
        [b.issued.credit.currency for b in bookings],
        [b.context.customer_key for b in bookings],
        [b.context.region for b in bookings],
        [b.earnings.period for b in bookings],
        [b.context.tier for b in bookings],
        [b.context.new_logo for b in bookings],
        [b.context.new_region for b in bookings],
        [json.dumps(b.earnings.notes) for b in bookings],
        [b.issued.ingested_at for b in bookings],
        programs.version,
        [b.at for b in bookings],
    )
    lines = [
        (b, line, entry_id(b.issued.credit.credit_id, line.rule))
        for b in bookings
        for line in b.earnings.lines
    ]
    if lines:
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
            [line_id for _, _, line_id in lines],
            [b.issued.credit.partner_id for b, _, _ in lines],
            [line.entry_type.value for _, line, _ in lines],
            [line.rule for _, line, _ in lines],
            [b.earnings.period for b, _, _ in lines],
            [b.issued.credit.credit_id for b, _, _ in lines],
            [b.issued.credit.deal_key for b, _, _ in lines],
            [line.basis for _, line, _ in lines],
            [line.rate for _, line, _ in lines],
            [line.uncapped_amount for _, line, _ in lines],
            [line.amount for _, line, _ in lines],
            [line.note for _, line, _ in lines],
            [b.context.tier for b, _, _ in lines],
            [b.at for b, _, _ in lines],
            [b.issued.ingested_at for b, _, _ in lines],
            programs.currency,
            programs.version,
        )
    accrued = iter(
        await book_accruals(
            conn,
            programs,
            [
                CreditAccrual(
                    b.accrual,
                    partner_id=b.issued.credit.partner_id,
                    credit_id=b.issued.credit.credit_id,
                    deal_key=b.issued.credit.deal_key,
                    period=b.earnings.period,
                    at=b.at,
                    ingested_at=b.issued.ingested_at,
                    traceparent=b.issued.traceparent,
                )
                for b in bookings
                if b.accrual is not None
            ],
        )
    )
    events: list[OutgoingEvent] = []
    for b in bookings:
        events += _earning_events(programs, b)
        if b.accrual is not None:
            events.append(next(accrued))
    return events


def _earning_events(programs: IncentivePrograms, booking: Booking) -> list[OutgoingEvent]:
    """One IncentiveEarned per line, then the partner's notification if it earned anything."""
    credit, earnings, at = booking.issued.credit, booking.earnings, booking.at
    ingested_at, traceparent = booking.issued.ingested_at, booking.issued.traceparent
    events = []
    for line in earnings.lines:
        line_id = entry_id(credit.credit_id, line.rule)
        earned = IncentiveEarned(
            entry_id=line_id,
            partner_id=credit.partner_id,
            entry_type=line.entry_type.value,
            program_rule=line.rule,
            credit_id=credit.credit_id,
            deal_key=credit.deal_key,
            period=earnings.period,
            basis=line.basis,
            rate=line.rate,
            uncapped_amount=line.uncapped_amount,
            amount=line.amount,
            currency=programs.currency,
            note=line.note,
            tier=booking.context.tier,
            programs_version=programs.version,
            earned_at=at,
            ingested_at=ingested_at,
        )
        events.append(
            OutgoingEvent(
                INCENTIVE_LEDGER,
                earned,
                credit.partner_id,
                uuid.UUID(line_id),
                traceparent=traceparent,
            )
        )
    if earnings.total > 0:
        rules = ", ".join(f"{line.rule} {line.amount}" for line in earnings.lines if line.amount)
        notification = PartnerNotification(
            notification_id=entry_id(credit.credit_id, "earning"),
            partner_id=credit.partner_id,
            recipient=credit.partner_id,
            kind="earning",
            subject=f"You earned {earnings.total} {programs.currency}",
            body=f"Credit {credit.credit_id} on deal {credit.deal_key} earned {rules} "
            f"({earnings.period}).",
            deal_key=credit.deal_key,
            created_at=at,
            ingested_at=ingested_at,
        )
        events.append(
            OutgoingEvent(
                PARTNER_NOTIFICATIONS,
                notification,
                credit.partner_id,
                traceparent=traceparent,
            )
        )
    return events


async def apply_reversal(
    conn: Connection,
    outbox: Outbox,
    programs: IncentivePrograms,
    reversal: CreditReversed,
    *,
    ingested_at: datetime | None,
    traceparent: str | None = None,
) -> str:
    """Take back exactly the entries the reversed credit produced (looked up, not recomputed).
    What it announces continues `traceparent` (None: the current span's)."""
    await lock_partner(conn, reversal.partner_id)
    credit = await conn.fetchrow(
        "SELECT * FROM credits WHERE credit_id = $1 FOR UPDATE", reversal.credit_id
    )
    if credit is None:
        # Cannot happen on one deal key (one partition, in order) unless attribution published
        # a reversal without its credit; keep it and apply it when the credit arrives.
        await conn.execute(
            """INSERT INTO pending_reversals (credit_id, reversal, received_at)
               VALUES ($1, $2::jsonb, $3) ON CONFLICT DO NOTHING""",
            reversal.credit_id,
            reversal.model_dump_json(),
            now(),
        )
        log.warning("reversal before its credit: parked", extra={"credit_id": reversal.credit_id})
        return "parked until the credit arrives"
    problems = []
    if credit["partner_id"] != reversal.partner_id:
        problems.append(f"partner {reversal.partner_id} != credit's {credit['partner_id']}")
    if credit["amount"] != reversal.amount:
        problems.append(f"amount {reversal.amount} != credit's {credit['amount']}")
    if credit["currency"] != reversal.currency:
        problems.append(f"currency {reversal.currency} != credit's {credit['currency']}")
    if problems:
        raise InvalidEvent(
            f"reversal {reversal.reversal_id} does not match credit {reversal.credit_id}: "
            + "; ".join(problems)
        )
    if credit["reversal_id"] is not None:
        log.info(
            "credit already reversed",
            extra={"credit_id": reversal.credit_id, "by": credit["reversal_id"]},
        )
        return "already reversed"
    at = now()
    rows = await conn.fetch(
        """SELECT * FROM ledger_entries WHERE credit_id = $1
           AND entry_type IN ('accrual', 'kicker', 'spiff') ORDER BY seq""",
        reversal.credit_id,
    )
    by_id = {row["entry_id"]: row for row in rows}
    produced = [
        Entry(
            row["entry_id"],
            row["partner_id"],
            EntryType(row["entry_type"]),
            row["rule"],
            row["amount"],
            row["credit_id"],
        )
        for row in rows
    ]
    reason = f"credit {reversal.credit_id} reversed ({reversal.reason})"
    taken_back = ZERO
    events: list[OutgoingEvent] = []
    for entry in reversals_for(produced, lambda e: entry_id(e.entry_id, "reversal")):
        original = by_id[entry.reverses or ""]
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
            reason,
            original["tier"],
            original["programs_version"],
            entry.reverses,
            reversal.reversal_id,
            at,
            ingested_at,
        )
        taken_back -= entry.amount
        events.append(
            OutgoingEvent(
                INCENTIVE_LEDGER,
                reversed_event(
                    entry.entry_id, dict(original), "incentive", reversal, reason, at, ingested_at
                ),
                reversal.partner_id,
                uuid.UUID(entry.entry_id),
                traceparent=traceparent,
            )
        )
    clawed = await claw_back_accrual(
        conn, programs, partner_id=reversal.partner_id, credit_id=reversal.credit_id
    )
    if clawed is not None:
        accrual, _ = clawed
        mdf_reversal_id = entry_id(accrual["entry_id"], "reversal")
        events.append(
            OutgoingEvent(
                INCENTIVE_LEDGER,
                reversed_event(mdf_reversal_id, accrual, "mdf", reversal, reason, at, ingested_at),
                reversal.partner_id,
                uuid.UUID(mdf_reversal_id),
                traceparent=traceparent,
            )
        )
    await conn.execute(
        "UPDATE credits SET reversal_id = $2, reversed_at = $3 WHERE credit_id = $1",
        reversal.credit_id,
        reversal.reversal_id,
        at,
    )
    if taken_back > 0:
        notification = PartnerNotification(
            notification_id=entry_id(reversal.credit_id, "clawback"),
            partner_id=reversal.partner_id,
            recipient=reversal.partner_id,
            kind="clawback",
            subject=f"{taken_back} {credit['currency']} clawed back",
            body=f"Credit {reversal.credit_id} on deal {reversal.deal_key} was reversed "
            f"({reversal.reason}); the {taken_back} {credit['currency']} it earned was "
            "taken back.",
            deal_key=reversal.deal_key,
            created_at=at,
            ingested_at=ingested_at,
        )
        events.append(
            OutgoingEvent(
                PARTNER_NOTIFICATIONS,
                notification,
                reversal.partner_id,
                traceparent=traceparent,
            )
        )
    await outbox.publish_many(conn, events)
    return "reversed"


def reversed_event(
    reversal_entry_id: str,
    original: dict[str, Any],
    ledger: str,
    reversal: CreditReversed,
    reason: str,
    at: datetime,
    ingested_at: datetime | None,
) -> IncentiveReversed:
    return IncentiveReversed(
        entry_id=reversal_entry_id,
        reverses_entry_id=original["entry_id"],
        ledger=ledger,
        partner_id=reversal.partner_id,
        program_rule=original["rule"],
        credit_id=reversal.credit_id,
        reversal_id=reversal.reversal_id,
        deal_key=reversal.deal_key,
        period=original["period"],
        amount=original["amount"],
        currency=original["currency"],
        reason=reason,
        reversed_at=at,
        ingested_at=ingested_at,
    )
