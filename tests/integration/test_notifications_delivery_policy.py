"""The deliverer's policy, driven on a scratch notifications schema against a real local
receiver: endpoints working through backlogs of slow answers take turns with one that becomes
due meanwhile, and the slow ones still get theirs in order, once each; redeliveries a partner
asks for do not spend the endpoint's failure budget; a retry waits from the attempt's end, and
no earlier than a throttling receiver's Retry-After (within the cap); a new URL is tried at
once with a failure count of its own, and an endpoint's holder lets go of the old URL."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from email.utils import format_datetime

import pytest

from services.notifications import views, webhook_repository, webhooks
from services.notifications.delivering import Deliverer, webhook_session
from services.notifications.schemas import EndpointPatch
from services.notifications.settings import NotificationsSettings
from services.notifications.wakeups import InboxWakeups
from services.notifications.webhook_repository import ClaimedEndpoint
from shared.clock import now
from shared.db import Pool
from shared.errors import Conflict, Unprocessable
from shared.identity import Caller, Role
from tests.support.infra import Infra
from tests.support.notifications import (
    SECRET,
    WebhookReceiver,
    queued_endpoint,
    scratch_notifications,
)
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(infra: Infra) -> AsyncIterator[Pool]:
    """A throw-away notifications schema's pool (room for a deliverer's concurrent tasks)."""
    async with scratch_notifications(infra, max_size=6) as scratch:
        yield scratch


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
    # Disabled, a delivery asked for again is refused saying why (found in review: answered
    # "pending", and nothing went out).
    before = await pool.fetchval(
        "SELECT attempts FROM webhook_deliveries WHERE delivery_id = $1", head
    )
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(Conflict, match=f"endpoint {endpoint.endpoint_id} is disabled"):
            await webhooks.redeliver(conn, WHO, endpoint.partner_id, endpoint.endpoint_id, head)
    after = await pool.fetchrow(
        "SELECT attempts, requested FROM webhook_deliveries WHERE delivery_id = $1", head
    )
    assert after is not None
    assert after["attempts"] == before


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


async def retry_wait(pool: Pool) -> tuple[str, timedelta, datetime]:
    """The one attempt's error, how long after its end its delivery is due again, and when."""
    row = await pool.fetchrow(
        """SELECT a.error, d.next_attempt_at,
                  d.next_attempt_at - a.attempted_at - make_interval(secs => a.duration_ms / 1000.0)
                      AS wait
           FROM webhook_deliveries d JOIN webhook_attempts a USING (delivery_id)"""
    )
    assert row is not None
    return row["error"], row["wait"], row["next_attempt_at"]


@pytest.mark.parametrize(
    ("status", "retry_after", "wait", "error"),
    [
        (503, "3", timedelta(seconds=3), "HTTP 503; Retry-After: 3"),
        # Longer than the cap (NOTIFICATIONS_WEBHOOK_RETRY_MAX_SECONDS): the cap.
        (429, "999999999999", timedelta(seconds=20), "HTTP 429; Retry-After: 999999999999"),
        # Not understood: the backoff alone (0.25-0.5 s), and the log says it was ignored.
        (502, "soon", None, "HTTP 502; Retry-After 'soon' not understood, ignored"),
        # A byte that is not UTF-8 after a date long past: read as a lone surrogate, it made
        # the attempt's insert fail at every try (no failure counted, the endpoint claimed
        # again at once). Now escaped in the log; the past date asks for no wait.
        (
            503,
            "Wed, 21 Oct 2015 07:28:00 GMT \xff",
            None,
            "HTTP 503; Retry-After: Wed, 21 Oct 2015 07:28:00 GMT \\udcff",
        ),
    ],
)
async def test_a_throttling_answers_retry_after_puts_the_retry_no_earlier_within_the_cap(
    pool: Pool, status: int, retry_after: str, wait: timedelta | None, error: str
) -> None:
    settings = NotificationsSettings(
        webhook_retry_initial_seconds=0.5, webhook_retry_max_seconds=20
    )
    with WebhookReceiver(keep_alive=True) as receiver:
        receiver.secrets["/busy"] = SECRET
        receiver.statuses["/busy"] = status
        receiver.headers["/busy"] = {"Retry-After": retry_after}
        endpoint = await queued_endpoint(pool, receiver.url("/busy"), ["b0"])
        await serve_once(pool, settings, endpoint)
    logged, waited, _ = await retry_wait(pool)
    if wait is None:
        assert timedelta(seconds=0.25) <= waited <= timedelta(seconds=0.5)
    else:
        assert abs(waited - wait) < timedelta(seconds=0.1), waited
    assert logged == error


