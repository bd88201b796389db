"""Booking credits: what a run of credits earns, into the append-only ledger.

Loads the facts the pure rules need (partner tier, whether the customer or region is new, what
the partner already earned in the period), books what they decide and returns the events
announcing it, all in the consumer's transaction. Credits come in runs (the consumer hands over
consecutive ones together; a single credit is a run of one): a run's facts are loaded with one
query, each credit sees the ones before it in the run (first deals, period totals), and its rows
are written with one statement per table, its events with one for the whole run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.incentives import clawbacks, mdf_accruals, repository
from services.incentives.domain.evaluation import evaluate, refusal
from services.incentives.domain.programs import IncentivePrograms
from services.incentives.domain.surroundings import Subject
from services.incentives.ledger_events import booked_event
from services.incentives.repository import Booking
from shared.clock import now
from shared.db import Connection
from shared.events import Envelope, InvalidEvent
from shared.events.attribution import CreditIssued
from shared.events.incentives import CreditBooked, IncentiveEarned, MdfAccrued
from shared.events.notifications import NotificationKind
from shared.notify import notify
from shared.outbox import OutgoingEvent

log = logging.getLogger(__name__)

BOOKED = "credit booked"
DUPLICATE = "duplicate credit"
BOOKED_THEN_REVERSED = "credit booked, then reversed by a reversal that had arrived first"
HELD = "credit held until its partner is active"


@dataclass
class Booked:
    """What happened to each credit of a run (for logs and tests), and the events to record,
    in order."""

    outcomes: list[str] = field(default_factory=list)
    events: list[OutgoingEvent] = field(default_factory=list)


def subject_of(programs: IncentivePrograms, credit: CreditIssued) -> Subject:
    """The credit parsed once into what names its surroundings (its customer key, region and
    period)."""
    return Subject.of(
        programs,
        credit_id=credit.credit_id,
        partner_id=credit.partner_id,
        deal_key=credit.deal_key,
        domain=credit.customer.domain,
        name=credit.customer.name,
        folded_name=credit.customer.folded_name,
        country=credit.customer.country,
        close_date=credit.close_date,
        issued_at=credit.issued_at,
        replaces=credit.replaces,
    )


async def book_credits(
    conn: Connection, programs: IncentivePrograms, run: Sequence[Envelope[CreditIssued]]
) -> Booked:
    """Book what a run of credits earns, in order, with a few statements for the whole run.
    What each credit causes names its event as the cause."""
    for event in run:
        credit = event.data
        refused = refusal(
            programs, credit_id=credit.credit_id, amount=credit.amount, currency=credit.currency
        )
        if refused is not None:
            raise InvalidEvent(refused)
    subjects = [subject_of(programs, event.data) for event in run]
    await repository.lock_run(conn, subjects)
    booked = Booked()
    while len(booked.outcomes) < len(run):
        done = len(booked.outcomes)
        await _book_until_parked(conn, programs, run[done:], subjects[done:], booked)
    return booked


async def _book_until_parked(
    conn: Connection,
    programs: IncentivePrograms,
    run: Sequence[Envelope[CreditIssued]],
    subjects: Sequence[Subject],
    booked: Booked,
) -> None:
    """Book the run up to the first credit a parked reversal waits for, then apply that
    reversal (what follows must see it: the caller books the rest afterwards)."""
    known = await repository.load_surroundings(conn, programs, subjects)
    bookings: list[Booking] = []
    held: list[tuple[Envelope[CreditIssued], str]] = []
    for event, subject in zip(run, subjects, strict=True):
        credit = event.data
        if credit.credit_id in known.booked:
            log.info("credit already booked", extra={"credit_id": credit.credit_id})
            booked.outcomes.append(DUPLICATE)
            continue
        context = known.context(subject)
        waits = known.behind(credit.partner_id, credit.partner_version) or programs.hold_reason(
            context.status
        )
        if waits is not None:
            log.info(waits, extra={"credit_id": credit.credit_id})
            held.append((event, waits))
            booked.outcomes.append(HELD)
            continue
        at = now()
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
        customer_keys_filed, first_in_region = known.book(subject, earnings, accrual)
        bookings.append(
            Booking(event, context, earnings, accrual, at, customer_keys_filed, first_in_region)
        )
        booked.outcomes.append(BOOKED)
        if credit.credit_id in known.parked:
            break
    await repository.hold_credits(conn, held)
    booked.events += await _write(conn, programs, bookings)
    if bookings and bookings[-1].credit.credit_id in known.parked:
        last = bookings[-1]
        reversal = await repository.take_parked_reversal(conn, last.credit.credit_id)
        if reversal is not None:
            reversed_ = await clawbacks.reverse_credit(
                conn,
                programs,
                reversal,
                cause=last.cause,
                ingested_at=reversal.ingested_at or last.ingested_at,
            )
            booked.events += reversed_.events
            booked.outcomes[-1] = BOOKED_THEN_REVERSED


async def _write(
    conn: Connection, programs: IncentivePrograms, bookings: Sequence[Booking]
) -> list[OutgoingEvent]:
    """Write the run's rows, one statement per table; returns the events announcing them."""
    if not bookings:
        return []
    await repository.insert_first_deals(conn, bookings)
    await repository.insert_credits(conn, programs, bookings)
    await repository.insert_earning_lines(conn, programs, bookings)
    accrued = iter(
        await mdf_accruals.book_accruals(
            conn, programs, [b for b in bookings if b.accrual is not None]
        )
    )
    events: list[OutgoingEvent] = []
    for booking in bookings:
        accrual = next(accrued) if booking.accrual is not None else None
        events += _booking_events(programs, booking, accrual)
    return events


def _booking_events(
    programs: IncentivePrograms, booking: Booking, accrued: MdfAccrued | None
) -> list[OutgoingEvent]:
    """The credit's booking in one ledger event (its earning lines and MDF accrual; none if it
    booked neither), then the partner's notification if it earned anything. One event for the
    credit instead of one per entry: each entry was a Kafka message, an outbox row and its
    publish mark of its own (README, issue 23)."""
    credit, earnings, at = booking.credit, booking.earnings, booking.at
    events = []
    lines = [
        IncentiveEarned(
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
            ingested_at=booking.ingested_at,
        )
        for line, line_id in zip(earnings.lines, booking.line_ids, strict=True)
    ]
    if lines or accrued is not None:
        booked = CreditBooked(
            credit_id=credit.credit_id,
            partner_id=credit.partner_id,
            deal_key=credit.deal_key,
            period=earnings.period,
            earnings=lines,
            mdf_accrued=accrued,
            booked_at=at,
            ingested_at=booking.ingested_at,
        )
        events.append(booked_event(booked, booking.cause))
    if earnings.total > 0:
        rules = ", ".join(f"{line.rule} {line.amount}" for line in earnings.lines if line.amount)
        events.append(
            notify(
                credit.partner_id,
                NotificationKind.EARNING,
                about=credit.credit_id,
                subject=f"You earned {earnings.total} {programs.currency}",
                body=f"Credit {credit.credit_id} on deal {credit.deal_key} earned {rules} "
                f"({earnings.period}).",
                deal_key=credit.deal_key,
                created_at=at,
                ingested_at=booking.ingested_at,
                cause=booking.cause,
                ordered_by=credit.issued_at,
            )
        )
    return events
