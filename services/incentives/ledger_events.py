"""The event of an entry written to a ledger (money or MDF), or of a credit's booking: on the
incentive ledger, keyed by the partner (its entries stay in order) and identified by the entry
(or the credit), so that writing the same entry again records the same event."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.incentives.domain.ledger import credit_entry_id
from shared.events import Envelope
from shared.events.attribution import CreditIssued
from shared.events.incentives import (
    CreditBooked,
    IncentiveEarned,
    IncentiveReversed,
    MdfAccrued,
    MdfExpired,
    PayoutRecorded,
)
from shared.outbox import OutgoingEvent
from shared.topics import INCENTIVE_LEDGER

EntryWritten = IncentiveEarned | IncentiveReversed | MdfAccrued | MdfExpired | PayoutRecorded


def entry_event(payload: EntryWritten, cause: Envelope[Any] | None = None) -> OutgoingEvent:
    return OutgoingEvent(
        INCENTIVE_LEDGER, payload, payload.partner_id, uuid.UUID(payload.entry_id), cause=cause
    )


def booked_event(booked: CreditBooked, cause: Envelope[CreditIssued]) -> OutgoingEvent:
    """A credit's booking, identified by its credit: booking it again records the same event."""
    event_id = uuid.UUID(credit_entry_id(cause.data.issued_at, booked.credit_id, "booked"))
    return OutgoingEvent(INCENTIVE_LEDGER, booked, booked.partner_id, event_id, cause=cause)


@dataclass(frozen=True)
class LedgerAnnouncements:
    """How a credit's booking is announced. By default as one `incentive.credit_booked.v1`.
    With `entries_alone` (INCENTIVES_LEDGER_ENTRIES_ALONE, for an upgrade from a version that
    announced entries alone, while a reader of the ledger still runs such a version: an older
    reader skips a type it does not know) each entry goes out alone as it did then, an
    `incentive.earned.v1` per earning and an `incentive.mdf_accrued.v1`, each identified by its
    entry."""

    entries_alone: bool = False

    def of(self, events: Sequence[OutgoingEvent]) -> list[OutgoingEvent]:
        """`events` as this service announces them: bookings split when entries go alone."""
        if not self.entries_alone:
            return list(events)
        announced: list[OutgoingEvent] = []
        for event in events:
            booked = event.payload
            if not isinstance(booked, CreditBooked):
                announced.append(event)
                continue
            entries: list[EntryWritten] = [*booked.earnings]
            if booked.mdf_accrued is not None:
                entries.append(booked.mdf_accrued)
            announced += [entry_event(entry, event.cause) for entry in entries]
        return announced