async def test_a_retry_after_date_is_when_the_retry_goes(pool: Pool) -> None:
    """An HTTP date (GMT, to the second) in a 504's Retry-After: the retry is due then."""
    settings = NotificationsSettings(webhook_retry_initial_seconds=0.5)
    when = (now() + timedelta(seconds=5)).replace(microsecond=0)
    with WebhookReceiver(keep_alive=True) as receiver:
        receiver.secrets["/busy"] = SECRET
        receiver.statuses["/busy"] = 504
        receiver.headers["/busy"] = {"Retry-After": format_datetime(when, usegmt=True)}
        endpoint = await queued_endpoint(pool, receiver.url("/busy"), ["b0"])
        await serve_once(pool, settings, endpoint)
    _, _, due = await retry_wait(pool)
    assert abs(due - when) < timedelta(seconds=0.1), (due, when)


WHO = Caller(subject="cm-1", roles=frozenset({Role.CHANNEL_MANAGER}))


async def patch(pool: Pool, endpoint: ClaimedEndpoint, change: EndpointPatch) -> None:
    """PATCH the endpoint, as the API does."""
    async with pool.acquire() as conn, conn.transaction():
        await webhooks.change(
            conn, WHO, endpoint.partner_id, endpoint.endpoint_id, change, development_mode=True
        )


async def move(pool: Pool, endpoint: ClaimedEndpoint, url: str) -> ClaimedEndpoint:
    """PATCH the endpoint's URL; the endpoint as a deliverer claims it now."""
    await patch(pool, endpoint, EndpointPatch(url=url))
    return dataclasses.replace(endpoint, url=url)


async def test_a_new_url_is_tried_at_once_and_the_old_ones_failures_do_not_count(
    pool: Pool,
) -> None:
    """Two failures at the old URL (budget 3), the head backing off a minute: a new URL is
    tried at once, and its first failure is its first (it disabled the endpoint before)."""
    settings = NotificationsSettings(
        webhook_failure_budget=3, webhook_retry_initial_seconds=120, webhook_retry_max_seconds=600
    )
    with WebhookReceiver(keep_alive=True) as receiver:
        for path in ("/old", "/new"):
            receiver.secrets[path] = SECRET
            receiver.statuses[path] = 500
        endpoint = await queued_endpoint(pool, receiver.url("/old"), ["m0"])
        head = await pool.fetchval(
            "SELECT delivery_id FROM webhook_deliveries WHERE endpoint_id = $1",
            endpoint.endpoint_id,
        )
        for _ in range(2):
            await pool.execute(
                "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE delivery_id = $1",
                head,
            )
            await serve_once(pool, settings, endpoint)
        assert await endpoint_state(pool, endpoint) == (True, 2, None)
        moved = await move(pool, endpoint, receiver.url("/new"))
        assert await endpoint_state(pool, endpoint) == (True, 0, None)
        due = "SELECT next_attempt_at <= now() FROM webhook_deliveries WHERE delivery_id = $1"
        assert await pool.fetchval(due, head)
        await serve_once(pool, settings, moved)
        assert await endpoint_state(pool, endpoint) == (True, 1, None)
        assert await pool.fetchval("SELECT count(*) FROM webhook_attempts") == 3


async def test_enabled_sent_to_an_enabled_endpoint_keeps_its_failures_and_backoff(
    pool: Pool,
) -> None:
    """Found in review: a client re-applying its whole state (`enabled: true` every time) reset
    the failure streak and retried at once, so a dead endpoint was never disabled. Enabling a
    disabled endpoint still forgives its failures and tries its queue at once."""
    settings = NotificationsSettings(
        webhook_failure_budget=3, webhook_retry_initial_seconds=120, webhook_retry_max_seconds=600
    )
    with WebhookReceiver(keep_alive=True) as receiver:
        receiver.secrets["/dead"] = SECRET
        receiver.statuses["/dead"] = 500
        endpoint = await queued_endpoint(pool, receiver.url("/dead"), ["m0"])
        await serve_once(pool, settings, endpoint)
        assert await endpoint_state(pool, endpoint) == (True, 1, None)

        due = "SELECT bool_and(next_attempt_at <= now()) FROM webhook_deliveries"
        await patch(pool, endpoint, EndpointPatch(enabled=True))
        assert await endpoint_state(pool, endpoint) == (True, 1, None)
        assert await pool.fetchval(due) is False  # still backing off
        await patch(pool, endpoint, EndpointPatch(enabled=False))
        await patch(pool, endpoint, EndpointPatch(enabled=True))
        assert await endpoint_state(pool, endpoint) == (True, 0, None)
        assert await pool.fetchval(due) is True


