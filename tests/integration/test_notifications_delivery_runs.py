"""The deliverer serving one endpoint, driven by hand on a scratch notifications schema and a
real local receiver: a run of successes is recorded in one statement, in order, with its log;
a failure after some successes records them and then the failed attempt; an endpoint deleted
or disabled, or whose partner is suspended, while its run is out is served no further."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from services.notifications import delivering, webhook_repository
from services.notifications.delivering import Deliverer, webhook_session
from services.notifications.repository import Filed
from services.notifications.settings import NotificationsSettings
from services.notifications.wakeups import InboxWakeups
from services.notifications.webhook_repository import ClaimedEndpoint, claim_endpoints
from shared.clock import now
from shared.db import Pool
from tests.support.infra import ROOT, Infra, migrated_pool, scratch_schema, statements_sent
from tests.support.notifications import SECRET, WebhookReceiver, partner_message, queued_endpoint

pytestmark = pytest.mark.integration

MIGRATIONS = Path(ROOT / "services" / "notifications" / "migrations")


@pytest.fixture
async def schema(infra: Infra) -> AsyncIterator[tuple[Pool, str]]:
    """A throw-away notifications schema: (pool, its runtime role)."""
    async with (
        scratch_schema(infra) as scratch,
        migrated_pool(scratch, "notifications", MIGRATIONS, max_size=1) as pool,
    ):
        yield pool, f"{scratch.schema}_svc"


async def serve(pool: Pool, endpoint: ClaimedEndpoint) -> None:
    settings = NotificationsSettings()
    deliverer = Deliverer(pool, settings, InboxWakeups(), development_mode=True)
    async with webhook_session(settings, development_mode=True) as client:
        await deliverer.serve(client, endpoint)


def redeliver_from_receiver(
    pool: Pool, loop: asyncio.AbstractEventLoop, endpoint: ClaimedEndpoint, delivery_id: uuid.UUID
) -> None:
    """The partner's redelivery request, made from the receiver's thread (a hook) on the test's
    loop, while the deliverer waits for that receiver's answer."""

    async def ask_again() -> None:
        async with pool.acquire() as conn:
            asked = await webhook_repository.redeliver(
                conn, endpoint.partner_id, endpoint.endpoint_id, delivery_id
            )
            assert asked

    asyncio.run_coroutine_threadsafe(ask_again(), loop).result(timeout=10)


