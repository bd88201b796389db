"""Attribution credits and reversals move attributed revenue, hence tiers: a run of them (as a
consumed batch hands them over) is recorded and its partners re-evaluated after each event, in
order, exactly as one at a time, in a bounded number of statements whatever its length:

    lock the run's partners and load their certifications and revenue (`Reassessment.start`),
    insert the credits (or reversals) in one statement,
    apply each new one in memory (`move_revenue`, `reassess`),
    write the partners and their audit rows, one statement each (`Reassessment.write`);

the caller records the returned events in one more statement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from services.onboarding import repository
from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.credits import check_reporting_currency, first_occurrences
from services.onboarding.reassessment import Reassessment
from shared.clock import now
from shared.db import Connection
from shared.events import Envelope
from shared.events.attribution import CreditIssued, CreditReversed
from shared.outbox import OutgoingEvent


async def record_credits(
    conn: Connection, config: OnboardingConfig, events: Sequence[Envelope[CreditIssued]]
) -> list[OutgoingEvent]:
    """Record a run of credits and re-evaluate their partners after each one. A credit id
    already recorded (or earlier in the run) is kept once and moves nothing; credits for
    partners onboarding does not know are kept (audit) but move nothing. Returns the events to
    publish, each caused by the credit behind it."""
    first, distinct = _distinct(config, events, "credit", lambda c: c.credit_id)
    # Partners first: another run recording a credit or reversal of theirs waits for these
    # locks before it commits, so what is loaded now and what the inserts see is one state.
    run = await Reassessment.start(conn, config, {c.partner_id for c in distinct}, now())
    nets = await repository.insert_credits(conn, distinct)
    for i in sorted(first[credit_id] for credit_id in nets):
        credit = events[i].data
        run.move_revenue(credit.partner_id, credit.close_date, nets[credit.credit_id])
        run.reassess(credit.partner_id, cause=events[i])
    return await run.write(conn)


async def record_reversals(
    conn: Connection, config: OnboardingConfig, events: Sequence[Envelope[CreditReversed]]
) -> list[OutgoingEvent]:
    """Record a run of reversals and re-evaluate their partners after each one, in order (see
    `record_credits`). A reversal cancels its credit's amount from the credit's partner's
    revenue; one whose credit onboarding has not seen yet is kept and counts when it comes."""
    first, distinct = _distinct(config, events, "reversal", lambda r: r.reversal_id)
    run = await Reassessment.start(conn, config, {r.partner_id for r in distinct}, now())
    recorded = await repository.insert_reversals(conn, distinct)
    for i in sorted(first[reversal_id] for reversal_id in recorded):
        reversal = events[i].data
        row = recorded[reversal.reversal_id]
        if row["credit_partner_id"] is not None:  # its credit is known: its revenue drops
            run.move_revenue(row["credit_partner_id"], row["close_date"], -row["amount"])
        run.reassess(reversal.partner_id, cause=events[i])
    return await run.write(conn)


Moved = TypeVar("Moved", CreditIssued, CreditReversed)


def _distinct(
    config: OnboardingConfig,
    events: Sequence[Envelope[Moved]],
    what: str,
    id_of: Callable[[Moved], str],
) -> tuple[dict[str, int], list[Moved]]:
    """Each id's first place in the run, and the run's distinct events in id order. Every
    event must be in the reporting currency."""
    for event in events:
        check_reporting_currency(config, f"{what} {id_of(event.data)}", event.data.currency)
    first = first_occurrences(id_of(event.data) for event in events)
    return first, sorted((events[i].data for i in first.values()), key=id_of)
