"""Notifications' webhooks from a real process to a real local receiver that verifies every
Standard Webhooks signature with the specification's library: a partner's messages arrive in
order and no one else's; a receiver down for a while gets everything once, in order, when it
is back; an endpoint that spends its failure budget is disabled and its partner told, and
resumes in order when enabled; one answering 410 Gone is disabled at once, its partner told
alike; a slow endpoint does not hold another partner's; redirects are not followed; secrets
rotate without a lost delivery; the log and redelivery."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.notifications.delivering import DRAIN_BYTES, RUN, post, webhook_session
from services.notifications.settings import NotificationsSettings
from shared.events.notifications import NotificationKind, PartnerNotification
from shared.events.partners import PartnerChange, PartnerStatus
from shared.topics import PARTNER_LIFECYCLE
from tests.support.factories import partner_notification, partner_state_changed
from tests.support.infra import Infra
from tests.support.kafka import publish
from tests.support.notifications import WebhookReceiver, tell
from tests.support.polling import eventually
from tests.support.processes import ADMIN, auth, service_fixture
from tests.support.tokens import partner_admin

pytestmark = pytest.mark.integration

BUDGET = 3


notifications = service_fixture(
    "notifications",
    env={
        "NOTIFICATIONS_WEBHOOK_RETRY_INITIAL_SECONDS": "0.2",
        "NOTIFICATIONS_WEBHOOK_RETRY_MAX_SECONDS": "0.5",
        "NOTIFICATIONS_WEBHOOK_FAILURE_BUDGET": str(BUDGET),
        "NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS": "3",
        "NOTIFICATIONS_WEBHOOK_LEASE_SECONDS": "5",
        "NOTIFICATIONS_WEBHOOK_POLL_SECONDS": "0.2",
    },
)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


def new_partner() -> str:
    return f"ptn_hook_{uuid.uuid4().hex[:8]}"


@dataclass
class Endpoint:
    """A registered webhook endpoint, read through the service as its partner."""

    client: httpx.AsyncClient
    partner_id: str
    url: str  # the endpoint's resource on the service
    registered: dict[str, Any]  # the registration's answer (the only one with the secret)

    async def log(self, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Its delivery log's newest 100, read as its partner (or with `headers`)."""
        answer = await self.client.get(
            f"{self.url}/deliveries",
            params={"limit": 100},
            headers=headers or auth(self.partner_id),
        )
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        return items

    async def log_when(
        self,
        ready: Callable[[list[dict[str, Any]]], bool],
        *,
        what: str,
        timeout: float = 30.0,
        headers: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Its delivery log once `ready` holds of it."""

        async def read() -> list[dict[str, Any]] | None:
            items = await self.log(headers)
            return items if ready(items) else None

        items: list[dict[str, Any]] = await eventually(read, timeout, what=what)
        return items

    async def settled_log(self, count: int) -> list[dict[str, Any]]:
        """Its delivery log once its `count` deliveries are settled: a receiver has a
        delivery before the deliverer records it (successes are recorded a run at a time)."""

        def settled(items: list[dict[str, Any]]) -> bool:
            return len(items) == count and all(d["status"] != "pending" for d in items)

        return await self.log_when(settled, what=f"{count} settled deliveries")

    async def rotate_secret(self) -> httpx.Response:
        return await self.client.post(
            f"{self.url}/rotate-secret", headers=partner_admin(self.partner_id)
        )

    async def once_disabled(self) -> dict[str, Any]:
        """The endpoint once the deliverer has disabled it."""

        async def disabled() -> dict[str, Any] | None:
            answer = await self.client.get(self.url, headers=auth(self.partner_id))
            found: dict[str, Any] = answer.json()
            return found if not found["enabled"] else None

        endpoint: dict[str, Any] = await eventually(disabled, what="the endpoint to be disabled")
        return endpoint


async def register(
    client: httpx.AsyncClient,
    base: str,
    receiver: WebhookReceiver,
    partner_id: str,
    path: str,
    **fields: Any,
) -> Endpoint:
    answer = await client.post(
        f"{base}/partners/{partner_id}/webhooks",
        json={"url": receiver.url(path), **fields},
        headers=partner_admin(partner_id),
    )
    assert answer.status_code == 201, answer.text
    registered: dict[str, Any] = answer.json()
    receiver.secrets[path] = registered["secret"]
    url = f"{base}/partners/{partner_id}/webhooks/{registered['endpoint_id']}"
    return Endpoint(client, partner_id, url, registered)


async def received(receiver: WebhookReceiver, path: str, count: int) -> list[str]:
    """The subjects `path` received once it received `count` deliveries."""

    async def enough() -> list[str] | None:
        got = receiver.at(path)
        return [r.body["data"]["subject"] for r in got] if len(got) >= count else None

    subjects: list[str] = await eventually(enough, what=f"{count} deliveries at {path}")
    return subjects


async def told_of_disabling(
    client: httpx.AsyncClient, base: str, partner_id: str
) -> list[dict[str, Any]]:
    """The partner's webhook_disabled messages in its inbox, once there is one."""

    async def told() -> list[dict[str, Any]] | None:
        page = await client.get(
            f"{base}/partners/{partner_id}/notifications", headers=auth(partner_id)
        )
        kinds = [m for m in page.json()["items"] if m["kind"] == "webhook_disabled"]
        return kinds or None

    messages: list[dict[str, Any]] = await eventually(told, what="the partner to be told")
    return messages


def notes_for(partner_id: str, prefix: str, count: int) -> list[PartnerNotification]:
    return [
        partner_notification(partner_id=partner_id, subject=f"{prefix}{i}") for i in range(count)
    ]


async def test_a_partners_messages_reach_its_endpoint_signed_in_order_and_no_one_elses(
    infra: Infra, notifications: str, receiver: WebhookReceiver
) -> None:
    a, b = new_partner(), new_partner()
    async with httpx.AsyncClient(timeout=10) as client:
        hook = await register(client, notifications, receiver, a, "/a")
        await register(client, notifications, receiver, b, "/b")
        only_credits = await register(
            client, notifications, receiver, a, "/a-credits", kinds=["credit_issued"]
        )
        assert only_credits.registered["kinds"] == ["credit_issued"]
        to_rep = partner_notification(
            partner_id=a, recipient="rep@vendor.example", kind=NotificationKind.CO_SELL
        )
        credit = partner_notification(
            partner_id=a, kind=NotificationKind.CREDIT_ISSUED, subject="credit"
        )
        mine = notes_for(a, "a", 3)
        await tell(infra, a, mine[0], to_rep, mine[1], credit, mine[2])
        await tell(infra, b, *notes_for(b, "b", 1))
        assert await received(receiver, "/a", 4) == ["a0", "a1", "credit", "a2"]
        assert await received(receiver, "/b", 1) == ["b0"]
        assert await received(receiver, "/a-credits", 1) == ["credit"]
        assert receiver.refused == []
        first = receiver.at("/a")[0]
        assert first.webhook_id == mine[0].notification_id
        assert first.body["type"] == "notification.registration_approved"
        assert first.body["data"]["partner_id"] == a

        items = await hook.settled_log(4)
        assert [d["status"] for d in items] == ["delivered"] * 4
        assert items[0]["attempt_log"][0]["status_code"] == 200
        other = await client.get(f"{hook.url}/deliveries", headers=auth(b))
        assert other.status_code == 404
        listed = await client.get(f"{notifications}/partners/{a}/webhooks", headers=auth(a))
        assert {e["url"] for e in listed.json()["items"]} == {
            receiver.url("/a"),
            receiver.url("/a-credits"),
        }
        assert all("secret" not in e for e in listed.json()["items"])
    await received(receiver, "/a", 4)
    assert len(receiver.at("/a")) == 4  # the rep's message and B's never came


async def test_a_receiver_down_for_a_while_gets_everything_once_in_order(
    infra: Infra, notifications: str, receiver: WebhookReceiver
) -> None:
    partner = new_partner()
    async with httpx.AsyncClient(timeout=10) as client:
        hook = await register(client, notifications, receiver, partner, "/down")
        receiver.stop()
        await tell(infra, partner, *notes_for(partner, "m", 5))
        await hook.log_when(
            lambda items: len(items) == 5 and any(d["attempts"] >= 2 for d in items),
            what="deliveries to fail while the receiver is down",
            timeout=60,
        )
        receiver.start()
        assert await received(receiver, "/down", 5) == [f"m{i}" for i in range(5)]
        ids = [r.webhook_id for r in receiver.at("/down")]
        assert len(ids) == len(set(ids)) == 5
        items = await hook.settled_log(5)
        head = items[-1]
        assert head["status"] == "delivered"
        assert head["attempt_log"][0]["status_code"] is None
        assert "Cannot connect to host" in head["attempt_log"][0]["error"]


async def test_an_endpoint_past_its_failure_budget_is_disabled_told_and_resumes_in_order(
    infra: Infra, notifications: str, receiver: WebhookReceiver
) -> None:
    partner = new_partner()
    async with httpx.AsyncClient(timeout=10) as client:
        hook = await register(client, notifications, receiver, partner, "/broken")
        receiver.statuses["/broken"] = 500
        await tell(infra, partner, *notes_for(partner, "n", 2))
        endpoint = await hook.once_disabled()
        # An operator sees it in /metrics: a disabled endpoint, its two deliveries waiting.
        scraped = await client.get(f"{notifications}/metrics")
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(scraped.text)
            for sample in family.samples
        }
        assert samples[("pollinate_webhook_backlog", (("endpoint", "disabled"),))] >= 2
        assert samples[("pollinate_webhook_endpoints", (("state", "disabled"),))] >= 1
        assert endpoint["disabled_reason"].startswith(f"{BUDGET} attempts in a row failed")
        assert "HTTP 500" in endpoint["disabled_reason"]
        [message] = await told_of_disabling(client, notifications, partner)
        assert receiver.url("/broken") in message["subject"]

        receiver.statuses["/broken"] = 200
        enabled = await client.patch(
            hook.url, json={"enabled": True}, headers=partner_admin(partner)
        )
        assert enabled.status_code == 200
        assert enabled.json()["enabled"] is True
        # Its queue resumes in order, the disabling message after the two it was stuck on.
        subjects = await received(receiver, "/broken", 3)
        assert subjects[:2] == ["n0", "n1"]
        assert subjects[2] == message["subject"]


