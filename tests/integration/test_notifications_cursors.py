"""Notifications refuses a cursor it could not have handed out, on every route that takes one,
as a real process on real Kafka + Postgres: one not spelled as the service writes cursors, one
naming no message, or one ahead of the newest message of the inbox it is used on (a page after
it would be empty and echo it back, a stream started there silent, "read through it" would mark
messages no one has seen). Positions are global: another inbox's position is judged against
the reader's own inbox only, so the answer says nothing about anyone else's messages."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import pytest

from services.notifications.domain import cursor
from tests.support.factories import partner_notification
from tests.support.infra import Infra
from tests.support.notifications import inbox, next_notifications, sse_events, tell
from tests.support.processes import ADMIN, auth, service_fixture

pytestmark = pytest.mark.integration

NOT_HANDED_OUT = "is not a cursor this service handed out"
AHEAD = "it is ahead of the newest message in this inbox"
MISSPELLED = "it is not spelled as this service writes cursors"
NO_MESSAGE = "it names no message (the first message is at position 1)"


notifications = service_fixture("notifications")


def new_partner() -> str:
    return f"ptn_cursor_{uuid.uuid4().hex[:8]}"


def spelled(text: str) -> str:
    """`text` in a cursor's base64, as a client forging one would write it."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def position(of: str) -> int:
    return cursor.decode(of)


def forged(newest: str) -> list[tuple[str, str]]:
    """Cursors an inbox whose newest message has the cursor `newest` never handed out, each
    with the reason it is refused for. The probe's first: the largest position there is."""
    return [
        (spelled(f"n1:{2**63 - 1}"), AHEAD),
        # The next position: another inbox's message may sit there (positions are global).
        (cursor.encode(position(newest) + 1), AHEAD),
        (spelled("n1:0"), NO_MESSAGE),
        (spelled(f"n1:00{position(newest)}"), MISSPELLED),
    ]


async def filed(
    client: httpx.AsyncClient, base: str, partner_id: str, count: int
) -> list[dict[str, Any]]:
    """The partner's messages once it holds `count` of them."""
    items: list[dict[str, Any]] = (await inbox(client, base, partner_id, count))["items"]
    return items


async def told_inbox(
    infra: Infra, client: httpx.AsyncClient, base: str, count: int
) -> tuple[str, list[dict[str, Any]]]:
    """A new partner told `count` messages (subjects m0, m1, ...), and its messages once
    filed."""
    partner = new_partner()
    await tell(
        infra,
        partner,
        *(partner_notification(partner_id=partner, subject=f"m{i}") for i in range(count)),
    )
    return partner, await filed(client, base, partner, count)


def refusal(given_as: str, why: str) -> tuple[int, dict[str, str]]:
    return 422, {"detail": f"{given_as} {NOT_HANDED_OUT}: {why}"}


async def test_a_page_after_a_cursor_never_handed_out_is_422(
    infra: Infra, notifications: str
) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        partner, items = await told_inbox(infra, client, notifications, 2)
        url = f"{notifications}/partners/{partner}/notifications"
        newest = items[-1]["cursor"]
        for sent, why in forged(newest):
            answer = await client.get(url, params={"after": sent}, headers=auth(partner))
            assert (answer.status_code, answer.json()) == refusal("after", why), sent
            older = await client.get(
                f"{url}/newest", params={"before": sent}, headers=auth(partner)
            )
            assert (older.status_code, older.json()) == refusal("before", why), sent

        # The newest cursor handed out is a page's end: empty, and it is kept.
        kept = await client.get(url, params={"after": newest}, headers=auth(partner))
        assert (kept.status_code, kept.json()["items"], kept.json()["next_cursor"]) == (
            200,
            [],
            newest,
        )
        later = partner_notification(partner_id=partner, subject="later")
        await tell(infra, partner, later)
        await filed(client, notifications, partner, 3)
        after = await client.get(url, params={"after": newest}, headers=auth(partner))
        assert [m["subject"] for m in after.json()["items"]] == ["later"]

        # The same on a direct account owner's inbox: one with no messages handed out none.
        owner = f"rep-{uuid.uuid4().hex[:6]}@vendor.example"
        empty = await client.get(
            f"{notifications}/owners/{owner}/notifications", params={"after": newest}, headers=ADMIN
        )
        assert (empty.status_code, empty.json()) == refusal("after", AHEAD)


