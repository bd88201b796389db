"""Waking the live streams of this instance when messages are filed (by any instance): one
LISTEN connection per instance, a broadcast to every waiting stream. A lost wake-up only
delays a stream until its next poll (`NOTIFICATIONS_STREAM_POLL_SECONDS`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.notifications.repository import INBOX_CHANNEL
from shared.db import Pool

log = logging.getLogger(__name__)


class InboxWakeups:
    def __init__(self, retry_seconds: float = 1.0) -> None:
        self._event = asyncio.Event()
        self.retry_seconds = retry_seconds

    def next_wakeup(self) -> asyncio.Event:
        """Set at the next filing after this call: take it before reading, wait after."""
        return self._event

    def wake(self, *_: object) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def listen(self, pool: Pool) -> None:
        """Hold a LISTEN connection for the service's life, reconnecting when it breaks."""
        while True:
            lost = asyncio.Event()
            try:
                async with pool.acquire() as conn:
                    await conn.add_listener(INBOX_CHANNEL, self.wake)
                    conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                    try:
                        await lost.wait()
                    finally:
                        with contextlib.suppress(Exception):
                            await conn.remove_listener(INBOX_CHANNEL, self.wake)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("inbox listener failed", extra={"error": repr(error)})
            log.warning("inbox listener lost; reconnecting")
            # Streams still poll meanwhile; reconnecting at once would spin while Postgres
            # is down.
            await asyncio.sleep(self.retry_seconds)
