"""Request and response bodies of the notifications HTTP API (the events are in shared/events).

Times are ISO 8601 with their offset. Cursors are opaque strings this service hands out."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema, model_validator

from services.notifications.domain.cursor import MAX_CURSOR_LENGTH

Timestamp = Annotated[
    datetime,
    PlainSerializer(lambda moment: moment.isoformat(), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
Cursor = Annotated[str, Field(min_length=1, max_length=MAX_CURSOR_LENGTH)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NotificationOut(BaseModel):
    cursor: str = Field(description="where this message sits: pass it as `after` to read on")
    notification_id: uuid.UUID
    kind: str = Field(description="a NotificationKind value (docs/asyncapi.json)")
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
