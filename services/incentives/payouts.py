"""Payouts: the one ledger write that is not event-driven. Finance pays a partner out of its
balance (all of it by default), never more than it holds, once per reference: a retry under a
reference answers with the payout recorded under it (nothing booked or announced again), and
a reference names one payout only."""

from __future__ import annotations

import uuid
from decimal import Decimal

import asyncpg

from services.incentives import payout_repository, repository
from services.incentives.domain.ledger import (
    RecordedPayout,
    check_one_currency,
    check_payable,
    check_retry,
    payout_amount,
)
from services.incentives.domain.programs import IncentivePrograms
from services.incentives.ledger_events import entry_event
from shared.clock import now
from shared.db import Connection, from_row
from shared.events.incentives import PayoutRecorded
from shared.outbox import Outbox


async def record_payout(
    conn: Connection,
    outbox: Outbox,
    programs: IncentivePrograms,
    partner_id: str,
    amount: Decimal | None,
    reference: str,
) -> tuple[PayoutRecorded, bool]:
    """Pay `amount` (default: the whole balance) out of the partner's balance under its
    `reference`; PayoutRefused if the balance does not cover it. A retry (the same reference,
    asking for the same money) returns the recorded payout; the same reference for another
    payout is a PayoutConflict. Returns the payout and whether it is new."""
    # The partner's lock serialises its payouts (and its bookings): a concurrent retry waits
    # here, then finds the first one under its reference.
    await repository.lock_partner(conn, partner_id)
    known = await payout_repository.by_reference(conn, partner_id, reference)
    if known is not None:
        check_retry(from_row(RecordedPayout, known), amount, programs.currency)
        return _recorded(known), False
    check_payable(await repository.partner_status(conn, partner_id))
    balances = await payout_repository.ledger_balances(conn, partner_id)
    check_one_currency(balances, programs.currency)
    current = balances.get(programs.currency, Decimal(0))
    pay = payout_amount(current, amount)
    written = await payout_repository.insert(
        conn,
        programs,
        payout_id=str(uuid.uuid4()),
        partner_id=partner_id,
        requested=amount,
        amount=pay,
        reference=reference,
        balance_after=current - pay,
        at=now(),
    )
    event = _recorded(written)
    await outbox.publish_many(conn, [entry_event(event)])
    return event, True


def _recorded(row: asyncpg.Record) -> PayoutRecorded:
    """The payout as the ledger holds it (amounts as stored, e.g. 10.00 for a request's 1e1)."""
    return from_row(PayoutRecorded, row)