async def test_another_inboxs_position_is_judged_by_the_readers_inbox_alone(
    infra: Infra, notifications: str
) -> None:
    """A's first message, then B's, then A's second: B's position lies between A's two. Before
    A's second it is ahead of A's inbox, refused exactly as a position no one holds; after it,
    it is a bound like any other and shows A's own message after it, nothing of B's."""
    a, b = new_partner(), new_partner()
    url = f"{notifications}/partners/{a}/notifications"
    async with httpx.AsyncClient(timeout=10) as client:
        await tell(infra, a, partner_notification(partner_id=a, subject="a first"))
        [first] = await filed(client, notifications, a, 1)
        await tell(infra, b, partner_notification(partner_id=b, subject="b's"))
        [theirs] = await filed(client, notifications, b, 1)
        assert position(theirs["cursor"]) > position(first["cursor"])

        refused = await client.get(url, params={"after": theirs["cursor"]}, headers=auth(a))
        unfiled = await client.get(
            url, params={"after": spelled(f"n1:{2**63 - 1}")}, headers=auth(a)
        )
        assert (refused.status_code, refused.json()) == refusal("after", AHEAD)
        assert unfiled.json() == refused.json()

        await tell(infra, a, partner_notification(partner_id=a, subject="a second"))
        await filed(client, notifications, a, 2)
        bound = await client.get(url, params={"after": theirs["cursor"]}, headers=auth(a))
        assert bound.status_code == 200, bound.text
        assert [(m["partner_id"], m["subject"]) for m in bound.json()["items"]] == [(a, "a second")]
        # Partners stay apart: B cannot use its cursor on A's inbox at all.
        stranger = await client.get(url, params={"after": theirs["cursor"]}, headers=auth(b))
        assert stranger.status_code == 404


async def test_marking_read_through_a_cursor_never_handed_out_is_422_and_marks_nothing(
    infra: Infra, notifications: str
) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        partner, items = await told_inbox(infra, client, notifications, 3)
        base = f"{notifications}/partners/{partner}/notifications"
        newest = items[-1]["cursor"]
        for sent, why in forged(newest):
            answer = await client.post(
                f"{base}/read", json={"through": sent}, headers=auth(partner)
            )
            assert (answer.status_code, answer.json()) == refusal("through", why), sent
        page = (await client.get(base, headers=auth(partner))).json()
        assert (page["unread"], [m["read"] for m in page["items"]]) == (3, [False] * 3)

        # Through the newest cursor: what was filed, and nothing filed afterwards.
        marked = await client.post(f"{base}/read", json={"through": newest}, headers=auth(partner))
        assert marked.json() == {"marked": 3, "unread": 0}
        await tell(infra, partner, partner_notification(partner_id=partner))
        await filed(client, notifications, partner, 4)
        assert (await client.get(base, headers=auth(partner))).json()["unread"] == 1


async def test_a_stream_started_at_a_cursor_never_handed_out_is_422(
    infra: Infra, notifications: str
) -> None:
    """`after` and `Last-Event-ID` alike, and both when a reconnecting browser sends both."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=15)) as client:
        partner, [first, second] = await told_inbox(infra, client, notifications, 2)
        url = f"{notifications}/partners/{partner}/notifications/stream"
        for sent, why in forged(second["cursor"]):
            tries = [
                ({"after": sent}, {}, "after"),
                ({}, {"Last-Event-ID": sent}, "Last-Event-ID"),
                ({"after": sent}, {"Last-Event-ID": first["cursor"]}, "after"),
                ({"after": first["cursor"]}, {"Last-Event-ID": sent}, "Last-Event-ID"),
            ]
            for params, headers, given_as in tries:
                async with client.stream(
                    "GET", url, params=params, headers={**headers, **auth(partner)}
                ) as answer:
                    # Checked before reading: an opened stream's body would never end.
                    assert answer.status_code == 422, (params, headers)
                    await answer.aread()
                    assert (422, answer.json()) == refusal(given_as, why), (params, headers)

        # Cursors handed out start a stream after them; Last-Event-ID goes before `after`.
        resume = {"Last-Event-ID": first["cursor"], **auth(partner)}
        async with client.stream(
            "GET", url, params={"after": second["cursor"]}, headers=resume
        ) as answer:
            assert answer.status_code == 200
            [event] = await next_notifications(sse_events(answer), 1)
        assert (event.id, event.json["subject"]) == (second["cursor"], "m1")
