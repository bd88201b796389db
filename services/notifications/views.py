"""Read side of notifications: pages of an inbox and its unread count. No locks: positions
become visible in order (migrations/0001_inbox.sql), so a read never passes a message that is
still to commit."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from services.notifications.domain import cursor
from services.notifications.domain.addressing import Recipient
from services.notifications.domain.cursor import ClaimedPosition
from services.notifications.domain.email import EmailMode
from services.notifications.schemas import (
    AttemptOut,
    DeliveryOut,
    DeliveryPage,
    EmailPreferenceOut,
    EndpointList,
    EndpointOut,
    NewestPage,
    NotificationOut,
    NotificationPage,
)
from services.notifications.webhook_repository import ENDPOINT_COLUMNS
from shared.db import Connection, from_row
from shared.errors import NotFound, Unprocessable
from shared.metrics import GaugeReading

MESSAGE_COLUMNS = """position, notification_id, partner_id, kind, subject, body, registration_id,
    deal_key, created_at, ingested_at, read_at"""


def message_out(row: Any) -> NotificationOut:
    return from_row(
        NotificationOut,
        row,
        cursor=cursor.encode(row["position"]),
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
    conn: Connection, recipient: Recipient, after: ClaimedPosition | None, limit: int
) -> NotificationPage:
    """A page after `after` (from the first message without it); a position ahead of the
    inbox's newest message was never handed out (domain/cursor.py) and is refused."""
    start = after.verified(await latest_position(conn, recipient)) if after is not None else 0
    items = await messages_after(conn, recipient, start, limit)
    return NotificationPage(
        items=items,
        next_cursor=items[-1].cursor if items else after.cursor if after is not None else None,
        unread=await unread(conn, recipient),
    )


async def messages_before(
    conn: Connection, recipient: Recipient, before: int | None, limit: int
) -> list[NotificationOut]:
    """Newest first, below `before` (from the newest without it); one more than `limit` is
    read to know whether anything older is left."""
    rows = await conn.fetch(
        f"""SELECT {MESSAGE_COLUMNS} FROM messages
            WHERE recipient_kind = $1 AND recipient = $2 AND ($3::bigint IS NULL OR position < $3)
            ORDER BY position DESC LIMIT $4""",
        recipient.kind.value,
        recipient.id,
        before,
        limit + 1,
    )
    return [message_out(row) for row in rows]


async def newest_page(
    conn: Connection, recipient: Recipient, before: ClaimedPosition | None, limit: int
) -> NewestPage:
    """A page newest first. Stable under concurrent filing: a position is visible only once
    every lower one is (migrations/0001_inbox.sql), so an older page (`position < before`) never
    gains a message later, and a live stream resumed after the newest item misses none."""
    end = before.verified(await latest_position(conn, recipient)) if before is not None else None
    found = await messages_before(conn, recipient, end, limit)
    items, more = found[:limit], len(found) > limit
    return NewestPage(
        items=items,
        next_before=items[-1].cursor if items and more else None,
        live_after=items[0].cursor if items and before is None else None,
        unread=await unread(conn, recipient),
    )


async def latest_position(conn: Connection, recipient: Recipient) -> int:
    """The position of the recipient's newest message (0: none yet): every cursor handed out
    for the inbox is at or below it, and it never goes down (messages are not deleted)."""
    position = await conn.fetchval(
        """SELECT max(position) FROM messages WHERE recipient_kind = $1 AND recipient = $2""",
        recipient.kind.value,
        recipient.id,
    )
    return int(position or 0)


# ---- webhooks


def endpoint_out(row: Any) -> EndpointOut:
    return from_row(EndpointOut, row, kinds=list(row["kinds"]))


async def endpoints(conn: Connection, partner_id: str) -> EndpointList:
    rows = await conn.fetch(
        f"""SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE partner_id = $1
            ORDER BY created_at, endpoint_id""",
        partner_id,
    )
    return EndpointList(items=[endpoint_out(row) for row in rows])


async def endpoint(conn: Connection, partner_id: str, endpoint_id: uuid.UUID) -> EndpointOut:
    row = await conn.fetchrow(
        f"""SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints
            WHERE partner_id = $1 AND endpoint_id = $2""",
        partner_id,
        endpoint_id,
    )
    if row is None:
        raise NotFound(f"webhook endpoint {endpoint_id} not found")
    return endpoint_out(row)


