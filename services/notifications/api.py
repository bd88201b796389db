"""HTTP API of notifications: a recipient's inbox (pages after a cursor, unread count, mark
read). A partner's people reach only their own partner's inbox; a direct account owner's inbox
(a rep's) is read by channel managers, who work the co-sell with the reps."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.notifications import inbox, views
from services.notifications.domain import cursor
from services.notifications.domain.addressing import Recipient
from services.notifications.schemas import Cursor, MarkReadIn, MarkReadOut, NotificationPage
from shared.audit import record_action
from shared.http import AdminDep, CallerDep, PlatformDep, partner_scope
from shared.identity import Caller
from shared.service import Platform

router = APIRouter()

Limit = Annotated[int, Query(ge=1, le=200)]


def partner_inbox(who: Caller, partner_id: str) -> Recipient:
    partner_scope(who, partner_id, f"partner {partner_id}")
    return Recipient.partner(partner_id)


async def read_page(
    platform: Platform, recipient: Recipient, after: str | None, limit: int
) -> NotificationPage:
    async with platform.pool.acquire() as conn:
        return await views.page(conn, recipient, after, limit)


async def mark(
    platform: Platform, who: Caller, recipient: Recipient, body: MarkReadIn
) -> MarkReadOut:
    through = cursor.decode(body.through, "through") if body.through is not None else None
    async with platform.transaction() as conn:
        marked = await inbox.mark_read(
            conn, recipient, notification_ids=body.notification_ids, through=through
        )
        await record_action(conn, who, "notifications.read", f"{recipient.kind}:{recipient.id}")
        return MarkReadOut(marked=marked, unread=await views.unread(conn, recipient))


@router.get("/partners/{partner_id}/notifications", tags=["inbox"])
async def list_partner_notifications(
    partner_id: str,
    who: CallerDep,
    platform: PlatformDep,
    after: Annotated[Cursor | None, Query()] = None,
    limit: Limit = 50,
) -> NotificationPage:
    """The partner's messages after `after` (from the first without it), oldest first. A
    message that commits while a reader pages is never skipped: it sits after the reader's
    cursor."""
    return await read_page(platform, partner_inbox(who, partner_id), after, limit)


@router.post("/partners/{partner_id}/notifications/read", tags=["inbox"])
async def mark_partner_notifications_read(
    partner_id: str, body: MarkReadIn, who: CallerDep, platform: PlatformDep
) -> MarkReadOut:
    return await mark(platform, who, partner_inbox(who, partner_id), body)


@router.get("/owners/{owner}/notifications", tags=["inbox"])
async def list_owner_notifications(
    owner: str,
    who: AdminDep,
    platform: PlatformDep,
    after: Annotated[Cursor | None, Query()] = None,
    limit: Limit = 50,
) -> NotificationPage:
    """A direct account owner's messages (co-sell approvals, direct-sales conflicts on the
    owner's accounts): never in the partner's inbox."""
    return await read_page(platform, Recipient.owner(owner), after, limit)


@router.post("/owners/{owner}/notifications/read", tags=["inbox"])
async def mark_owner_notifications_read(
    owner: str, body: MarkReadIn, who: AdminDep, platform: PlatformDep
) -> MarkReadOut:
    return await mark(platform, who, Recipient.owner(owner), body)