async def test_an_endpoint_answering_410_gone_is_disabled_at_once_and_its_partner_told(
    infra: Infra, notifications: str, receiver: WebhookReceiver
) -> None:
    """410 Gone is the receiver asking for no more deliveries (Standard Webhooks): its first
    one disables the endpoint, saying so, and the partner is told as for a spent budget (it
    was a failure like any other, retried until the budget was spent)."""
    partner = new_partner()
    async with httpx.AsyncClient(timeout=10) as client:
        hook = await register(client, notifications, receiver, partner, "/gone")
        await register(
            client, notifications, receiver, partner, "/watch", kinds=["webhook_disabled"]
        )
        receiver.statuses["/gone"] = 410
        await tell(infra, partner, *notes_for(partner, "g", 2))
        endpoint = await hook.once_disabled()
        reason = endpoint["disabled_reason"]
        assert reason.startswith("the endpoint answered 410 Gone at ")
        assert reason.endswith(": its receiver asks for no more deliveries")
        items = await hook.log()
        tried = [(a["status_code"], a["error"]) for d in items for a in d["attempt_log"]]
        assert tried == [(410, "HTTP 410 Gone")]  # once: not retried
        [message] = await told_of_disabling(client, notifications, partner)
        assert message["subject"] == f"Webhook endpoint {receiver.url('/gone')} disabled"
        assert message["body"].startswith(f"{reason}. Its queued messages are kept")
        # Its other endpoints are told too, as of any disabling.
        assert await received(receiver, "/watch", 1) == [message["subject"]]


