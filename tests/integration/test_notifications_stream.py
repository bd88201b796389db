"""Notifications' live stream (Server-Sent Events) from a real process, read by a real HTTP
client: a partner's messages as they arrive and no one else's, resumed from Last-Event-ID with
nothing lost and nothing twice, heartbeats when idle, a bound on open streams per partner."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import httpx
import pytest

from shared.events.notifications import NotificationKind
from shared.events.partners import PartnerChange, PartnerStatus
from shared.identity import Role
from shared.topics import PARTNER_LIFECYCLE
from tests.support.factories import partner_notification, partner_state_changed
from tests.support.infra import Infra
from tests.support.kafka import publish
from tests.support.notifications import next_notifications, sse_events, tell
from tests.support.polling import eventually
from tests.support.processes import auth, service_fixture
from tests.support.tokens import bearer, token

pytestmark = pytest.mark.integration

MAX_STREAMS = 2


notifications = service_fixture(
    "notifications",
    env={
        "NOTIFICATIONS_STREAM_HEARTBEAT_SECONDS": "0.3",
        "NOTIFICATIONS_STREAM_MAX_PER_RECIPIENT": str(MAX_STREAMS),
    },
)


def new_partner() -> str:
    return f"ptn_sse_{uuid.uuid4().hex[:8]}"


def stream_url(base: str, partner_id: str) -> str:
    return f"{base}/partners/{partner_id}/notifications/stream"


async def test_a_stream_carries_the_partners_messages_only(
    infra: Infra, notifications: str
) -> None:
    a, b = new_partner(), new_partner()
    mine = [partner_notification(partner_id=a, subject=f"for a {i}") for i in range(3)]
    to_rep = partner_notification(
        partner_id=a, recipient="rep@vendor.example", kind=NotificationKind.CO_SELL
    )
    last = partner_notification(partner_id=a, subject="last")
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=15)) as client,
        client.stream("GET", stream_url(notifications, a), headers=auth(a)) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
        await tell(infra, a, mine[0], to_rep, mine[1])
        await tell(infra, b, partner_notification(partner_id=b))
        await tell(infra, a, mine[2], last)
        got = await next_notifications(events, 4)
    assert [e.json["subject"] for e in got] == ["for a 0", "for a 1", "for a 2", "last"]
    assert all(e.json["partner_id"] == a for e in got)
    assert [e.id for e in got] == [e.json["cursor"] for e in got]


async def test_a_stream_resumes_after_last_event_id_without_loss_or_repeats(
    infra: Infra, notifications: str
) -> None:
    partner = new_partner()
    notes = [partner_notification(partner_id=partner, subject=f"m{i}") for i in range(6)]
    timeout = httpx.Timeout(10, read=15)
    async with httpx.AsyncClient(timeout=timeout) as client:
        async with client.stream(
            "GET", stream_url(notifications, partner), headers=auth(partner)
        ) as response:
            events = sse_events(response)
            await tell(infra, partner, *notes[:3])
            first = await next_notifications(events, 2)
        # The client dropped after m1; m2 was filed and more come while it is away.
        await tell(infra, partner, *notes[3:])
        resume = {"Last-Event-ID": first[-1].id or "", **auth(partner)}
        async with client.stream(
            "GET", stream_url(notifications, partner), headers=resume
        ) as response:
            rest = await next_notifications(sse_events(response), 4)
    subjects = [e.json["subject"] for e in first + rest]
    assert subjects == [f"m{i}" for i in range(6)]


async def test_an_idle_stream_sends_heartbeats(notifications: str) -> None:
    partner = new_partner()
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=10)) as client,
        client.stream("GET", stream_url(notifications, partner), headers=auth(partner)) as response,
    ):
        beats = 0
        async for event in sse_events(response):
            if event.comment == "heartbeat":
                beats += 1
                if beats == 2:
                    break
    assert beats == 2


async def test_open_streams_per_partner_are_bounded(notifications: str) -> None:
    partner, other = new_partner(), new_partner()
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=10)) as client:
        url = stream_url(notifications, partner)
        held = [client.stream("GET", url, headers=auth(partner)) for _ in range(MAX_STREAMS)]
        responses = [await stream.__aenter__() for stream in held]
        try:
            assert [r.status_code for r in responses] == [200] * MAX_STREAMS
            refused = await client.get(url, headers=auth(partner))
            assert refused.status_code == 429
            assert refused.json() == {
                "detail": f"at most {MAX_STREAMS} open notification streams per recipient; "
                "close one before opening another"
            }
            async with client.stream(
                "GET", stream_url(notifications, other), headers=auth(other)
            ) as theirs:
                assert theirs.status_code == 200  # another partner's streams are its own
        finally:
            await held[0].__aexit__(None, None, None)

        async def a_slot_is_free_again() -> bool:
            async with client.stream("GET", url, headers=auth(partner)) as again:
                return again.status_code == 200

        await eventually(a_slot_is_free_again, what="the closed stream's slot to be released")
        await held[1].__aexit__(None, None, None)


async def test_another_partner_cannot_open_a_partners_stream(notifications: str) -> None:
    a, b = new_partner(), new_partner()
    async with httpx.AsyncClient(timeout=10) as client:
        refused = await client.get(stream_url(notifications, a), headers=auth(b))
        assert (refused.status_code, refused.json()) == (404, {"detail": f"partner {a} not found"})
        bad = await client.get(
            stream_url(notifications, a), headers={"Last-Event-ID": "nope", **auth(a)}
        )
        assert (bad.status_code, bad.json()) == (
            422,
            {"detail": "Last-Event-ID is not a cursor this service handed out"},
        )


async def test_an_open_stream_ends_when_its_partner_is_suspended(
    infra: Infra, notifications: str
) -> None:
    partner = new_partner()
    suspended = partner_state_changed(
        partner_id=partner, status=PartnerStatus.SUSPENDED, change=PartnerChange.SUSPENDED
    )
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=15)) as client,
        client.stream("GET", stream_url(notifications, partner), headers=auth(partner)) as response,
    ):
        assert response.status_code == 200
        await publish(infra, PARTNER_LIFECYCLE, [suspended], subject=partner, source="onboarding")
        kinds = [event.event async for event in sse_events(response) if event.event != "comment"]
    # The server ended the stream itself, saying why.
    assert kinds == ["revoked"]
    async with httpx.AsyncClient(timeout=10) as client:
        again = await client.get(stream_url(notifications, partner), headers=auth(partner))
    assert (again.status_code, again.json()) == (
        403,
        {"detail": "partner access revoked: suspended"},
    )


async def test_an_open_stream_ends_when_its_token_expires(notifications: str) -> None:
    """Found in review: a stream opened with a token of a minute stayed open for good, though
    the token's next request would be refused. It ends when the token does, saying so."""
    partner = new_partner()
    short = token(f"{partner}/u", Role.PARTNER_USER, partner_id=partner, ttl=timedelta(seconds=2))
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=15)) as client,
        client.stream("GET", stream_url(notifications, partner), headers=bearer(short)) as response,
    ):
        assert response.status_code == 200
        async with asyncio.timeout(30):  # heartbeats keep a stream that never ends readable
            events = [event async for event in sse_events(response) if event.event != "comment"]
    assert [event.event for event in events] == ["revoked"]
    assert json.loads(events[0].data)["detail"].startswith("the token expired at ")
