"""The event of an entry written to a ledger (money or MDF): on the incentive ledger, keyed by
the entry's partner (its entries stay in order) and identified by the entry, so that writing
the same entry again records the same event."""

from __future__ import annotations

import uuid
from typing import Any

from shared.events import Envelope
from shared.events.incentives import (
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