@pytest.mark.parametrize("status", [500, 410])
async def test_an_attempt_out_at_the_old_url_when_it_changes_neither_counts_nor_disables(
    pool: Pool, status: int
) -> None:
    """Its answer (a failure past a budget of one, or a 410) comes once the URL has changed:
    it says nothing of the new URL, which then gets the delivery at once."""
    settings = NotificationsSettings(webhook_failure_budget=1, webhook_retry_initial_seconds=120)
    arrived, moved_on = threading.Event(), threading.Event()

    def hold() -> None:  # on the receiver's thread: answer once the URL has changed
        arrived.set()
        moved_on.wait(10)

    with WebhookReceiver(keep_alive=True) as receiver:
        for path in ("/old", "/new"):
            receiver.secrets[path] = SECRET
        receiver.statuses["/old"] = status
        receiver.on_receipt["/old"] = hold
        endpoint = await queued_endpoint(pool, receiver.url("/old"), ["m0"])
        serving = asyncio.create_task(serve_once(pool, settings, endpoint))

        async def out() -> bool:
            return arrived.is_set()

        await eventually(out, what="the attempt at the old URL")
        moved = await move(pool, endpoint, receiver.url("/new"))
        moved_on.set()
        await serving
        assert await endpoint_state(pool, endpoint) == (True, 0, None)
        await serve_once(pool, settings, moved)
        assert subjects(receiver, "/new") == ["m0"]


async def test_a_holder_lets_go_of_the_old_url_and_the_backlog_goes_to_the_new_one(
    pool: Pool,
) -> None:
    """An endpoint's holder sending a backlog to its URL when the URL changes stops within
    about a second (before, the whole backlog went to the old URL); the rest goes to the new
    one, in order, once each."""
    settings = NotificationsSettings(webhook_poll_seconds=0.1, webhook_lease_seconds=30)
    backlog = [f"m{i}" for i in range(10)]
    with WebhookReceiver(keep_alive=True) as receiver:
        for path in ("/old", "/new"):
            receiver.secrets[path] = SECRET
        receiver.delays["/old"] = 0.3
        endpoint = await queued_endpoint(pool, receiver.url("/old"), backlog)
        deliverer = Deliverer(pool, settings, InboxWakeups(), development_mode=True)
        running = asyncio.create_task(deliverer.run())
        try:

            async def started() -> bool:
                return bool(receiver.at("/old"))

            await eventually(started, what="the backlog going to the old URL")
            await move(pool, endpoint, receiver.url("/new"))

            async def drained() -> bool:
                return len(receiver.at("/old")) + len(receiver.at("/new")) >= len(backlog)

            await eventually(drained, what="the backlog delivered")
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
        assert subjects(receiver, "/new")
        assert subjects(receiver, "/old") + subjects(receiver, "/new") == backlog


async def test_the_delivery_log_pages_back_to_the_first_delivery(pool: Pool) -> None:
    """Found in review: the log was the newest 100 alone, so an older delivery could not be
    found, nor redelivered. Pages of two, newest first, `after` the last of the page before;
    another endpoint's delivery as the cursor is refused."""
    endpoint = await queued_endpoint(pool, "https://hooks.partner.example/a", list("abcde"))
    other = await queued_endpoint(pool, "https://hooks.partner.example/b", ["x"])
    walked: list[uuid.UUID] = []
    pages, after = 0, None
    while True:
        async with pool.acquire() as conn:
            page = await views.deliveries(conn, "ptn_runs", endpoint.endpoint_id, 2, after)
        ids = [d.delivery_id for d in page.items]
        assert ids
        assert not set(ids) & set(walked), "the page did not move on"
        walked, pages = walked + ids, pages + 1
        if page.next_after is None:
            break
        after = page.next_after
    newest_first = await pool.fetch(
        "SELECT delivery_id FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY position DESC",
        endpoint.endpoint_id,
    )
    assert (pages, walked) == (3, [row["delivery_id"] for row in newest_first])
    async with pool.acquire() as conn:  # exactly a page: the last one, no cursor to nothing
        only = await views.deliveries(conn, "ptn_runs", other.endpoint_id, 1, None)
    assert (len(only.items), only.next_after) == (1, None)
    stray = await pool.fetchval(
        "SELECT delivery_id FROM webhook_deliveries WHERE endpoint_id = $1", other.endpoint_id
    )
    async with pool.acquire() as conn:
        with pytest.raises(Unprocessable, match="is not a delivery of this endpoint"):
            await views.deliveries(conn, "ptn_runs", endpoint.endpoint_id, 2, stray)
