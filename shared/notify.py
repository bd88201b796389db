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
    AnyNotificationKind,
    AnyPartnerNotification,
    NotificationKind,
    NotificationKindV2,
    NotificationKindV3,
    NotificationKindV4,
    PartnerNotification,
    PartnerNotificationV2,
    PartnerNotificationV3,
    PartnerNotificationV4,
    PartnerNotificationV5,
)
from shared.name_ids import NameIds
from shared.outbox import OutgoingEvent
from shared.topics import PARTNER_NOTIFICATIONS

_V1_KINDS = frozenset(kind.value for kind in NotificationKind)
_V2_KINDS = frozenset(kind.value for kind in NotificationKindV2)
_V3_KINDS = frozenset(kind.value for kind in NotificationKindV3)
_V4_KINDS = frozenset(kind.value for kind in NotificationKindV4)
NOTIFICATION_IDS = NameIds(uuid.UUID("3f4c2b8e-8d1a-4f0e-9b6a-5e2d7c1a9f40"))


def notification_id(
    kind: AnyNotificationKind, recipient: str, about: str, ordered_by: datetime | None = None
) -> uuid.UUID:
    """The same occurrence for the same recipient is the same notification. With `ordered_by`
    (a moment the occurrence carries, such as a credit's issue time) the id begins with it, so
    the keys on notification ids (outbox, inbox, messages) grow at their right edge."""
    name = f"{kind.value}/{recipient}/{about}"
    if ordered_by is None:
        return NOTIFICATION_IDS.uuid(name)
    return NOTIFICATION_IDS.ordered(ordered_by, name)


def notify(
    partner_id: str,
    kind: AnyNotificationKind,
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
    ordered_by: datetime | None = None,
) -> OutgoingEvent:
    """A notification for `partner_id`'s app, addressed to `recipient` (the partner itself, or
    the direct account owner it concerns). `about` names the occurrence; `cause` is the
    consumed event behind it, if any (its trace and ingestion time are carried on);
    `ordered_by`, the moment `about` carries, orders its id (see `notification_id`)."""
    recipient = recipient or partner_id
    identity = notification_id(kind, recipient, about, ordered_by)
    # A kind goes out in the oldest version that names it (its consumers know it).
    contract: type[AnyPartnerNotification] = (
        PartnerNotification
        if kind.value in _V1_KINDS
        else PartnerNotificationV2
        if kind.value in _V2_KINDS
        else PartnerNotificationV3
        if kind.value in _V3_KINDS
        else PartnerNotificationV4
        if kind.value in _V4_KINDS
        else PartnerNotificationV5
    )
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
