"""Read side of notifications: pages of an inbox and its unread count. No locks: positions
become visible in order (migrations/0001_inbox.sql), so a read never passes a message that is
still to commit."""

from __future__ import annotations

from typing import Any

from services.notifications.domain import cursor
from services.notifications.domain.addressing import Recipient
from services.notifications.schemas import NotificationOut, NotificationPage
from shared.db import Connection

MESSAGE_COLUMNS = """position, notification_id, partner_id, kind, subject, body, registration_id,
    deal_key, created_at, ingested_at, read_at"""


def message_out(row: Any) -> NotificationOut:
    return NotificationOut(
        cursor=cursor.encode(row["position"]),
        notification_id=row["notification_id"],
        kind=row["kind"],
        partner_id=row["partner_id"],
        subject=row["subject"],
        body=row["body"],
        registration_id=row["registration_id"],
        deal_key=row["deal_key"],
        created_at=row["created_at"],
        ingested_at=row["ingested_at"],
        read=row["read_at"] is not None,
    )


async def messages_after(
    conn: Connection, recipient: Recipient, after: int, limit: int
) -> list[NotificationOut]:
    rows = await conn.fetch(
        f"""SELECT {MESSAGE_COLUMNS} FROM messages
            WHERE recipient_kind = $1 AND recipient = $2 AND position > $3
            ORDER BY position LIMIT $4""",
        recipient.kind.value,
        recipient.id,
        after,
        limit,
    )
    return [message_out(row) for row in rows]


async def unread(conn: Connection, recipient: Recipient) -> int:
    count = await conn.fetchval(
        """SELECT count(*) FROM messages
           WHERE recipient_kind = $1 AND recipient = $2 AND read_at IS NULL""",
        recipient.kind.value,
        recipient.id,
    )
    return int(count)


async def page(
    conn: Connection, recipient: Recipient, after: str | None, limit: int
) -> NotificationPage:
    start = cursor.decode(after, "after") if after is not None else 0
    items = await messages_after(conn, recipient, start, limit)
    return NotificationPage(
        items=items,
        next_cursor=items[-1].cursor if items else after,
        unread=await unread(conn, recipient),
    )


async def latest_position(conn: Connection, recipient: Recipient) -> int:
    position = await conn.fetchval(
        """SELECT max(position) FROM messages WHERE recipient_kind = $1 AND recipient = $2""",
        recipient.kind.value,
        recipient.id,
    )
    return int(position or 0)
