"""Request and response bodies of the notifications HTTP API (the events are in shared/events).

Times are ISO 8601 with their offset. Cursors are opaque strings this service hands out."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from services.notifications.domain.cursor import MAX_CURSOR_LENGTH
from services.notifications.domain.email import ADDRESS_MAX, EmailMode, check_address
from services.notifications.domain.webhooks import KINDS, URL_MAX
from shared.http import Timestamp
from shared.inputs import as_ident, as_text

# A cursor a caller sends back. Any the service could not have handed out for the inbox it is
# used on is a 422 (domain/cursor.py), so the contract says so wherever one is taken.
Cursor = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_CURSOR_LENGTH,
        description="a cursor this service handed out for this inbox, sent back exactly as "
        "given; any other (not spelled as the service writes it, or ahead of the inbox's newest "
        "message) is a 422",
    ),
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NotificationOut(BaseModel):
    cursor: str = Field(description="where this message sits: pass it as `after` to read on")
    notification_id: uuid.UUID
    kind: str = Field(
        description="a notification kind (docs/asyncapi.json: notification.partner.v5 lists "
        "the known ones; a newer one may appear: show it by its subject and body), or payout, "
        "mdf_expired, webhook_disabled (this service's own)"
    )
    partner_id: str = Field(description="the partner whose event this is")
    subject: str
    body: str
    registration_id: str | None = None
    deal_key: str | None = None
    created_at: Timestamp
    ingested_at: Timestamp | None = None
    read: bool


class NotificationPage(BaseModel):
    items: list[NotificationOut]
    next_cursor: str | None = Field(
        description="`after` for the next page: the last item's cursor (the one given when the "
        "page is empty); null for an empty inbox read from the start"
    )
    unread: int = Field(description="unread messages in the whole inbox")


class NewestPage(BaseModel):
    """An inbox read newest first: the home page's latest messages, and older pages on demand."""

    items: list[NotificationOut] = Field(description="newest first")
    next_before: str | None = Field(
        description="`before` for the next, older page: the last (oldest) item's cursor; null "
        "when nothing older is left"
    )
    live_after: str | None = Field(
        description="where a live stream resumes (`after`, or `Last-Event-ID`): the newest "
        "message's cursor when read from the top (positions become visible in order, so "
        "nothing at or below it is still to commit); null for an empty inbox or an older page"
    )
    unread: int = Field(description="unread messages in the whole inbox")


class MarkReadIn(_Request):
    """Either the messages to mark, or `through`: everything up to and including a cursor."""

    notification_ids: list[uuid.UUID] | None = Field(default=None, min_length=1, max_length=500)
    through: Cursor | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> MarkReadIn:
        if (self.notification_ids is None) == (self.through is None):
            raise ValueError("give exactly one of notification_ids and through")
        return self


class MarkReadOut(BaseModel):
    marked: int = Field(description="messages that were unread and are now read")
    unread: int


# ---- webhooks


def _known_kind(value: str) -> str:
    if value not in KINDS:
        raise ValueError(f"unknown kind {value[:64]!r}; kinds: {', '.join(sorted(KINDS))}")
    return value


Kind = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_known_kind)]
Url = Annotated[str, Field(min_length=1, max_length=URL_MAX), AfterValidator(as_ident)]
Description = Annotated[str, Field(max_length=200), AfterValidator(as_text)]


class EndpointIn(_Request):
    """A webhook endpoint: where the partner's messages are POSTed (signed), and of which kinds
    (none listed: every kind)."""

    url: Url
    kinds: list[Kind] = Field(default_factory=list, max_length=len(KINDS))
    description: Description = ""


class EndpointPatch(_Request):
    """What to change; `enabled: true` re-enables a disabled endpoint (its queue resumes in
    order, at once), `false` pauses it (messages keep queueing). A new `url` starts its
    failure count afresh (failures at the old URL do not count toward disabling it) and its
    waiting delivery is tried there at once."""

    url: Url | None = None
    kinds: list[Kind] | None = Field(default=None, max_length=len(KINDS))
    description: Description | None = None
    enabled: bool | None = None

    @model_validator(mode="after")
    def _something(self) -> EndpointPatch:
        if self.model_fields_set == set() or all(
            getattr(self, name) is None for name in self.model_fields_set
        ):
            raise ValueError("give at least one of url, kinds, description, enabled")
        return self


class EndpointOut(BaseModel):
    endpoint_id: uuid.UUID
    partner_id: str
    url: str
    description: str
    kinds: list[str] = Field(description="kinds delivered; empty: every kind")
    enabled: bool
    disabled_reason: str | None = None
    consecutive_failures: int
    created_at: Timestamp
    updated_at: Timestamp


class EndpointCreatedOut(EndpointOut):
    secret: str = Field(description="the signing secret (`whsec_...`): shown now and on rotation")


class EndpointList(BaseModel):
    items: list[EndpointOut]


class SecretOut(BaseModel):
    endpoint_id: uuid.UUID
    secret: str = Field(description="the new signing secret (`whsec_...`)")
    previous_secret_valid_until: Timestamp = Field(
        description="until then each delivery carries a signature with the previous secret too"
    )


class AttemptOut(BaseModel):
    attempt: int
    attempted_at: Timestamp
    status_code: int | None = Field(description="the receiver's answer; null if none came")
    error: str | None = None
    duration_ms: int


class DeliveryOut(BaseModel):
    delivery_id: uuid.UUID
    webhook_id: uuid.UUID = Field(description="the `webhook-id` header: the notification id")
    event_type: str
    status: str = Field(description="pending | delivered")
    attempts: int
    next_attempt_at: Timestamp | None = Field(description="when a pending delivery goes next")
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: Timestamp
    delivered_at: Timestamp | None = None
    attempt_log: list[AttemptOut]


class DeliveryPage(BaseModel):
    items: list[DeliveryOut] = Field(description="newest first")
    next_after: uuid.UUID | None = Field(
        default=None,
        description="the `after` of the next, older page; null when this page is the last",
    )


class RedeliveryOut(BaseModel):
    delivery_id: uuid.UUID
    status: str = Field(description="pending: it goes again in its place in the endpoint's order")


# ---- e-mail


def _address(value: str) -> str:
    return check_address(value)


class EmailPreferenceIn(_Request):
    """Where the recipient's mail goes, which kinds (none listed: every kind) and how: each
    message at once, a digest per period, or none."""

    address: Annotated[str, Field(min_length=3, max_length=ADDRESS_MAX), AfterValidator(_address)]
    mode: EmailMode
    kinds: list[Kind] = Field(default_factory=list, max_length=len(KINDS))


class EmailPreferenceOut(BaseModel):
    address: str | None = Field(description="null: no preference set (no mail)")
    mode: EmailMode
    kinds: list[str]
    updated_at: Timestamp | None = None