async def test_a_slow_endpoint_does_not_hold_another_partners(
    infra: Infra, notifications: str, receiver: WebhookReceiver
) -> None:
    slow, fast = new_partner(), new_partner()
    async with httpx.AsyncClient(timeout=10) as client:
        await register(client, notifications, receiver, slow, "/slow")
        await register(client, notifications, receiver, fast, "/fast")
        receiver.delays["/slow"] = 1.0
        await tell(infra, slow, *notes_for(slow, "s", 3))
        await received(receiver, "/slow", 1)
        await tell(infra, fast, *notes_for(fast, "f", 1))
        await received(receiver, "/fast", 1)
        # The fast partner's message came while the slow endpoint was still being served.
        assert len(receiver.at("/slow")) < 3
        await received(receiver, "/slow", 3)


async def test_an_endpoint_keeps_its_connection_and_a_long_answer_is_left_unread(
    infra: Infra, notifications: str
) -> None:
    """An answer is read to its end, so its connection carries the endpoint's next delivery
    (one left unread was closed: a new connection, and for https a new TLS handshake, per
    delivery); an answer longer than is worth reading is left and its connection dropped, and
    the delivery is still a success."""
    partner = new_partner()
    with WebhookReceiver(keep_alive=True) as receiver:
        async with httpx.AsyncClient(timeout=10) as client:
            hook = await register(client, notifications, receiver, partner, "/kept")
            receiver.bodies["/kept"] = b'{"received": true}'
            await tell(infra, partner, *notes_for(partner, "k", 6))
            kept = [f"k{i}" for i in range(6)]
            assert await received(receiver, "/kept", 6) == kept
            assert len({r.connection for r in receiver.at("/kept")}) == 1
            receiver.bodies["/kept"] = b"x" * (DRAIN_BYTES * 4)
            await tell(infra, partner, *notes_for(partner, "long", 2))
            assert await received(receiver, "/kept", 8) == [*kept, "long0", "long1"]
            first_long, second_long = receiver.at("/kept")[6:]
            assert second_long.connection != first_long.connection, "a long answer was read"
            items = await hook.settled_log(8)
            assert [d["status"] for d in items] == ["delivered"] * 8


