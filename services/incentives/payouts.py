"""Payouts: the one ledger write that is not event-driven. A channel manager pays a partner
out of its balance (all of it by default), never more than it holds."""

from __future__ import annotations

import uuid
from decimal import Decimal

from services.incentives import repository
from services.incentives.domain.ledger import payout_amount
from services.incentives.domain.programs import IncentivePrograms
from services.incentives.ledger_events import entry_event
from shared.clock import now
from shared.db import Connection
from shared.events.incentives import PayoutRecorded
from shared.outbox import Outbox


async def record_payout(
    conn: Connection,
    outbox: Outbox,
    programs: IncentivePrograms,
    partner_id: str,
    amount: Decimal | None,
    reference: str,
) -> PayoutRecorded:
    """Pay `amount` (default: the whole balance) out of the partner's balance; PayoutRefused
    if the balance does not cover it."""
    await repository.lock_partner(conn, partner_id)
    current = await repository.ledger_balance(conn, partner_id)
    pay = payout_amount(current, amount)
    at = now()
    payout_id = str(uuid.uuid4())
    await repository.insert_payout(
        conn,
        programs,
        payout_id=payout_id,
        partner_id=partner_id,
        amount=pay,
        reference=reference,
        at=at,
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
    await outbox.publish_many(conn, [entry_event(event)])
    return event