async def deliveries(
    conn: Connection,
    partner_id: str,
    endpoint_id: uuid.UUID,
    limit: int,
    after: uuid.UUID | None = None,
) -> DeliveryPage:
    """A page of the endpoint's delivery log, newest first, after the delivery `after` (the
    last of the page before; 422 unless it is one of this endpoint's). The log was its newest
    100 alone: an older delivery could not be found, so not redelivered (found in review)."""
    await endpoint(conn, partner_id, endpoint_id)
    before: int | None = None
    if after is not None:
        before = await conn.fetchval(
            "SELECT position FROM webhook_deliveries WHERE delivery_id = $1 AND endpoint_id = $2",
            after,
            endpoint_id,
        )
        if before is None:
            raise Unprocessable(f"after: {after} is not a delivery of this endpoint")
    rows = await conn.fetch(
        """SELECT delivery_id, message_id, event_type, status, attempts, next_attempt_at,
                  last_status_code, last_error, created_at, delivered_at
           FROM webhook_deliveries WHERE endpoint_id = $1 AND ($3::bigint IS NULL OR position < $3)
           ORDER BY position DESC LIMIT $2""",
        endpoint_id,
        limit + 1,  # one more: whether an older page follows (found in review: a log of
        # exactly `limit` deliveries offered a next page that was empty)
        before,
    )
    more, rows = len(rows) > limit, rows[:limit]
    attempts: dict[uuid.UUID, list[AttemptOut]] = {row["delivery_id"]: [] for row in rows}
    for attempt in await conn.fetch(
        """SELECT delivery_id, attempt, attempted_at, status_code, error, duration_ms
           FROM webhook_attempts WHERE delivery_id = ANY($1::uuid[]) ORDER BY attempt""",
        list(attempts),
    ):
        attempts[attempt["delivery_id"]].append(from_row(AttemptOut, attempt))
    return DeliveryPage(
        items=[
            from_row(
                DeliveryOut,
                row,
                webhook_id=row["message_id"],
                next_attempt_at=row["next_attempt_at"] if row["status"] == "pending" else None,
                attempt_log=attempts[row["delivery_id"]],
            )
            for row in rows
        ],
        next_after=rows[-1]["delivery_id"] if more else None,
    )


# ---- e-mail


async def email_preference(conn: Connection, recipient: Recipient) -> EmailPreferenceOut:
    row = await conn.fetchrow(
        """SELECT address, kinds, mode, updated_at FROM email_preferences
           WHERE recipient_kind = $1 AND recipient = $2""",
        recipient.kind.value,
        recipient.id,
    )
    if row is None:
        return EmailPreferenceOut(address=None, mode=EmailMode.OFF, kinds=[])
    return email_preference_out(row)


def email_preference_out(row: Any) -> EmailPreferenceOut:
    return EmailPreferenceOut(
        address=row["address"],
        mode=EmailMode(row["mode"]),
        kinds=list(row["kinds"]),
        updated_at=row["updated_at"],
    )


# The webhook queue's gauges (their samples filled at each scrape by `webhook_gauges`).
WEBHOOK_BACKLOG = GaugeReading(
    "pollinate_webhook_backlog",
    "webhook deliveries waiting, by the state of their endpoint",
    ("endpoint",),
)
WEBHOOK_OLDEST = GaugeReading(
    "pollinate_webhook_oldest_pending_seconds",
    "age of the oldest delivery an enabled endpoint still owes (0: none)",
)
WEBHOOK_ENDPOINTS = GaugeReading(
    "pollinate_webhook_endpoints",
    "webhook endpoints failing (enabled, last attempt failed) and disabled",
    ("state",),
)
WEBHOOK_GAUGES = (WEBHOOK_BACKLOG, WEBHOOK_OLDEST, WEBHOOK_ENDPOINTS)


async def webhook_gauges(conn: Connection) -> list[GaugeReading]:
    """The webhook queue for /metrics: deliveries waiting per endpoint state, the age of the
    oldest one an enabled endpoint still owes, endpoints failing and disabled. A backlog that
    only grows, or an old head, is a receiver (or the deliverer) an operator must look at."""
    row = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE e.enabled) AS enabled_pending,
                  count(*) FILTER (WHERE NOT e.enabled) AS disabled_pending,
                  COALESCE(EXTRACT(EPOCH FROM now() - min(d.created_at) FILTER (WHERE e.enabled)),
                           0) AS oldest_seconds
           FROM webhook_deliveries d JOIN webhook_endpoints e USING (endpoint_id)
           WHERE d.status = 'pending'"""
    )
    endpoints = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE enabled AND consecutive_failures > 0) AS failing,
                  count(*) FILTER (WHERE NOT enabled) AS disabled
           FROM webhook_endpoints"""
    )
    # Aggregates without GROUP BY always answer one row.
    assert row is not None
    assert endpoints is not None
    return [
        replace(
            WEBHOOK_BACKLOG,
            samples=(
                (("enabled",), row["enabled_pending"]),
                (("disabled",), row["disabled_pending"]),
            ),
        ),
        replace(WEBHOOK_OLDEST, samples=(((), float(row["oldest_seconds"])),)),
        replace(
            WEBHOOK_ENDPOINTS,
            samples=((("failing",), endpoints["failing"]), (("disabled",), endpoints["disabled"])),
        ),
    ]
