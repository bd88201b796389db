"""The consumers' handlers: notifications in (either contract version), filed in their
recipients' inboxes; the ledger entries partners are not otherwise told of, filed as messages."""

from __future__ import annotations

from typing import TypeVar

from services.notifications import inbox
from services.notifications.domain import ledger_messages
from shared.consumer import HandlerContext
from shared.events import Envelope
from shared.events.incentives import MdfExpired, PayoutRecorded
from shared.events.notifications import AnyPartnerNotification

# Any version of the contract: they share their fields, each names more kinds (v5: any kind).
Notification = TypeVar("Notification", bound=AnyPartnerNotification)


async def on_notifications(ctx: HandlerContext, events: list[Envelope[Notification]]) -> None:
    """A run of notifications of one version is filed together (one position lock, one insert)."""
    await inbox.receive(ctx.conn, [event.data for event in events])


async def on_payouts(ctx: HandlerContext, events: list[Envelope[PayoutRecorded]]) -> None:
    await inbox.file(ctx.conn, [ledger_messages.payout(event.data) for event in events])


async def on_mdf_expiry(ctx: HandlerContext, events: list[Envelope[MdfExpired]]) -> None:
    await inbox.file(ctx.conn, [ledger_messages.mdf_expired(event.data) for event in events])