async def test_a_run_of_successes_is_recorded_in_one_statement(
    infra: Infra, schema: tuple[Pool, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivering, "MARK_SECONDS", 3600.0)  # however slow the machine
    pool, role = schema
    subjects = [f"r{n}" for n in range(12)]
    with WebhookReceiver(keep_alive=True) as receiver:
        receiver.secrets["/runs"] = SECRET
        # A first delivery: the connection learns the types it sends (asyncpg asks once).
        await serve(pool, await queued_endpoint(pool, receiver.url("/runs"), ["warm-up"]))
        endpoint = await queued_endpoint(pool, receiver.url("/runs"), subjects)
        before = await statements_sent(infra, role)
        await serve(pool, endpoint)
        sent = await statements_sent(infra, role) - before
        assert [r.body["data"]["subject"] for r in receiver.at("/runs")] == ["warm-up", *subjects]
        assert receiver.refused == []
    # The run read, its twelve successes recorded, an empty run read, the lease released
    # (one statement a success before: fifteen).
    assert sent == 4, f"{sent} statements for a run of {len(subjects)} deliveries"
    rows = await pool.fetch(
        """SELECT d.status, d.attempts, a.status_code
           FROM webhook_deliveries d JOIN webhook_attempts a USING (delivery_id)
           WHERE d.endpoint_id = $1 ORDER BY d.position""",
        endpoint.endpoint_id,
    )
    assert [tuple(row) for row in rows] == [("delivered", 1, 200)] * len(subjects)


async def test_a_failure_after_successes_records_them_then_the_failed_attempt(
    schema: tuple[Pool, str],
) -> None:
    pool, _ = schema
    with WebhookReceiver(keep_alive=True) as receiver:
        receiver.secrets["/fails"] = SECRET
        receiver.refuse_subjects.add("no")
        endpoint = await queued_endpoint(
            pool, receiver.url("/fails"), ["ok0", "ok1", "no", "after"]
        )
        await serve(pool, endpoint)
        assert [r.body["data"]["subject"] for r in receiver.at("/fails")] == ["ok0", "ok1"]
    rows = await pool.fetch(
        """SELECT d.status, d.attempts, d.last_status_code,
                  array_remove(array_agg(a.status_code ORDER BY a.attempt), NULL) AS log
           FROM webhook_deliveries d LEFT JOIN webhook_attempts a USING (delivery_id)
           GROUP BY d.delivery_id ORDER BY d.position"""
    )
    assert [tuple(row) for row in rows] == [
        ("delivered", 1, 200, [200]),
        ("delivered", 1, 200, [200]),
        ("pending", 1, 500, [500]),
        ("pending", 0, None, []),  # behind the failed head: not tried
    ]
    failures = await pool.fetchval(
        "SELECT consecutive_failures FROM webhook_endpoints WHERE endpoint_id = $1",
        endpoint.endpoint_id,
    )
    assert failures == 1


# What may happen to an endpoint while a run is out, and the rows its successes leave logged.
MEANWHILE = {
    "deleted": ("DELETE FROM webhook_endpoints WHERE endpoint_id = $1", 0),
    "disabled": ("UPDATE webhook_endpoints SET enabled = false WHERE endpoint_id = $1", 1),
    "partner suspended": (
        """INSERT INTO partner_access (partner_id, status, version, changed_at)
           SELECT partner_id, 'suspended', 1, now() FROM webhook_endpoints
           WHERE endpoint_id = $1""",
        1,
    ),
}


@pytest.mark.parametrize("change", sorted(MEANWHILE))
async def test_an_endpoint_changed_while_its_run_is_out_is_no_longer_served(
    schema: tuple[Pool, str], monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """Successes are recorded at least every MARK_SECONDS; the record finding the endpoint
    deleted (with its queue), disabled or its partner suspended ends the run: here every
    success is recorded at once, so nothing goes out after the first."""
    monkeypatch.setattr(delivering, "MARK_SECONDS", 0.0)
    pool, _ = schema
    statement, logged = MEANWHILE[change]
    loop = asyncio.get_running_loop()
    with WebhookReceiver(keep_alive=True) as receiver:
        receiver.secrets["/changed"] = SECRET
        endpoint = await queued_endpoint(pool, receiver.url("/changed"), ["c0", "c1", "c2"])

        def change_endpoint() -> None:  # on the receiver's thread, before c0 is answered
            changed = pool.execute(statement, endpoint.endpoint_id)
            asyncio.run_coroutine_threadsafe(changed, loop).result(timeout=10)
            del receiver.on_receipt["/changed"]

        receiver.on_receipt["/changed"] = change_endpoint
        await serve(pool, endpoint)
        assert [r.body["data"]["subject"] for r in receiver.at("/changed")] == ["c0"]
    assert await pool.fetchval("SELECT count(*) FROM webhook_attempts") == logged


async def test_a_delivery_asked_for_again_before_its_success_is_recorded_is_sent_again(
    schema: tuple[Pool, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partner's redelivery request that lands between a delivery's answer and its record
    is not overwritten by the record: the delivery goes out again."""
    monkeypatch.setattr(delivering, "MARK_SECONDS", 3600.0)  # recorded when the run is done
    pool, _ = schema
    loop = asyncio.get_running_loop()
    with WebhookReceiver(keep_alive=True) as receiver:
        receiver.secrets["/again"] = SECRET
        endpoint = await queued_endpoint(pool, receiver.url("/again"), ["a0", "a1"])
        first = await pool.fetchval(
            """SELECT delivery_id FROM webhook_deliveries WHERE endpoint_id = $1
               ORDER BY position LIMIT 1""",
            endpoint.endpoint_id,
        )

        def as_a1_arrives() -> None:  # a0 answered, its success not yet recorded
            if len(receiver.at("/again")) == 2:
                redeliver_from_receiver(pool, loop, endpoint, first)

        receiver.on_receipt["/again"] = as_a1_arrives
        await serve(pool, endpoint)
        assert [r.body["data"]["subject"] for r in receiver.at("/again")] == ["a0", "a1", "a0"]
    rows = await pool.fetch(
        """SELECT d.status, d.attempts, count(a.*) AS logged
           FROM webhook_deliveries d LEFT JOIN webhook_attempts a USING (delivery_id)
           GROUP BY d.delivery_id ORDER BY d.position"""
    )
    assert [tuple(row) for row in rows] == [("delivered", 2, 2), ("delivered", 1, 1)]


async def test_a_failure_after_the_endpoint_was_disabled_mid_run_is_still_logged(
    schema: tuple[Pool, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivering, "MARK_SECONDS", 3600.0)
    pool, _ = schema
    loop = asyncio.get_running_loop()
    with WebhookReceiver(keep_alive=True) as receiver:
        receiver.secrets["/off"] = SECRET
        receiver.refuse_subjects.add("no")
        endpoint = await queued_endpoint(pool, receiver.url("/off"), ["ok0", "no"])
        disabled = "UPDATE webhook_endpoints SET enabled = false WHERE endpoint_id = $1"

        def disable() -> None:  # as ok0 arrives
            changed = pool.execute(disabled, endpoint.endpoint_id)
            asyncio.run_coroutine_threadsafe(changed, loop).result(timeout=10)
            del receiver.on_receipt["/off"]

        receiver.on_receipt["/off"] = disable
        await serve(pool, endpoint)
    rows = await pool.fetch(
        """SELECT d.status, d.attempts, d.last_status_code
           FROM webhook_deliveries d ORDER BY d.position"""
    )
    assert [tuple(row) for row in rows] == [("delivered", 1, 200), ("pending", 1, 500)]


async def test_a_redelivery_asked_for_during_a_failing_attempt_is_not_put_off(
    schema: tuple[Pool, str],
) -> None:
    """The failure's backoff does not overrule the partner's request: the delivery is due at
    once (the retry would otherwise wait at least half the initial delay, 2.5 s)."""
    pool, _ = schema
    loop = asyncio.get_running_loop()
    with WebhookReceiver(keep_alive=True) as receiver:
        receiver.secrets["/retry"] = SECRET
        receiver.refuse_subjects.add("r0")
        endpoint = await queued_endpoint(pool, receiver.url("/retry"), ["r0"])
        head = await pool.fetchval(
            "SELECT delivery_id FROM webhook_deliveries WHERE endpoint_id = $1",
            endpoint.endpoint_id,
        )

        def as_r0_arrives() -> None:  # before it is answered 500
            redeliver_from_receiver(pool, loop, endpoint, head)
            del receiver.on_receipt["/retry"]

        receiver.on_receipt["/retry"] = as_r0_arrives
        await serve(pool, endpoint)
    row = await pool.fetchrow(
        """SELECT status, attempts, last_status_code, next_attempt_at <= now() AS due
           FROM webhook_deliveries WHERE delivery_id = $1""",
        head,
    )
    assert row is not None
    assert tuple(row) == ("pending", 1, 500, True)


async def test_the_endpoints_due_longest_are_claimed_first_and_idle_ones_never(
    schema: tuple[Pool, str],
) -> None:
    pool, _ = schema
    owner = uuid.uuid4()
    await queued_endpoint(pool, "http://127.0.0.1:9/idle", [])  # nothing queued: never claimed
    waiting = {}
    for name, seconds_ago in (("a", 1), ("b", 3), ("c", 2)):
        endpoint = await queued_endpoint(pool, f"http://127.0.0.1:9/{name}", [name])
        await pool.execute(
            """UPDATE webhook_deliveries SET next_attempt_at = now() - make_interval(secs => $2)
               WHERE endpoint_id = $1""",
            endpoint.endpoint_id,
            seconds_ago,
        )
        waiting[endpoint.endpoint_id] = name
    # A head waiting for its retry holds back the due delivery behind it: not claimed either.
    backing_off = await queued_endpoint(pool, "http://127.0.0.1:9/d", ["d0", "d1"])
    await pool.execute(
        """UPDATE webhook_deliveries SET next_attempt_at = now() + interval '1 hour'
           WHERE endpoint_id = $1 AND position = 0""",
        backing_off.endpoint_id,
    )
    claimed = [
        [waiting[e.endpoint_id] for e in await claim_endpoints(pool, owner, 1, 60.0)]
        for _ in range(4)
    ]
    # Each leased once; neither the idle one nor the one backing off.
    assert claimed == [["b"], ["c"], ["a"], []]


async def test_recording_a_runs_successes_keeps_one_plan_across_runs(
    infra: Infra, schema: tuple[Pool, str]
) -> None:
    """Postgres plans the statement that records a run's successes once and keeps the plan:
    planned afresh for each run it cost as much as running it. (It plans the first five calls
    one by one, then keeps a generic plan if that is no worse; runs of different lengths must
    not tell it otherwise.)"""
    pool, role = schema
    # A table the size of a service's that has run for a while (plans depend on it).
    backlog = await queued_endpoint(pool, "http://127.0.0.1:9/never-called", [])
    await pool.execute(
        """INSERT INTO webhook_deliveries (delivery_id, endpoint_id, partner_id, position,
               message_id, event_type, payload, status)
           SELECT gen_random_uuid(), $1, $2, n, gen_random_uuid(), 'notification.other', '{}',
               'delivered'
           FROM generate_series(1, 20000) AS n""",
        backlog.endpoint_id,
        backlog.partner_id,
    )
    # Statistics now, not from autovacuum in the middle of the calls (a plan is rebuilt then).
    admin = await asyncpg.connect(infra.admin_dsn)
    try:
        await admin.execute(f'ANALYZE "{role.removesuffix("_svc")}".webhook_deliveries')
    finally:
        await admin.close()
    for run in range(8):
        subjects = [f"s{run}-{n}" for n in range(run % 3 + 1)]
        endpoint = await queued_endpoint(pool, "http://127.0.0.1:9/never-called", subjects)
        due = await webhook_repository.due_run(pool, endpoint.endpoint_id, len(subjects))
        attempts = [
            webhook_repository.Attempt(
                row["delivery_id"], 1, now(), 200, None, 5, row["next_attempt_at"]
            )
            for row in due
        ]
        assert await webhook_repository.delivered(
            pool, endpoint.endpoint_id, endpoint.url, attempts
        )
    # One connection (max_size=1): its prepared statements are the ones the calls used.
    plans = await pool.fetchrow(
        """SELECT generic_plans, custom_plans FROM pg_prepared_statements
           WHERE statement LIKE 'WITH done AS%'"""
    )
    assert (plans["custom_plans"], plans["generic_plans"]) == (5, 3)


async def delivery_pages(pool: Pool) -> dict[uuid.UUID, int]:
    """Each delivery's heap page."""
    rows = await pool.fetch(
        "SELECT delivery_id, (ctid::text::point)[0]::int AS page FROM webhook_deliveries"
    )
    return {row["delivery_id"]: row["page"] for row in rows}


async def test_a_delivered_row_stays_on_its_page(schema: tuple[Pool, str]) -> None:
    """The mark writes each delivery's new version on the delivery's own page, so its WAL is
    the changed bytes, not the payload again (migration 0005 leaves half of each page for it)."""
    pool, _ = schema
    bulky = [f"{n}-{'x' * 800}" for n in range(30)]  # about the chain's 0.9 kB rows
    with WebhookReceiver(keep_alive=True) as receiver:
        receiver.secrets["/pages"] = SECRET
        endpoint = await queued_endpoint(pool, receiver.url("/pages"), bulky)
        written = await delivery_pages(pool)
        await serve(pool, endpoint)
        assert len(receiver.at("/pages")) == 30
    delivered = "SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'"
    assert await pool.fetchval(delivered) == 30
    assert await delivery_pages(pool) == written


async def test_deliveries_are_named_in_the_order_they_are_queued(schema: tuple[Pool, str]) -> None:
    """A delivery's id is time-ordered (UUIDv7, migration 0006), so the deliveries' and the
    attempts' keys grow at their right edge instead of touching a random index page each."""
    pool, _ = schema
    endpoint = await queued_endpoint(pool, "https://hooks.example.com/ids", [])
    batches: list[list[uuid.UUID]] = []
    for batch in range(3):
        async with pool.acquire() as conn, conn.transaction():
            messages = [filed_for(endpoint.partner_id, 10 * batch + n) for n in range(4)]
            assert await webhook_repository.enqueue(conn, messages) == 4
        rows = await pool.fetch(
            "SELECT delivery_id FROM webhook_deliveries WHERE position >= $1", 10 * batch
        )
        batches.append([row["delivery_id"] for row in rows])
    assert {delivery_id.version for batch in batches for delivery_id in batch} == {7}
    # Each batch's ids come after the batch before's: their clock part (milliseconds) is
    # compared; within a statement rows take the clock in whatever order it makes them.
    millis = [[delivery_id.int >> 80 for delivery_id in batch] for batch in batches]
    for earlier, later in itertools.pairwise(millis):
        assert max(earlier) <= min(later)
    assert abs(millis[-1][0] - now().timestamp() * 1000) < 60_000


def filed_for(partner_id: str, position: int) -> Filed:
    return Filed(position, partner_message(partner_id, f"message {position}"))