async def test_a_kept_connection_closed_as_it_is_reused_costs_no_failed_attempt(
    infra: Infra, notifications: str
) -> None:
    """A server closing an idle connection just as a delivery goes out on it leaves the post
    without an answer: it is sent again at once on a new connection, not failed and retried
    after a backoff."""
    partner = new_partner()
    with WebhookReceiver(keep_alive=True) as receiver:
        async with httpx.AsyncClient(timeout=10) as client:
            hook = await register(client, notifications, receiver, partner, "/hangs-up")
            receiver.hang_up_on_reuse.add("/hangs-up")
            await tell(infra, partner, *notes_for(partner, "h", 3))
            assert await received(receiver, "/hangs-up", 3) == ["h0", "h1", "h2"]
            assert [r.connection for r in receiver.at("/hangs-up")] == [1, 2, 3]
            items = await hook.settled_log(3)
            assert [(d["status"], d["attempts"]) for d in items] == [("delivered", 1)] * 3


async def test_an_endpoint_that_does_not_answer_in_time_fails_the_attempt_and_is_retried(
    infra: Infra, notifications: str, receiver: WebhookReceiver
) -> None:
    partner = new_partner()
    async with httpx.AsyncClient(timeout=10) as client:
        hook = await register(client, notifications, receiver, partner, "/late")
        receiver.delays_once["/late"] = 5.0  # the service's timeout is 3 s
        await tell(infra, partner, *notes_for(partner, "late", 1))
        [delivery] = await hook.log_when(
            lambda items: bool(items and items[0]["attempt_log"]),
            what="an attempt that timed out",
        )
        assert delivery["attempt_log"][0]["error"] == "no answer within 3 s"
        assert delivery["attempt_log"][0]["status_code"] is None
        [delivered] = await hook.log_when(
            lambda items: items[0]["status"] == "delivered",
            what="the retry delivered",
        )
        assert delivered["attempts"] >= 2


