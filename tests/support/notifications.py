"""Reading a notifications stream as a partner app does: Server-Sent Events over a real HTTP
connection, parsed as the specification says (fields, comments, blank line ends an event)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class SseEvent:
    id: str | None
    event: str
    data: str
    comment: str | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.data)


async def sse_events(response: httpx.Response) -> AsyncIterator[SseEvent]:
    """Each event of an open `text/event-stream` response, and each comment line as an event
    of kind "comment" (heartbeats), in the order they arrive."""
    fields: dict[str, str] = {}
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data or fields:
                yield SseEvent(fields.get("id"), fields.get("event", "message"), "\n".join(data))
            fields, data = {}, []
        elif line.startswith(":"):
            yield SseEvent(None, "comment", "", comment=line[1:].strip())
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            else:
                fields[name] = value


async def next_notifications(events: AsyncIterator[SseEvent], count: int) -> list[SseEvent]:
    """The next `count` notification events (heartbeats and other comments skipped)."""
    found: list[SseEvent] = []
    async for event in events:
        if event.event == "notification":
            found.append(event)
            if len(found) == count:
                break
    return found
