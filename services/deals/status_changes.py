"""What a registration's status change stores and announces (review, extension, expiry, and
closing with its CRM opportunity all go through here)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from services.deals import repository
from services.deals.repository import Row
from shared.clock import now
from shared.db import Connection
from shared.events import Envelope
from shared.events.notifications import NotificationKind
from shared.events.registrations import RegistrationStatus, RegistrationStatusChanged
from shared.notify import notify
from shared.outbox import Outbox, OutgoingEvent
from shared.topics import DEAL_REGISTRATIONS


def status_change_events(
    row: Row,
    status: RegistrationStatus,
    reason: str,
    expires_at: datetime | None = None,
    cause: Envelope[Any] | None = None,
) -> list[OutgoingEvent]:
    """What a registration's status change announces: the change, and a notification when it
    expired. `cause` is the consumed event behind the change, if any."""
    registration_id: str = row["registration_id"]
    events = [
        OutgoingEvent(
            DEAL_REGISTRATIONS,
            RegistrationStatusChanged(
                registration_id=registration_id,
                partner_id=row["partner_id"],
                previous_status=RegistrationStatus(row["status"]),
                status=status,
                reason=reason,
                changed_at=now(),
                expires_at=expires_at or row["expires_at"],
                crm_deal_key=row["crm_deal_key"],
                amount=Decimal(row["amount"]),
                currency=row["currency"],
            ),
            registration_id,
            cause=cause,
        )
    ]
    if status is RegistrationStatus.EXPIRED:
        events.append(
            notify(
                row["partner_id"],
                NotificationKind.EXPIRED,
                about=f"{registration_id}/expired",
                subject=f"Registration {registration_id} expired",
                body=reason,
                registration_id=registration_id,
                cause=cause,
            )
        )
    return events


async def change_status(
    conn: Connection,
    outbox: Outbox,
    row: Row,
    status: RegistrationStatus,
    reason: str,
    expires_at: datetime | None = None,
) -> None:
    """Store the registration's new status and announce it."""
    await repository.store_status(conn, row, status, expires_at)
    await outbox.publish_many(conn, status_change_events(row, status, reason, expires_at))