async def test_outside_development_mode_a_name_that_resolves_inwards_is_not_connected_to(
    receiver: WebhookReceiver,
) -> None:
    """The deliverer's own client, as the service builds it: outside development mode the
    address a connection is made to is checked as it is made (a name that resolved publicly
    a moment before cannot be pointed inwards in between); in development mode the same URL
    reaches the local receiver."""
    url = f"http://localhost:{receiver.port}/inwards"
    settings = NotificationsSettings()
    async with webhook_session(settings, development_mode=False) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as refused:
            await post(session, url, b"{}", {})
    assert "localhost resolves to a private, loopback or reserved address" in str(refused.value)
    assert receiver.connections == 0
    async with webhook_session(settings, development_mode=True) as session:
        assert (await post(session, url, b"{}", {})).status == 400  # reached: unsigned, refused
    assert receiver.connections == 1


async def test_redirects_are_not_followed(
    infra: Infra, notifications: str, receiver: WebhookReceiver
) -> None:
    partner = new_partner()
    async with httpx.AsyncClient(timeout=10) as client:
        hook = await register(client, notifications, receiver, partner, "/moved")
        receiver.statuses["/moved"] = 307
        await tell(infra, partner, *notes_for(partner, "r", 1))
        [delivery] = await hook.log_when(
            lambda items: bool(items and items[0]["attempts"]),
            what="an attempt",
        )
        assert delivery["status"] == "pending"
        assert delivery["last_status_code"] == 307
        assert delivery["last_error"] == "HTTP 307: redirects are not followed"
        assert receiver.refused == []  # /elsewhere was never called
        await client.delete(hook.url, headers=partner_admin(partner))


async def test_a_rotated_secret_signs_alongside_the_previous_one_and_redelivery_repeats_the_id(
    infra: Infra, notifications: str, receiver: WebhookReceiver
) -> None:
    partner = new_partner()
    async with httpx.AsyncClient(timeout=10) as client:
        hook = await register(client, notifications, receiver, partner, "/rotate")
        rotated = await hook.rotate_secret()
        assert rotated.status_code == 200
        assert rotated.json()["secret"] != hook.registered["secret"]
        # The receiver still holds the old secret: it verifies with it.
        await tell(infra, partner, *notes_for(partner, "x", 1))
        await received(receiver, "/rotate", 1)
        assert receiver.at("/rotate")[0].signatures == 2
        receiver.secrets["/rotate"] = rotated.json()["secret"]
        log = await hook.log()
        again = await client.post(
            f"{hook.url}/deliveries/{log[0]['delivery_id']}/redeliver",
            headers=partner_admin(partner),
        )
        assert again.status_code == 202
        await received(receiver, "/rotate", 2)
        first, second = receiver.at("/rotate")
        assert first.webhook_id == second.webhook_id
        assert receiver.refused == []

        gone = await client.delete(hook.url, headers=partner_admin(partner))
        assert gone.status_code == 204
        assert (await client.get(hook.url, headers=auth(partner))).status_code == 404


