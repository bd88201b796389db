"""The deliverer's policy, driven on a scratch notifications schema against a real local
receiver: endpoints working through backlogs of slow answers take turns with one that becomes
due meanwhile, and the slow ones still get theirs in order, once each; redeliveries a partner
asks for do not spend the endpoint's failure budget; a retry waits from the attempt's end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from services.notifications import webhook_repository
from services.notifications.delivering import Deliverer, webhook_session
from services.notifications.settings import NotificationsSettings
from services.notifications.wakeups import InboxWakeups
from services.notifications.webhook_repository import ClaimedEndpoint
from shared.db import Pool
from tests.support.infra import ROOT, Infra, migrated_pool, scratch_schema
from tests.support.notifications import SECRET, WebhookReceiver, queued_endpoint
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

MIGRATIONS = Path(ROOT / "services" / "notifications" / "migrations")


@pytest.fixture
async def pool(infra: Infra) -> AsyncIterator[Pool]:
    """A throw-away notifications schema's pool (room for a deliverer's concurrent tasks)."""
    async with (
        scratch_schema(infra) as scratch,
        migrated_pool(scratch, "notifications", MIGRATIONS, max_size=6) as pool,
    ):
        yield pool


def subjects(receiver: WebhookReceiver, path: str) -> list[str]:
    return [r.body["data"]["subject"] for r in receiver.at(path)]


async def test_endpoints_with_slow_backlogs_take_turns_with_one_due_meanwhile(pool: Pool) -> None:
    """Both slots taken by endpoints with backlogs of answers that each take a second: an
    endpoint due meanwhile is served after about one attempt of theirs, not after a backlog
    (each kept its slot until its backlog was done)."""
    settings = NotificationsSettings(
        webhook_concurrency=2, webhook_poll_seconds=0.1, webhook_lease_seconds=30
    )
    slow = {f"/slow{n}": [f"s{n}-{i}" for i in range(8)] for n in range(2)}
    with WebhookReceiver(keep_alive=True) as receiver:
        for path, backlog in slow.items():
            receiver.secrets[path] = SECRET
            receiver.delays[path] = 1.0  # slow, but a success
            await queued_endpoint(pool, receiver.url(path), backlog)
        receiver.secrets["/healthy"] = SECRET
        deliverer = Deliverer(pool, settings, InboxWakeups(), development_mode=True)
        running = asyncio.create_task(deliverer.run())
        try:

            async def both_started() -> bool:
                return all(receiver.at(path) for path in slow)

            await eventually(both_started, what="both slow endpoints served")
            await queued_endpoint(pool, receiver.url("/healthy"), ["h"])

            async def healthy() -> bool:
                return bool(receiver.at("/healthy"))

            await eventually(healthy, what="the healthy endpoint served")
            served = {path: len(receiver.at(path)) for path in slow}
            assert all(count < 6 for count in served.values()), served

            async def drained() -> bool:
                return all(len(receiver.at(path)) >= 8 for path in slow)

            await eventually(drained, what="the slow backlogs delivered")
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
        for path, backlog in slow.items():
            assert subjects(receiver, path) == backlog  # in order, once each
        assert receiver.refused == []


async def serve_once(
    pool: Pool, settings: NotificationsSettings, endpoint: ClaimedEndpoint
) -> None:
    deliverer = Deliverer(pool, settings, InboxWakeups(), development_mode=True)
    async with webhook_session(settings, development_mode=True) as client:
        await deliverer.serve(client, endpoint)


async def endpoint_state(pool: Pool, endpoint: ClaimedEndpoint) -> tuple[bool, int, str | None]:
    row = await pool.fetchrow(
        """SELECT enabled, consecutive_failures, disabled_reason FROM webhook_endpoints
           WHERE endpoint_id = $1""",
        endpoint.endpoint_id,
    )
    assert row is not None
    return row["enabled"], row["consecutive_failures"], row["disabled_reason"]


async def test_redeliveries_asked_for_do_not_spend_the_failure_budget(pool: Pool) -> None:
    """A developer asking again and again for a failing delivery is not the endpoint failing
    its retries: those attempts are logged, not counted (the endpoint was disabled after as
    many clicks as its budget, saying that many deliveries failed); the retries still are."""
    settings = NotificationsSettings(webhook_failure_budget=3)
    with WebhookReceiver(keep_alive=True) as receiver:
        receiver.secrets["/failing"] = SECRET
        receiver.statuses["/failing"] = 500
        endpoint = await queued_endpoint(pool, receiver.url("/failing"), ["f0"])
        head = await pool.fetchval(
            "SELECT delivery_id FROM webhook_deliveries WHERE endpoint_id = $1",
            endpoint.endpoint_id,
        )
        for _ in range(5):
            async with pool.acquire() as conn:
                assert await webhook_repository.redeliver(
                    conn, endpoint.partner_id, endpoint.endpoint_id, head
                )
            await serve_once(pool, settings, endpoint)
        assert await pool.fetchval("SELECT count(*) FROM webhook_attempts") == 5
        assert await endpoint_state(pool, endpoint) == (True, 0, None)
        # Its retries are counted: the budget's worth disables it, saying what failed.
        for _ in range(3):
            await pool.execute(
                "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE delivery_id = $1",
                head,
            )
            await serve_once(pool, settings, endpoint)
    enabled, failures, reason = await endpoint_state(pool, endpoint)
    assert (enabled, failures) == (False, 3)
    assert reason is not None
    assert reason.startswith("3 attempts in a row failed since ")
    assert reason.endswith("last: HTTP 500")


async def test_a_retry_waits_its_backoff_from_the_attempts_end(pool: Pool) -> None:
    """An attempt that ran into the timeout (1 s) is retried its backoff (0.25-0.5 s) after it
    ended, not after it began (so at once)."""
    settings = NotificationsSettings(
        webhook_timeout_seconds=1, webhook_lease_seconds=5, webhook_retry_initial_seconds=0.5
    )
    with WebhookReceiver(keep_alive=True) as receiver:
        receiver.secrets["/late"] = SECRET
        receiver.delays_once["/late"] = 2.0
        endpoint = await queued_endpoint(pool, receiver.url("/late"), ["l0"])
        await serve_once(pool, settings, endpoint)
    row = await pool.fetchrow(
        """SELECT a.error, d.next_attempt_at - a.attempted_at AS wait, a.duration_ms
           FROM webhook_deliveries d JOIN webhook_attempts a USING (delivery_id)"""
    )
    assert row is not None
    assert row["error"] == "no answer within 1 s"
    after_end = row["wait"] - timedelta(milliseconds=row["duration_ms"])
    assert timedelta(seconds=0.25) <= after_end <= timedelta(seconds=0.5)
