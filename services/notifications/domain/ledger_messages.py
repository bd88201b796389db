"""Ledger entries partners care about that no service tells them of: a payout recorded, MDF
expiring unused. (Earnings, clawbacks and claim decisions already arrive as notifications.)
Each becomes a message for the partner, its id derived from the entry, so a redelivered entry
is the same message."""

from __future__ import annotations

import uuid
from datetime import datetime

from services.notifications.domain.addressing import Recipient
from services.notifications.domain.messages import Message
from shared.events.incentives import MdfExpired, PayoutRecorded
from shared.name_ids import NameIds

PAYOUT = "payout"
MDF_EXPIRED = "mdf_expired"
LEDGER_IDS = NameIds(uuid.UUID("c1d7a1f2-93a4-4c3e-8e0b-4f7a2d9b6e15"))


def _id(kind: str, entry_id: str) -> uuid.UUID:
    return LEDGER_IDS.uuid(f"{kind}/{entry_id}")


def _to_partner(
    kind: str,
    entry: PayoutRecorded | MdfExpired,
    subject: str,
    body: str,
    created_at: datetime,
    ingested_at: datetime | None,
) -> Message:
    """A message to the entry's partner, about the entry (nothing about a registration)."""
    return Message(
        notification_id=_id(kind, entry.entry_id),
        recipient=Recipient.partner(entry.partner_id),
        partner_id=entry.partner_id,
        kind=kind,
        subject=subject,
        body=body,
        registration_id=None,
        deal_key=None,
        created_at=created_at,
        ingested_at=ingested_at,
    )


def payout(entry: PayoutRecorded) -> Message:
    return _to_partner(
        PAYOUT,
        entry,
        f"Payout of {entry.amount} {entry.currency} recorded",
        f"Reference {entry.reference}; your balance after it: "
        f"{entry.balance_after} {entry.currency}.",
        entry.paid_at,
        None,
    )


def mdf_expired(entry: MdfExpired) -> Message:
    return _to_partner(
        MDF_EXPIRED,
        entry,
        f"{entry.amount} {entry.currency} of market development funds expired unused",
        f"The funds accrued from credit {entry.credit_id} (lot {entry.lot_id}) expired "
        f"at {entry.expired_at.isoformat()}.",
        entry.expired_at,
        entry.ingested_at,
    )
