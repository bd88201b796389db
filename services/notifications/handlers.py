"""The consumers' handlers: notifications in, filed in their recipients' inboxes."""

from __future__ import annotations

from services.notifications import inbox
from shared.consumer import HandlerContext
from shared.events import Envelope
from shared.events.notifications import PartnerNotification


async def on_notifications(
    ctx: HandlerContext, events: list[Envelope[PartnerNotification]]
) -> None:
    """A run of notifications is filed together (one position lock, one insert)."""
    await inbox.receive(ctx.conn, [event.data for event in events])
