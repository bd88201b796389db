"""A partner's registration and won deal, through the five real services, reach that partner
by every channel the notifications service offers (its inbox, its live stream, its webhook
receiver verifying Standard Webhooks signatures) and nothing of it reaches another partner by
any of them."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from deploy.story import Partner
from tests.support.crm import salesforce_delivery, salesforce_won_deal
from tests.support.deals import registration_request
from tests.support.notifications import SseEvent, WebhookReceiver, sse_events
from tests.support.onboarding_story import dealing_partner
from tests.support.polling import eventually
from tests.support.processes import ADMIN, Fleet

pytestmark = pytest.mark.e2e

EXPECTED = {"registration_approved", "credit_issued", "earning"}


@pytest.fixture(scope="module")
async def bystander(fleet: Fleet) -> Partner:
    """A second active partner, who must hear nothing of the first one's business."""
    return await dealing_partner(fleet, Partner("bystander", "Bystander Analytics", "isv"))


class Listener:
    """One partner's live stream, read in the background into a list."""

    def __init__(self, client: httpx.AsyncClient, url: str, partner: Partner) -> None:
        self.events: list[SseEvent] = []
        self.opened = asyncio.Event()
        self.task = asyncio.create_task(self.read(client, url, partner))

    async def read(self, client: httpx.AsyncClient, url: str, partner: Partner) -> None:
        stream = f"{url}/partners/{partner.partner_id}/notifications/stream"
        async with client.stream("GET", stream, headers=partner.auth) as response:
            assert response.status_code == 200
            self.opened.set()
            async for event in sse_events(response):
                if event.event == "notification":
                    self.events.append(event)

    def kinds(self) -> list[str]:
        return [e.json["kind"] for e in self.events]

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@contextlib.asynccontextmanager
async def listening(
    client: httpx.AsyncClient, url: str, *partners: Partner
) -> AsyncIterator[list[Listener]]:
    listeners = [Listener(client, url, p) for p in partners]
    try:
        for listener in listeners:
            await asyncio.wait_for(listener.opened.wait(), 15)
        yield listeners
    finally:
        for listener in listeners:
            await listener.close()


async def test_a_partners_business_reaches_it_by_every_channel_and_no_one_else(
    fleet: Fleet, referral_partner: Partner, bystander: Partner
) -> None:
    a, b = referral_partner, bystander
    notifications = fleet.url("notifications")
    run = uuid.uuid4().hex[:6]
    with WebhookReceiver() as receiver:
        async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=None)) as client:

            async def register(partner: Partner, customer: str, domain: str, amount: str) -> Any:
                """`partner` registers a deal with `customer` at `domain`; deals takes it."""
                answer = await client.post(
                    f"{fleet.url('deals')}/registrations",
                    json=registration_request(customer, domain, amount=amount),
                    headers=partner.auth,
                )
                assert answer.status_code == 201, answer.text
                return answer.json()

            for partner in (a, b):
                hook = await client.post(
                    f"{notifications}/partners/{partner.partner_id}/webhooks",
                    json={"url": receiver.url(f"/{partner.partner_id}")},
                    headers=ADMIN,
                )
                assert hook.status_code == 201, hook.text
                receiver.secrets[f"/{partner.partner_id}"] = hook.json()["secret"]
            async with listening(client, notifications, a, b) as (a_stream, b_stream):
                registered = await register(
                    a, f"Contoso {run} Retail", f"contoso-{run}.example", "12000.00"
                )
                assert registered["status"] == "approved"
                won = await client.post(
                    f"{fleet.url('deals')}/crm/salesforce",
                    **salesforce_delivery(
                        [salesforce_won_deal(f"006NT{run}", Decimal("8000.00"), a.partner_id)]
                    ),
                )
                assert won.status_code == 202, won.text

                async def a_heard_everything() -> bool:
                    return set(a_stream.kinds()) >= EXPECTED

                await eventually(a_heard_everything, 60, what="A's stream to carry its news")
                # The bystander does business too: its own news marks its channels' progress.
                await register(b, f"Tailspin {run} Toys", f"tailspin-{run}.example", "5000.00")

                async def b_heard_its_own() -> bool:
                    return "registration_approved" in b_stream.kinds()

                await eventually(b_heard_its_own, 60, what="B's stream to carry its own news")
                a_events, b_events = list(a_stream.events), list(b_stream.events)

            async def delivered(partner: Partner, kinds: set[str]) -> bool:
                got = {r.body["data"]["kind"] for r in receiver.at(f"/{partner.partner_id}")}
                return kinds <= got

            await eventually(lambda: delivered(a, EXPECTED), 60, what="A's webhooks")
            await eventually(
                lambda: delivered(b, {"registration_approved"}), 60, what="B's webhooks"
            )
            a_inbox = await inbox(client, notifications, a)
            b_inbox = await inbox(client, notifications, b)
            cross = await client.get(
                f"{notifications}/partners/{a.partner_id}/notifications", headers=b.auth
            )
            assert cross.status_code == 404

    a_ids = {item["notification_id"] for item in a_inbox}
    assert {item["kind"] for item in a_inbox} >= EXPECTED
    assert {e.json["notification_id"] for e in a_events} <= a_ids
    a_hooks = receiver.at(f"/{a.partner_id}")
    assert {r.webhook_id for r in a_hooks} >= {e.json["notification_id"] for e in a_events}
    assert receiver.refused == []
    # Nothing of A's reached B, by any channel.
    assert all(item["partner_id"] == b.partner_id for item in b_inbox)
    assert all(e.json["partner_id"] == b.partner_id for e in b_events)
    b_hooks = receiver.at(f"/{b.partner_id}")
    assert all(r.body["data"]["partner_id"] == b.partner_id for r in b_hooks)
    assert not a_ids & (
        {item["notification_id"] for item in b_inbox}
        | {e.json["notification_id"] for e in b_events}
        | {r.webhook_id for r in b_hooks}
    )


async def inbox(client: httpx.AsyncClient, url: str, partner: Partner) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 200} | ({"after": after} if after else {})
        page = await client.get(
            f"{url}/partners/{partner.partner_id}/notifications",
            params=params,
            headers=partner.auth,
        )
        assert page.status_code == 200, page.text
        body = page.json()
        if not body["items"]:
            return items
        items += body["items"]
        after = body["next_cursor"]
