"""The event of an entry written to a ledger (money or MDF), or of a credit's booking: on the
incentive ledger, keyed by the partner (its entries stay in order) and identified by the entry
(or the credit), so that writing the same entry again records the same event."""

from __future__ import annotations

import uuid
from typing import Any

from services.incentives.domain.ledger import entry_id
from shared.events import Envelope
from shared.events.incentives import (
    CreditBooked,
    IncentiveReversed,
    MdfExpired,
    PayoutRecorded,
)
from shared.outbox import OutgoingEvent
from shared.topics import INCENTIVE_LEDGER

EntryWritten = IncentiveReversed | MdfExpired | PayoutRecorded


def entry_event(payload: EntryWritten, cause: Envelope[Any] | None = None) -> OutgoingEvent:
    return OutgoingEvent(
        INCENTIVE_LEDGER, payload, payload.partner_id, uuid.UUID(payload.entry_id), cause=cause
    )


def booked_event(booked: CreditBooked, cause: Envelope[Any]) -> OutgoingEvent:
    """A credit's booking, identified by its credit: booking it again records the same event."""
    event_id = uuid.UUID(entry_id(booked.credit_id, "booked"))
    return OutgoingEvent(INCENTIVE_LEDGER, booked, booked.partner_id, event_id, cause=cause)
