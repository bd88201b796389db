"""Write-side SQL of notifications: filing messages in inboxes (positions in commit order) and
marking them read."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from services.notifications.domain.addressing import Recipient
from services.notifications.domain.messages import Message
from shared.db import Connection, Pool, columns, delete_in_batches

# Listened to by every instance's live streams: a commit that filed messages wakes them.
INBOX_CHANNEL = "notifications_inbox"


@dataclass(frozen=True)
class Filed:
    position: int
    message: Message


async def file_messages(conn: Connection, messages: list[Message]) -> list[Filed]:
    """File messages not filed before, in order, at the next positions. Taking the positions
    locks the counter row until this transaction ends, so no later position can become
    visible before these (see migrations/0001_inbox.sql)."""
    if not messages:
        return []
    known = {
        row["notification_id"]
        for row in await conn.fetch(
            "SELECT notification_id FROM messages WHERE notification_id = ANY($1::uuid[])",
            [m.notification_id for m in messages],
        )
    }
    fresh = [m for m in messages if m.notification_id not in known]
    if not fresh:
        return []
    last = await conn.fetchval(
        """UPDATE inbox_counter SET last_position = last_position + $1
           RETURNING last_position""",
        len(fresh),
    )
    first = int(last) - len(fresh) + 1
    filed = [Filed(first + i, message) for i, message in enumerate(fresh)]
    await conn.execute(
        """INSERT INTO messages (position, notification_id, recipient_kind, recipient,
               partner_id, kind, subject, body, registration_id, deal_key, created_at,
               ingested_at)
           SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::text[],
               $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
               $11::timestamptz[], $12::timestamptz[])""",
        *columns(
            [
                (
                    f.position,
                    f.message.notification_id,
                    f.message.recipient.kind.value,
                    f.message.recipient.id,
                    f.message.partner_id,
                    f.message.kind,
                    f.message.subject,
                    f.message.body,
                    f.message.registration_id,
                    f.message.deal_key,
                    f.message.created_at,
                    f.message.ingested_at,
                )
                for f in filed
            ]
        ),
    )
    await conn.execute("SELECT pg_notify($1, '')", INBOX_CHANNEL)
    return filed


async def mark_read(
    conn: Connection,
    recipient: Recipient,
    *,
    notification_ids: list[uuid.UUID] | None = None,
    through: int | None = None,
) -> int:
    """Mark the recipient's unread messages read: those named, or every one up to a position.
    Another recipient's ids are simply not among them. Returns how many changed."""
    result = await conn.execute(
        """UPDATE messages SET read_at = now()
           WHERE recipient_kind = $1 AND recipient = $2 AND read_at IS NULL
             AND ($3::uuid[] IS NULL OR notification_id = ANY($3::uuid[]))
             AND ($4::bigint IS NULL OR position <= $4)""",
        recipient.kind.value,
        recipient.id,
        notification_ids,
        through,
    )
    return int(result.split()[-1])


async def purge_delivered(pool: Pool, before: datetime, batch_size: int = 5_000) -> int:
    """Delete delivered webhook deliveries (their attempts cascade) and sent or given-up mails
    finished before `before`, a batch per transaction. Pending ones are never touched."""
    deliveries = await delete_in_batches(
        pool,
        """DELETE FROM webhook_deliveries WHERE delivery_id = ANY(ARRAY(
               SELECT delivery_id FROM webhook_deliveries
               WHERE status = 'delivered' AND delivered_at < $1 LIMIT $2))""",
        before,
        batch_size=batch_size,
    )
    mails = await delete_in_batches(
        pool,
        """DELETE FROM emails WHERE email_id = ANY(ARRAY(
               SELECT email_id FROM emails
               WHERE status <> 'pending' AND coalesce(sent_at, next_attempt_at) < $1 LIMIT $2))""",
        before,
        batch_size=batch_size,
    )
    return deliveries + mails
