"""The example partner app (examples/partner_app.py) against a real notifications process: its
webhook receiver registers itself, verifies each delivery's signature and drops repeats by
webhook-id; its stream reader gets the same messages."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from examples.partner_app import WebhookReceiver, register, stream
from shared.identity import Role
from shared.topics import PARTNER_NOTIFICATIONS
from tests.support.factories import partner_notification
from tests.support.infra import Infra
from tests.support.kafka import publish
from tests.support.polling import eventually
from tests.support.processes import service_fixture
from tests.support.tokens import token

pytestmark = pytest.mark.integration


notifications = service_fixture("notifications")


async def test_the_example_app_receives_by_webhook_and_stream(
    infra: Infra, notifications: str
) -> None:
    partner = f"ptn_app_{uuid.uuid4().hex[:8]}"
    app_token = token(f"{partner}/app", Role.PARTNER_ADMIN, partner_id=partner)
    hooked: list[dict[str, Any]] = []
    receiver = WebhookReceiver(lambda _channel, message: hooked.append(message))
    receiver.start()
    streamed: list[dict[str, Any]] = []
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client:
            endpoint = await register(client, notifications, partner, app_token, receiver.url)
            receiver.secret = endpoint["secret"]
            opened = asyncio.Event()

            async def follow() -> None:
                async for message in stream(
                    client, notifications, partner, app_token, opened=opened
                ):
                    streamed.append(message)

            reader = asyncio.create_task(follow())
            await asyncio.wait_for(opened.wait(), 10)
            notes = [partner_notification(partner_id=partner, subject=f"s{i}") for i in range(2)]
            await publish(infra, PARTNER_NOTIFICATIONS, notes, subject=partner, source="deals")

            async def both() -> bool:
                return len(hooked) == 2 and len(streamed) == 2

            await eventually(both, what="the app to receive both messages both ways")
            reader.cancel()
        assert [m["subject"] for m in hooked] == ["s0", "s1"]
        assert [m["subject"] for m in streamed] == ["s0", "s1"]
        # A forged delivery is refused; a repeat (same webhook-id, signed) is dropped.
        assert receiver.receive(b'{"data": {}}', {"webhook-id": "x"}) == 400
        assert receiver.refused == 1
        body = '{"data": {"subject": "again"}}'
        at = datetime.now(UTC)
        repeated_id = next(iter(receiver.seen))
        headers = {
            "webhook-id": repeated_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(receiver.secret).sign(repeated_id, at, body),
        }
        assert receiver.receive(body.encode(), headers) == 204
        assert len(hooked) == 2
    finally:
        receiver.stop()
