"""The consumers' handlers: notifications in (either contract version), filed in their
recipients' inboxes."""

from __future__ import annotations

from services.notifications import inbox
from shared.consumer import HandlerContext
from shared.events import Envelope
from shared.events.notifications import PartnerNotification, PartnerNotificationV2


async def on_notifications(
    ctx: HandlerContext, events: list[Envelope[PartnerNotification]]
) -> None:
    """A run of notifications is filed together (one position lock, one insert)."""
    await inbox.receive(ctx.conn, [event.data for event in events])


async def on_notifications_v2(
    ctx: HandlerContext, events: list[Envelope[PartnerNotificationV2]]
) -> None:
    """The kinds v1 cannot name (deals' registration changes), filed the same way."""
    await inbox.receive(ctx.conn, [event.data for event in events])