async def test_a_rotation_repeated_within_the_grace_keeps_the_secret_receivers_hold(
    infra: Infra, notifications: str, receiver: WebhookReceiver
) -> None:
    """A double click on rotate (or asking again after a lost answer) dropped the original
    secret at once: the receiver, still holding it, refused every delivery. Each secret in its
    grace signs, up to three; a fourth rotation meanwhile is refused saying when it can be."""
    partner = new_partner()
    async with httpx.AsyncClient(timeout=10) as client:
        hook = await register(client, notifications, receiver, partner, "/twice")
        first, second = [await hook.rotate_secret() for _ in range(2)]
        assert (first.status_code, second.status_code) == (200, 200)
        await tell(infra, partner, *notes_for(partner, "t", 1))
        await received(receiver, "/twice", 1)  # verified with the original secret
        assert receiver.at("/twice")[0].signatures == 3
        receiver.secrets["/twice"] = first.json()["secret"]  # the lost answer's: it signs too
        await tell(infra, partner, *notes_for(partner, "u", 1))
        assert await received(receiver, "/twice", 2) == ["t0", "u0"]
        assert receiver.refused == []
        third = await hook.rotate_secret()
        assert third.status_code == 200
        fourth = await hook.rotate_secret()
        assert fourth.status_code == 409
        assert "rotate again after" in fourth.json()["detail"]


async def test_endpoint_management_is_the_partner_admins_and_checked(
    notifications: str, receiver: WebhookReceiver
) -> None:
    partner, other = new_partner(), new_partner()
    url = f"{notifications}/partners/{partner}/webhooks"
    async with httpx.AsyncClient(timeout=10) as client:
        user = await client.post(url, json={"url": receiver.url("/x")}, headers=auth(partner))
        assert user.status_code == 403
        stranger = await client.post(
            url, json={"url": receiver.url("/x")}, headers=partner_admin(other)
        )
        assert stranger.status_code == 404
        by_manager = await client.post(url, json={"url": receiver.url("/m")}, headers=ADMIN)
        assert by_manager.status_code == 201
        for body, detail in [
            ({"url": "ftp://example.com/x"}, "url must be an absolute https URL"),
            ({"url": "https://user:pw@example.com/x"}, "url must not carry credentials"),
            ({"url": "https://example.com:99999/x"}, None),
            ({"url": receiver.url("/k"), "kinds": ["nope"]}, None),
            ({"url": receiver.url("/k"), "extra": 1}, None),
        ]:
            answer = await client.post(url, json=body, headers=partner_admin(partner))
            assert answer.status_code == 422, (body, answer.text)
            if detail:
                assert answer.json() == {"detail": detail}
        empty = await client.patch(
            f"{url}/{by_manager.json()['endpoint_id']}", json={}, headers=partner_admin(partner)
        )
        assert empty.status_code == 422
        missing = await client.patch(
            f"{url}/{uuid.uuid4()}", json={"enabled": False}, headers=partner_admin(partner)
        )
        assert missing.status_code == 404
        for i in range(9):
            created = await client.post(
                url, json={"url": receiver.url(f"/n{i}")}, headers=partner_admin(partner)
            )
            assert created.status_code == 201
        # Found in review: a registration retried after a timeout made a second endpoint for
        # the URL (a second secret, every notification delivered twice).
        retried = await client.post(
            url, json={"url": receiver.url("/n8")}, headers=partner_admin(partner)
        )
        assert retried.status_code == 409
        assert retried.json()["detail"] == (
            f"webhook endpoint {created.json()['endpoint_id']} already delivers to this URL (its"
            " secret is not shown again: rotate it if it was lost)"
        )
        moved = await client.patch(
            f"{url}/{by_manager.json()['endpoint_id']}",
            json={"url": receiver.url("/n8")},
            headers=partner_admin(partner),
        )
        assert (moved.status_code, moved.json()) == (409, retried.json())
        over = await client.post(
            url, json={"url": receiver.url("/over")}, headers=partner_admin(partner)
        )
        assert (over.status_code, over.json()) == (
            409,
            {"detail": "a partner may register at most 10 webhook endpoints"},
        )


