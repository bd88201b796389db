"""Use case: notifications arrive and are filed in their recipients' inboxes (and queued for
their webhooks); a recipient marks what it has read."""

from __future__ import annotations

import uuid

from services.notifications import email_repository, repository, views, webhook_repository
from services.notifications.domain.addressing import Recipient
from services.notifications.domain.cursor import ClaimedPosition
from services.notifications.domain.messages import Message, first_of_each
from services.notifications.repository import Filed
from shared.db import Connection
from shared.events.notifications import AnyPartnerNotification


async def receive(conn: Connection, notes: list[AnyPartnerNotification]) -> list[Filed]:
    """File a run of notifications, each under its own recipient, in the order they came."""
    return await file(conn, first_of_each([Message.of(n) for n in notes]))


async def file(conn: Connection, messages: list[Message]) -> list[Filed]:
    """File messages and, in the same transaction, queue them for their partner's webhook
    endpoints and their recipient's e-mail: a message in an inbox is a message on its way to
    every channel."""
    filed = await repository.file_messages(conn, messages)
    await webhook_repository.enqueue(conn, filed)
    await email_repository.route(conn, filed)
    return filed


async def mark_read(
    conn: Connection,
    recipient: Recipient,
    *,
    notification_ids: list[uuid.UUID] | None,
    through: ClaimedPosition | None,
) -> int:
    """Mark the named messages read, or every one through a cursor. A cursor ahead of the
    inbox's newest message was never handed out: it is refused, not taken as "everything" (a
    reader can only have seen what was filed)."""
    up_to = (
        through.verified(await views.latest_position(conn, recipient))
        if through is not None
        else None
    )
    return await repository.mark_read(
        conn, recipient, notification_ids=notification_ids, through=up_to
    )
