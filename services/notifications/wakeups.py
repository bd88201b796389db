"""Waking what waits on this instance when another transaction (of any instance) commits
work for it: the live streams when messages are filed, the webhook deliverer when deliveries
are queued. One LISTEN connection per channel and instance, a broadcast to every waiter. A lost
wake-up only delays the waiters until their next poll."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.notifications.repository import INBOX_CHANNEL
from shared.db import Pool

log = logging.getLogger(__name__)


class InboxWakeups:
    def __init__(self, channel: str = INBOX_CHANNEL, retry_seconds: float = 1.0) -> None:
        self._event = asyncio.Event()
        self.channel = channel
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
                    await conn.add_listener(self.channel, self.wake)
                    conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                    try:
                        await lost.wait()
                    finally:
                        with contextlib.suppress(Exception):
                            await conn.remove_listener(self.channel, self.wake)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("listener failed", extra={"error": repr(error)})
            log.warning("listener lost; reconnecting", extra={"channel": self.channel})
            # Streams still poll meanwhile; reconnecting at once would spin while Postgres
            # is down.
            await asyncio.sleep(self.retry_seconds)