async def test_a_suspended_partners_deliveries_wait_until_it_is_active_again(
    infra: Infra, notifications: str, receiver: WebhookReceiver
) -> None:
    paused, other = new_partner(), new_partner()
    async with httpx.AsyncClient(timeout=10) as client:
        hook = await register(client, notifications, receiver, paused, "/paused")
        await register(client, notifications, receiver, other, "/other")
        await suspended(client, infra, notifications, paused)
        # The notice of the suspension (heard after it, as two consumer groups may) goes out;
        # found in review: it waited with the rest, so an expelled partner never had it.
        notice = partner_notification(
            partner_id=paused, kind=NotificationKind.PARTNER_STATUS, subject="suspended"
        )
        await tell(infra, paused, notice, *notes_for(paused, "p", 2))
        await tell(infra, other, *notes_for(other, "o", 1))
        # The other partner's delivery went through; the suspended partner's waited untried.
        await received(receiver, "/other", 1)
        assert await received(receiver, "/paused", 1) == ["suspended"]
        await hook.log_when(
            lambda items: len(items) == 3,
            what="the suspended partner's deliveries queued",
            headers=ADMIN,
        )
        # Deliveries queued after them went out meanwhile: the deliverer passed them over.
        await tell(infra, other, *notes_for(other, "later", 1))
        await received(receiver, "/other", 2)
        items = await hook.log(ADMIN)
        assert sorted((d["status"], d["attempts"]) for d in items) == [
            ("delivered", 1),
            ("pending", 0),
            ("pending", 0),
        ]
        assert len(receiver.at("/paused")) == 1  # nothing after the notice
    await lifecycle(infra, paused, PartnerStatus.ACTIVE, PartnerChange.REINSTATED, 2)
    assert await received(receiver, "/paused", 3) == ["suspended", "p0", "p1"]


async def test_the_notice_of_lost_access_goes_ahead_of_the_deliveries_waiting_before_it(
    infra: Infra, notifications: str, receiver: WebhookReceiver
) -> None:
    """Found in review: a notice queued behind deliveries already waiting (the partner's
    access lost before it was told) waited with them, so an expelled partner never had it."""
    paused = new_partner()
    async with httpx.AsyncClient(timeout=10) as client:
        hook = await register(client, notifications, receiver, paused, "/jumped")
        await suspended(client, infra, notifications, paused)
        # More than a run's worth (50) waits before it: found in review, the notice behind
        # them was never sent and the endpoint was claimed again and again.
        waiting = RUN + 1
        await tell(infra, paused, *notes_for(paused, "p", waiting))
        await hook.log_when(
            lambda items: len(items) == waiting, what="the deliveries queued", headers=ADMIN
        )
        notice = partner_notification(
            partner_id=paused, kind=NotificationKind.PARTNER_STATUS, subject="suspended"
        )
        await tell(infra, paused, notice)
        assert await received(receiver, "/jumped", 1) == ["suspended"]
    await lifecycle(infra, paused, PartnerStatus.ACTIVE, PartnerChange.REINSTATED, 2)
    in_order = ["suspended", *(f"p{n}" for n in range(waiting))]
    assert await received(receiver, "/jumped", waiting + 1) == in_order


async def suspended(
    client: httpx.AsyncClient, infra: Infra, notifications: str, partner_id: str
) -> None:
    """The partner suspended (version 1), once the notifications service has heard of it."""
    await lifecycle(infra, partner_id, PartnerStatus.SUSPENDED, PartnerChange.SUSPENDED, 1)

    async def revoked() -> bool:
        page = await client.get(
            f"{notifications}/partners/{partner_id}/notifications", headers=auth(partner_id)
        )
        return page.status_code == 403

    await eventually(revoked, what="the notifications service to hear of the suspension")


async def lifecycle(
    infra: Infra, partner_id: str, status: PartnerStatus, change: PartnerChange, version: int
) -> None:
    state = partner_state_changed(
        partner_id=partner_id, status=status, change=change, version=version
    )
    await publish(infra, PARTNER_LIFECYCLE, [state], subject=partner_id, source="onboarding")
