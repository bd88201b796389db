"""A message in an inbox, as the inbox keeps it: one notification, filed under its recipient."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from services.notifications.domain.addressing import Recipient, addressee
from shared.events.envelope import InvalidEvent
from shared.events.notifications import AnyPartnerNotification


@dataclass(frozen=True)
class Message:
    notification_id: uuid.UUID
    recipient: Recipient
    partner_id: str
    kind: str
    subject: str
    body: str
    registration_id: str | None
    deal_key: str | None
    created_at: datetime
    ingested_at: datetime | None

    @classmethod
    def of(cls, note: AnyPartnerNotification) -> Message:
        """The notification as a message; one whose id is not a UUID (the platform's ids all
        are, shared/notify.py) is refused as invalid: it goes to the dead letters with the
        reason, and the messages beside it are filed."""
        try:
            notification_id = uuid.UUID(note.notification_id)
        except ValueError:
            raise InvalidEvent(
                f"notification_id {note.notification_id[:64]!r} is not a UUID"
            ) from None
        return cls(
            notification_id=notification_id,
            recipient=addressee(note),
            partner_id=note.partner_id,
            kind=str(note.kind),  # an enum member (v1-v4) or a name (v5)
            subject=note.subject,
            body=note.body,
            registration_id=note.registration_id,
            deal_key=note.deal_key,
            created_at=note.created_at,
            ingested_at=note.ingested_at,
        )


def first_of_each(messages: list[Message]) -> list[Message]:
    """The messages in their order, each notification once (a batch may carry a repeat)."""
    seen: set[uuid.UUID] = set()
    unique = []
    for message in messages:
        if message.notification_id not in seen:
            seen.add(message.notification_id)
            unique.append(message)
    return unique
