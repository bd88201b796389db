"""Use case: a recipient's live stream (Server-Sent Events). It reads the inbox after the
client's cursor, sends each message as an event whose id is its cursor (so a reconnecting
client's `Last-Event-ID` resumes exactly after the last message it got: nothing lost, nothing
twice), waits for the next filing, and sends a comment line as a heartbeat when idle."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from services.notifications import views
from services.notifications.domain import cursor
from services.notifications.domain.addressing import Recipient
from services.notifications.domain.cursor import ClaimedPosition
from services.notifications.schemas import NotificationOut
from services.notifications.wakeups import InboxWakeups
from shared.db import Pool

# Messages read per round trip while a stream catches up.
CATCH_UP_BATCH = 100
# How long a client waits before reconnecting after the stream drops (the SSE `retry` field).
RECONNECT_MILLISECONDS = 2000


@dataclass(frozen=True)
class StreamPacing:
    heartbeat_seconds: float
    poll_seconds: float


def event_text(message: NotificationOut) -> str:
    return f"id: {message.cursor}\nevent: notification\ndata: {message.model_dump_json()}\n\n"


async def start_position(
    pool: Pool, recipient: Recipient, resume: Sequence[ClaimedPosition]
) -> int:
    """Where a stream starts: after the client's cursor when it resumes (the first of
    `resume`: `Last-Event-ID` before `after`), otherwise after the inbox's latest message (a
    new stream carries what arrives from now on; a client reads what came before from the
    inbox and passes that page's `next_cursor`). Every cursor sent is checked as a page's
    `after` is: one ahead of the inbox's newest message was never handed out, and a stream
    started there would stay silent until the inbox caught up with it."""
    async with pool.acquire() as conn:
        newest = await views.latest_position(conn, recipient)
    positions = [claimed.verified(newest) for claimed in resume]
    return positions[0] if positions else newest


def no_revocation() -> str | None:
    return None


async def stream(
    pool: Pool,
    wakeups: InboxWakeups,
    recipient: Recipient,
    after: int,
    pacing: StreamPacing,
    revoked: Callable[[], str | None] = no_revocation,
) -> AsyncIterator[str]:
    """The stream's lines. `revoked` says why the caller's access ended since the stream opened
    (a partner suspended or expelled, the token expired): the stream then ends with a `revoked`
    event saying so, so an open connection does not outlive the access it was opened with."""
    yield f"retry: {RECONNECT_MILLISECONDS}\n\n"
    position = after
    last_sent = time.monotonic()
    while True:
        reason = revoked()
        if reason is not None:
            detail = json.dumps({"detail": reason})
            yield f"event: revoked\ndata: {detail}\n\n"
            return
        wakeup = wakeups.next_wakeup()
        async with pool.acquire() as conn:
            messages = await views.messages_after(conn, recipient, position, CATCH_UP_BATCH)
        for message in messages:
            yield event_text(message)
            position = cursor.decode(message.cursor)
        if messages:
            last_sent = time.monotonic()
            continue
        idle = time.monotonic() - last_sent
        if idle >= pacing.heartbeat_seconds:
            yield ": heartbeat\n\n"
            last_sent = time.monotonic()
            idle = 0.0
        wait = min(pacing.poll_seconds, pacing.heartbeat_seconds - idle)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), wait)
