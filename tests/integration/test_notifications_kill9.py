"""The notifications service killed with -9 in the middle of webhook deliveries: after its
restart every message reaches the receiver, in order; the only repeats are the delivery in
flight and those whose success was not yet recorded, sent again in order with the same
webhook-ids (what Standard Webhooks allows: receivers drop them)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from services.notifications.delivering import MARK_SECONDS
from shared.identity import Role
from shared.topics import PARTNER_NOTIFICATIONS
from tests.support.factories import partner_notification
from tests.support.infra import Infra
from tests.support.kafka import publish
from tests.support.notifications import WebhookReceiver
from tests.support.polling import eventually
from tests.support.processes import Fleet
from tests.support.tokens import bearer, token

pytestmark = pytest.mark.integration

COUNT = 20


@pytest.fixture
async def fleet(infra: Infra) -> AsyncIterator[Fleet]:
    running = Fleet(
        infra,
        env={
            "NOTIFICATIONS_WEBHOOK_LEASE_SECONDS": "3",
            "NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS": "2",
            "NOTIFICATIONS_WEBHOOK_RETRY_INITIAL_SECONDS": "0.2",
            "NOTIFICATIONS_WEBHOOK_RETRY_MAX_SECONDS": "0.5",
        },
    )
    try:
        await running.start("notifications")
        yield running
    finally:
        await running.stop_all()


async def test_killed_mid_delivery_nothing_is_lost_and_repeats_keep_their_id(
    infra: Infra, fleet: Fleet
) -> None:
    partner = f"ptn_kill_{uuid.uuid4().hex[:8]}"
    admin = bearer(token(f"{partner}/admin", Role.PARTNER_ADMIN, partner_id=partner))
    notes = [partner_notification(partner_id=partner, subject=f"k{i}") for i in range(COUNT)]
    with WebhookReceiver() as receiver:
        receiver.delays["/kill"] = 0.2  # each delivery takes a while: the kill lands mid-way
        async with httpx.AsyncClient(timeout=10) as client:
            created = await client.post(
                f"{fleet.url('notifications')}/partners/{partner}/webhooks",
                json={"url": receiver.url("/kill")},
                headers=admin,
            )
            assert created.status_code == 201, created.text
            receiver.secrets["/kill"] = created.json()["secret"]
        await publish(infra, PARTNER_NOTIFICATIONS, notes, subject=partner, source="deals")

        async def some_arrived() -> bool:
            return len(receiver.at("/kill")) >= 3

        await eventually(some_arrived, what="the first deliveries")
        await fleet.kill9("notifications")
        assert len(receiver.at("/kill")) < COUNT
        await fleet.start("notifications")

        async def all_arrived() -> bool:
            return {r.webhook_id for r in receiver.at("/kill")} == {
                n.notification_id for n in notes
            }

        await eventually(all_arrived, 60, what="every message after the restart")
        got = receiver.at("/kill")
    ids = [n.notification_id for n in notes]
    order = [ids.index(delivery.webhook_id) for delivery in got]
    # What the killed process sent, in order; then the restart's sends, from the first delivery
    # whose success was not recorded yet: the one in flight and those answered in the last
    # MARK_SECONDS (each takes the receiver's 0.2 s at least, so at most 1 + 1.0 / 0.2 of them).
    restart = next((n for n in range(1, len(order)) if order[n] != order[n - 1] + 1), len(order))
    before, after = order[:restart], order[restart:]
    assert before == list(range(len(before))), "the killed process sent out of order"
    resumed_at = after[0] if after else len(before)
    assert resumed_at <= len(before), "a delivery was skipped"
    assert after == list(range(resumed_at, len(ids))), "the restart sent out of order"
    repeats = len(before) - resumed_at
    assert repeats <= 1 + MARK_SECONDS / 0.2, f"{repeats} deliveries repeated"
    assert receiver.refused == []
