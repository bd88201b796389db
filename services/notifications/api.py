"""HTTP API of notifications: a recipient's inbox (pages after a cursor, unread count, mark
read) and live stream; a partner's webhook endpoints and their delivery log. A partner's people
reach only their own partner's; a direct account owner's inbox (a rep's) is read by channel
managers, who work the co-sell with the reps."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Query
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from services.notifications import email_repository, inbox, streaming, views, webhooks
from services.notifications.domain import cursor
from services.notifications.domain.addressing import Recipient
from services.notifications.domain.email import EmailPreference
from services.notifications.domain.streams import StreamLimit
from services.notifications.schemas import (
    Cursor,
    DeliveryPage,
    EmailPreferenceIn,
    EmailPreferenceOut,
    EndpointCreatedOut,
    EndpointIn,
    EndpointList,
    EndpointOut,
    EndpointPatch,
    MarkReadIn,
    MarkReadOut,
    NewestPage,
    NotificationPage,
    RedeliveryOut,
    SecretOut,
)
from services.notifications.settings import NotificationsSettings
from services.notifications.wakeups import InboxWakeups
from shared.audit import record_action
from shared.clock import now
from shared.http import (
    AdminDep,
    CallerDep,
    PlatformDep,
    Provided,
    api_router,
    own_partner,
    require_role,
)
from shared.identity import Caller, Role
from shared.service import Platform

router = api_router()

SettingsDep = Annotated[NotificationsSettings, Provided(NotificationsSettings)]
LimitDep = Annotated[StreamLimit, Provided(StreamLimit)]
WakeupsDep = Annotated[InboxWakeups, Provided(InboxWakeups)]
LastEventId = Annotated[Cursor | None, Header(alias="Last-Event-ID")]
STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
        "description": "Server-Sent Events: `notification` events (id: the message's cursor, "
        "data: a NotificationOut as JSON) and `: heartbeat` comment lines when idle",
    },
    429: {"description": "the recipient holds the most open streams allowed"},
}

Limit = Annotated[int, Query(ge=1, le=200)]


def partner_inbox(who: Caller, partner_id: str) -> Recipient:
    own_partner(who, partner_id)
    return Recipient.partner(partner_id)


def claimed(text: str | None, given_as: str) -> cursor.ClaimedPosition | None:
    """A cursor a caller sent, read once here; checked against the inbox where it is used."""
    return cursor.claim(text, given_as) if text is not None else None


async def read_page(
    platform: Platform, recipient: Recipient, after: str | None, limit: int
) -> NotificationPage:
    start = claimed(after, "after")
    async with platform.pool.acquire() as conn:
        return await views.page(conn, recipient, start, limit)


async def read_newest(
    platform: Platform, recipient: Recipient, before: str | None, limit: int
) -> NewestPage:
    end = claimed(before, "before")
    async with platform.pool.acquire() as conn:
        return await views.newest_page(conn, recipient, end, limit)


async def mark(
    platform: Platform, who: Caller, recipient: Recipient, body: MarkReadIn
) -> MarkReadOut:
    through = claimed(body.through, "through")
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


@router.get("/partners/{partner_id}/notifications/newest", tags=["inbox"])
async def list_partner_notifications_newest(
    partner_id: str,
    who: CallerDep,
    platform: PlatformDep,
    before: Annotated[Cursor | None, Query()] = None,
    limit: Limit = 50,
) -> NewestPage:
    """The partner's messages newest first: the latest `limit` (from the top without `before`,
    with `live_after` for the live stream), then older pages before `next_before`."""
    return await read_newest(platform, partner_inbox(who, partner_id), before, limit)


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


@router.get("/owners/{owner}/notifications/newest", tags=["inbox"])
async def list_owner_notifications_newest(
    owner: str,
    who: AdminDep,
    platform: PlatformDep,
    before: Annotated[Cursor | None, Query()] = None,
    limit: Limit = 50,
) -> NewestPage:
    """A direct account owner's messages newest first (as the partner's)."""
    return await read_newest(platform, Recipient.owner(owner), before, limit)


@router.post("/owners/{owner}/notifications/read", tags=["inbox"])
async def mark_owner_notifications_read(
    owner: str, body: MarkReadIn, who: AdminDep, platform: PlatformDep
) -> MarkReadOut:
    return await mark(platform, who, Recipient.owner(owner), body)


@dataclass(frozen=True)
class StreamOpening:
    """What every stream route needs besides its caller and recipient: the service's pieces
    and where to resume (`Last-Event-ID`, else `after`, else from now on)."""

    platform: Platform
    settings: NotificationsSettings
    limit: StreamLimit
    wakeups: InboxWakeups
    last_event_id: str | None
    after: str | None

    def resume(self) -> list[cursor.ClaimedPosition]:
        """The cursors the client sent, the one it resumes from first. Both are checked alike:
        a browser reconnecting sends `Last-Event-ID` beside the `after` it first opened with,
        and both were handed out for this inbox (read only once the recipient is known, so a
        stranger's cursor is never judged against an inbox it may not see)."""
        sent = (("Last-Event-ID", self.last_event_id), ("after", self.after))
        return [cursor.claim(text, name) for name, text in sent if text is not None]


async def stream_opening(
    platform: PlatformDep,
    settings: SettingsDep,
    limit: LimitDep,
    wakeups: WakeupsDep,
    last_event_id: LastEventId = None,
    after: Annotated[Cursor | None, Query()] = None,
) -> StreamOpening:
    return StreamOpening(platform, settings, limit, wakeups, last_event_id, after)


StreamOpeningDep = Annotated[StreamOpening, Depends(stream_opening)]


async def open_stream(
    opening: StreamOpening, who: Caller, recipient: Recipient
) -> StreamingResponse:
    """Take one of the recipient's stream slots (429 when none is free) for as long as the
    response lasts: released when it ends, however it ends. The stream ends when its token
    expires, and a partner's people's when their partner loses access (`access_ended`)."""
    platform, settings, limit = opening.platform, opening.settings, opening.limit
    key = f"{recipient.kind}:{recipient.id}"
    start = await streaming.start_position(platform.pool, recipient, opening.resume())
    limit.acquire(key)
    try:
        events = streaming.stream(
            platform.pool,
            opening.wakeups,
            recipient,
            start,
            streaming.StreamPacing(settings.stream_heartbeat_seconds, settings.stream_poll_seconds),
            access_ended(who, platform),
        )
        return SlotResponse(
            events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
            background=None,
            release=BackgroundTask(limit.release, key),
        )
    except BaseException:
        limit.release(key)  # the response was never made: nothing else gives the slot back
        raise


def access_ended(who: Caller, platform: Platform) -> Callable[[], str | None]:
    """Why the caller's access has ended since its stream opened, or None: its token expired
    (found in review: a stream opened with a token of a minute stayed open for good), or its
    partner lost access (as its next request would be refused)."""
    partner = who.partner_id

    def why() -> str | None:
        if who.expires_at is not None and now() >= who.expires_at:
            return f"the token expired at {who.expires_at.isoformat()}"
        return None if partner is None else platform.partner_access.refused(partner, who.issued_at)

    return why


class SlotResponse(StreamingResponse):
    """A streaming response that gives its stream slot back when it ends (a finished stream,
    a client gone, a server shutting down), even if its body was never started."""

    def __init__(self, *args: Any, release: BackgroundTask, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.release()


@router.get(
    "/partners/{partner_id}/notifications/stream",
    tags=["stream"],
    response_class=StreamingResponse,
    responses=STREAM_RESPONSES,
)
async def stream_partner_notifications(
    partner_id: str, who: CallerDep, opening: StreamOpeningDep
) -> StreamingResponse:
    """The partner's messages as they arrive. Resumes after `Last-Event-ID` (what a browser's
    EventSource sends on reconnecting) or `after` (a page's `next_cursor`); without either,
    from now on."""
    return await open_stream(opening, who, partner_inbox(who, partner_id))


@router.get(
    "/owners/{owner}/notifications/stream",
    tags=["stream"],
    response_class=StreamingResponse,
    responses=STREAM_RESPONSES,
)
async def stream_owner_notifications(
    owner: str, who: AdminDep, opening: StreamOpeningDep
) -> StreamingResponse:
    """A direct account owner's messages as they arrive (as the partner's stream)."""
    return await open_stream(opening, who, Recipient.owner(owner))


# ---- webhooks

# A partner's people read the partner's endpoints and delivery log; its admins (and channel
# managers) change them.
WebhookAdminDep = Annotated[Caller, require_role(Role.PARTNER_ADMIN, Role.CHANNEL_MANAGER)]


def development_mode(platform: Platform) -> bool:
    return platform.settings.development_mode


@router.post("/partners/{partner_id}/webhooks", tags=["webhooks"], status_code=201)
async def register_webhook(
    partner_id: str, body: EndpointIn, who: WebhookAdminDep, platform: PlatformDep
) -> EndpointCreatedOut:
    """Register an endpoint. Outside development mode only https URLs, and never a private,
    loopback or reserved address (checked again at every delivery). The answer holds the
    signing secret."""
    own_partner(who, partner_id)
    async with platform.transaction() as conn:
        row, secret = await webhooks.register(
            conn, who, partner_id, body, development_mode=development_mode(platform)
        )
    return EndpointCreatedOut(**views.endpoint_out(row).model_dump(), secret=secret)


@router.get("/partners/{partner_id}/webhooks", tags=["webhooks"])
async def list_webhooks(partner_id: str, who: CallerDep, platform: PlatformDep) -> EndpointList:
    own_partner(who, partner_id)
    async with platform.pool.acquire() as conn:
        return await views.endpoints(conn, partner_id)


@router.get("/partners/{partner_id}/webhooks/{endpoint_id}", tags=["webhooks"])
async def get_webhook(
    partner_id: str, endpoint_id: uuid.UUID, who: CallerDep, platform: PlatformDep
) -> EndpointOut:
    own_partner(who, partner_id)
    async with platform.pool.acquire() as conn:
        return await views.endpoint(conn, partner_id, endpoint_id)


@router.patch("/partners/{partner_id}/webhooks/{endpoint_id}", tags=["webhooks"])
async def change_webhook(
    partner_id: str,
    endpoint_id: uuid.UUID,
    body: EndpointPatch,
    who: WebhookAdminDep,
    platform: PlatformDep,
) -> EndpointOut:
    own_partner(who, partner_id)
    async with platform.transaction() as conn:
        row = await webhooks.change(
            conn, who, partner_id, endpoint_id, body, development_mode=development_mode(platform)
        )
    return views.endpoint_out(row)


@router.delete("/partners/{partner_id}/webhooks/{endpoint_id}", tags=["webhooks"], status_code=204)
async def delete_webhook(
    partner_id: str, endpoint_id: uuid.UUID, who: WebhookAdminDep, platform: PlatformDep
) -> None:
    """The endpoint goes, with its queue and delivery log."""
    own_partner(who, partner_id)
    async with platform.transaction() as conn:
        await webhooks.remove(conn, who, partner_id, endpoint_id)


@router.post("/partners/{partner_id}/webhooks/{endpoint_id}/rotate-secret", tags=["webhooks"])
async def rotate_webhook_secret(
    partner_id: str, endpoint_id: uuid.UUID, who: WebhookAdminDep, platform: PlatformDep
) -> SecretOut:
    """A new secret. For 24 hours every delivery is signed with both (the specification's
    space-separated signatures), so the receiver can switch without losing one. Rotating again
    meanwhile keeps every secret still in its 24 hours signing, up to three besides the new
    one; 409 past that, saying when a rotation is possible again."""
    own_partner(who, partner_id)
    async with platform.transaction() as conn:
        secret, until = await webhooks.rotate(conn, who, partner_id, endpoint_id)
    return SecretOut(endpoint_id=endpoint_id, secret=secret, previous_secret_valid_until=until)


@router.get("/partners/{partner_id}/webhooks/{endpoint_id}/deliveries", tags=["webhooks"])
async def list_webhook_deliveries(
    partner_id: str,
    endpoint_id: uuid.UUID,
    who: CallerDep,
    platform: PlatformDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    after: Annotated[uuid.UUID | None, Query(description="the page before's `next_after`")] = None,
) -> DeliveryPage:
    """The delivery log, newest first, a page at a time: status, attempts with their answers,
    what goes next."""
    own_partner(who, partner_id)
    async with platform.pool.acquire() as conn:
        return await views.deliveries(conn, partner_id, endpoint_id, limit, after)


@router.post(
    "/partners/{partner_id}/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver",
    tags=["webhooks"],
    status_code=202,
)
async def redeliver_webhook(
    partner_id: str,
    endpoint_id: uuid.UUID,
    delivery_id: uuid.UUID,
    who: WebhookAdminDep,
    platform: PlatformDep,
) -> RedeliveryOut:
    """Send a delivery again, with the same webhook-id (a receiver that has it drops it)."""
    own_partner(who, partner_id)
    async with platform.transaction() as conn:
        await webhooks.redeliver(conn, who, partner_id, endpoint_id, delivery_id)
    return RedeliveryOut(delivery_id=delivery_id, status="pending")


# ---- e-mail


async def save_preference(
    platform: Platform, who: Caller, recipient: Recipient, body: EmailPreferenceIn
) -> EmailPreferenceOut:
    preference = EmailPreference(body.address, body.mode, frozenset(body.kinds))
    async with platform.transaction() as conn:
        row = await email_repository.set_preference(conn, recipient, preference)
        await record_action(conn, who, "email.preference", f"{recipient.kind}:{recipient.id}")
    return views.email_preference_out(row)


@router.get("/partners/{partner_id}/email-preference", tags=["e-mail"])
async def get_partner_email_preference(
    partner_id: str, who: CallerDep, platform: PlatformDep
) -> EmailPreferenceOut:
    recipient = partner_inbox(who, partner_id)
    async with platform.pool.acquire() as conn:
        return await views.email_preference(conn, recipient)


@router.put("/partners/{partner_id}/email-preference", tags=["e-mail"])
async def set_partner_email_preference(
    partner_id: str, body: EmailPreferenceIn, who: WebhookAdminDep, platform: PlatformDep
) -> EmailPreferenceOut:
    """Where the partner's mail goes and how (its admins decide, as for webhooks)."""
    return await save_preference(platform, who, partner_inbox(who, partner_id), body)


@router.get("/owners/{owner}/email-preference", tags=["e-mail"])
async def get_owner_email_preference(
    owner: str, who: AdminDep, platform: PlatformDep
) -> EmailPreferenceOut:
    async with platform.pool.acquire() as conn:
        return await views.email_preference(conn, Recipient.owner(owner))


@router.put("/owners/{owner}/email-preference", tags=["e-mail"])
async def set_owner_email_preference(
    owner: str, body: EmailPreferenceIn, who: AdminDep, platform: PlatformDep
) -> EmailPreferenceOut:
    """Where a direct account owner's mail goes: how a rep hears of co-sell approvals and
    direct-sales conflicts on its accounts without a platform token."""
    return await save_preference(platform, who, Recipient.owner(owner), body)
