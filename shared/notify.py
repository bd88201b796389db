"""The one way a service tells a partner (or a direct-sales owner) something: a
`PartnerNotification` on `notifications.partner.v1`, keyed by the partner.

Ids are deterministic, one scheme for the platform: the notification id (which is also the
event id) names the kind, the recipient and the occurrence it announces (`about`: a
registration and its moment, a credit, a ledger entry, a partner version). Telling the same
occurrence again is the same notification, so a repeated write records nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from shared.clock import now
from shared.events import Envelope
from shared.events.notifications import (
    NotificationKind,
    NotificationKindV2,
    NotificationKindV3,
    PartnerNotification,
    PartnerNotificationV2,
    PartnerNotificationV3,
)
from shared.outbox import OutgoingEvent
from shared.topics import PARTNER_NOTIFICATIONS

_V1_KINDS = frozenset(kind.value for kind in NotificationKind)
_V2_KINDS = frozenset(kind.value for kind in NotificationKindV2)
AnyKind = NotificationKind | NotificationKindV2 | NotificationKindV3
NOTIFICATION_NAMESPACE = uuid.UUID("3f4c2b8e-8d1a-4f0e-9b6a-5e2d7c1a9f40")


def notification_id(kind: AnyKind, recipient: str, about: str) -> uuid.UUID:
    return uuid.uuid5(NOTIFICATION_NAMESPACE, f"{kind.value}/{recipient}/{about}")


def notify(
    partner_id: str,
    kind: AnyKind,
    *,
    about: str,
    subject: str,
    body: str,
    recipient: str | None = None,
    registration_id: str | None = None,
    deal_key: str | None = None,
    created_at: datetime | None = None,
    ingested_at: datetime | None = None,
    cause: Envelope[Any] | None = None,
) -> OutgoingEvent:
    """A notification for `partner_id`'s app, addressed to `recipient` (the partner itself, or
    the direct account owner it concerns). `about` names the occurrence; `cause` is the
    consumed event behind it, if any (its trace and ingestion time are carried on)."""
    recipient = recipient or partner_id
    identity = notification_id(kind, recipient, about)
    # A kind v1 names goes out as v1 (its consumers know it); the others in the first version
    # that names them.
    contract: type[PartnerNotification | PartnerNotificationV2 | PartnerNotificationV3]
    if kind.value in _V1_KINDS:
        contract = PartnerNotification
    elif kind.value in _V2_KINDS:
        contract = PartnerNotificationV2
    else:
        contract = PartnerNotificationV3
    note = contract.model_validate(
        {
            "notification_id": str(identity),
            "partner_id": partner_id,
            "recipient": recipient,
            "kind": kind.value,
            "subject": subject,
            "body": body,
            "registration_id": registration_id,
            "deal_key": deal_key,
            "created_at": created_at or now(),
            "ingested_at": ingested_at,
        }
    )
    return OutgoingEvent(PARTNER_NOTIFICATIONS, note, partner_id, event_id=identity, cause=cause)
