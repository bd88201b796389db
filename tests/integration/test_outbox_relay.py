"""Outbox + relay against real Kafka and Postgres: nothing lost, order kept, duplicates absorbed."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import ProducerClosed

from shared.consumer import Outcome
from shared.dlq import parked_rows
from shared.events import Envelope
from shared.outbox import OutgoingEvent, make_producer
from shared.relay import OutboxRelay, Settled
from shared.topics import Topic, TopicLayout
from tests.support.counter import Components, CounterIncremented, counter_consumer
from tests.support.infra import statements_sent
from tests.support.kafka import new_topic, read_records
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


class CrashBeforeMark(Exception):
    """Stands for the relay process dying after Kafka acked but before Postgres was updated."""


async def test_event_committed_before_a_crash_is_published_after_restart(
    components: Components,
) -> None:
    topic = await new_topic(components.infra.kafka, components.service.schema)
    # The service commits its state change + event, then "crashes" before any relay ran.
    async with components.pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO counters VALUES ('c', 0)")
        sent = await components.outbox.publish(
            conn, topic, CounterIncremented(counter="c", by=1), subject="c"
        )

    # A relay that publishes, then dies before marking the rows published.
    class CrashingRelay(OutboxRelay):
        async def _settle(self, conn: object, *settled: object) -> None:
            raise CrashBeforeMark

    with pytest.raises(CrashBeforeMark):
        await components.relay(CrashingRelay).publish_pending()
    assert (
        await components.pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        == 1
    )

    # Restart: a fresh relay publishes it again and marks it.
    assert await components.relay().publish_pending() == 1
    assert (
        await components.pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        == 0
    )

    records = await read_records(components.infra.kafka, topic.name, count=2)
    assert len(records) == 2  # at-least-once on the wire ...
    assert {json.loads(r.value)["id"] for r in records} == {str(sent.id)}

    # ... exactly once as seen by an idempotent consumer.
    consumer = counter_consumer(components, topic)
    outcomes = [await consumer.process(r) for r in records]
    assert outcomes == [Outcome.PROCESSED, Outcome.DUPLICATE]
    assert await components.pool.fetchval("SELECT value FROM counters WHERE name = 'c'") == 1


async def test_each_record_carries_its_cloudevents_attributes_and_trace_as_headers(
    components: Components,
) -> None:
    """Binary-mode CloudEvents headers, from the envelope: an event continuing a consumed
    event's span carries that span's trace; one without a trace in progress carries none."""
    # One partition: the two records are read back in the order they were written.
    topic = await new_topic(components.infra.kafka, components.service.schema, partitions=1)
    cause = Envelope.wrap(CounterIncremented(counter="c", by=1), source="pollinate/t", subject="c")
    span = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    events = [
        OutgoingEvent(topic, CounterIncremented(counter="c", by=2), "c", cause=cause),
        OutgoingEvent(topic, CounterIncremented(counter="d", by=3), "d"),
    ]
    async with components.pool.acquire() as conn, conn.transaction():
        sent = await components.outbox.publish_many(conn, events, {cause.id: span})
    # The row keeps its trace alone: the relay makes the rest from its columns.
    stored = await components.pool.fetch(
        "SELECT headers, traceparent FROM outbox ORDER BY position"
    )
    assert [(row["headers"], row["traceparent"]) for row in stored] == [(None, span), (None, None)]
    assert await components.relay().publish_pending() == 2

    records = await read_records(components.infra.kafka, topic.name, count=2)
    expected = [
        {
            "content-type": b"application/cloudevents+json",
            "ce_id": str(envelope.id).encode(),
            "ce_type": b"test.counter_incremented.v1",
            "ce_source": components.outbox.source.encode(),
        }
        for envelope in sent
    ]
    expected[0]["traceparent"] = span.encode()
    assert [dict(r.headers) for r in records] == expected
    assert [json.loads(r.value)["traceparent"] for r in records] == [span, None]


async def test_per_aggregate_order_holds_with_two_relays(components: Components) -> None:
    topic = await new_topic(components.infra.kafka, components.service.schema, partitions=3)
    aggregates, per_aggregate = 12, 40
    relays = [components.relay(batch_size=25, fallback_poll_seconds=0.2) for _ in range(2)]
    tasks = [asyncio.create_task(r.run()) for r in relays]

    async def write_aggregate(name: str) -> None:
        # One transaction per event, as a service would commit them one command at a time.
        for seq in range(per_aggregate):
            async with components.pool.acquire() as conn, conn.transaction():
                await components.outbox.publish(
                    conn, topic, CounterIncremented(counter=name, by=1, seq=seq), subject=name
                )

    try:
        await asyncio.gather(*(write_aggregate(f"agg-{i}") for i in range(aggregates)))
        records = await read_records(components.infra.kafka, topic.name, aggregates * per_aggregate)
    finally:
        for r in relays:
            r.stop()
        await asyncio.gather(*tasks)

    assert len(records) == aggregates * per_aggregate
    by_key: dict[str, list[tuple[int, int, int]]] = {}
    for r in records:
        body = json.loads(r.value)
        by_key.setdefault(r.key.decode(), []).append((r.partition, r.offset, body["data"]["seq"]))
    assert len(by_key) == aggregates
    for key, entries in by_key.items():
        assert len({p for p, _, _ in entries}) == 1, f"{key} spread over partitions"
        in_offset_order = [seq for _, _, seq in sorted(entries)]
        assert in_offset_order == list(range(per_aggregate)), f"{key} out of order"
    # Both relays were live; the advisory lock let only one publish each batch.
    assert sum(r.published_total for r in relays) == aggregates * per_aggregate


async def test_record_batches_put_each_key_where_send_would_in_outbox_order(
    components: Components,
) -> None:
    """The relay builds its own record batches per partition (aiokafka's batch API): each key
    must land on the partition a plain send() gives it (what every producer of the key agrees
    on, and what the relay used before), in outbox order across several full batches."""
    topic = await new_topic(components.infra.kafka, components.service.schema, partitions=3)
    beside = await new_topic(components.infra.kafka, components.service.schema, partitions=3)
    keys, events = [f"key-{i}" for i in range(30)], 400
    async with components.pool.acquire() as conn, conn.transaction():
        for n in range(events):  # ~130 kB per partition: about nine 16 kB batches each
            await components.outbox.publish_raw(
                conn,
                topic_name=topic.name,
                key=keys[n % len(keys)],
                event_id=uuid.uuid4(),
                event_type="test.padded",
                value=json.dumps({"n": n, "pad": "x" * 900}).encode(),
                headers={"n": str(n)},
            )
    for key in keys:
        await components.producer.send(beside.name, value=b"", key=key.encode())
    await components.producer.flush()

    relay = components.relay(batch_size=events)
    assert await relay.publish_pending() == events

    records = await read_records(components.infra.kafka, topic.name, events)
    where_send_puts = {
        r.key.decode(): r.partition
        for r in await read_records(components.infra.kafka, beside.name, len(keys))
    }
    assert len(records) == events
    assert len(set(where_send_puts.values())) == 3  # the keys do spread
    by_key: dict[str, list[tuple[int, int]]] = {}
    for r in records:
        assert r.partition == where_send_puts[r.key.decode()], r.key
        assert dict(r.headers)["n"] == str(json.loads(r.value)["n"]).encode()
        by_key.setdefault(r.key.decode(), []).append((r.offset, json.loads(r.value)["n"]))
    for key, entries in by_key.items():
        in_offset_order = [n for _, n in sorted(entries)]
        assert in_offset_order == sorted(in_offset_order), f"{key} out of order"
        assert len(in_offset_order) == len(range(keys.index(key), events, len(keys)))


async def test_the_relay_stamps_commit_and_acknowledgement_times(components: Components) -> None:
    """The relay lag is measured from the writer's commit to Kafka's ack: both are stamped."""
    topic = await new_topic(components.infra.kafka, components.service.schema)
    async with components.pool.acquire() as conn, conn.transaction():
        await components.outbox.publish(
            conn, topic, CounterIncremented(counter="lag", by=1), subject="lag"
        )
        # A long transaction (its commit well after its start): the state under test, not a
        # wait for something to happen.
        await conn.execute("SELECT pg_sleep(0.05)")
    relay = components.relay()
    assert await relay.publish_pending() == 1

    row = await components.pool.fetchrow(
        "SELECT created_at, committed_at, published_at FROM outbox WHERE topic = $1", topic.name
    )
    assert row["committed_at"] is not None, "the local stack runs with track_commit_timestamp"
    assert row["created_at"] < row["committed_at"] <= row["published_at"]
    assert (row["committed_at"] - row["created_at"]).total_seconds() >= 0.05


async def test_the_outbox_is_vacuumed_small_and_often_with_its_indexes(
    components: Components,
) -> None:
    """The outbox is vacuumed once 2% of it is dead, index pass included (shared migration
    0009): a day of published rows' old versions (HOT since 0013, pruned on their pages)."""
    options = await components.pool.fetchval(
        "SELECT reloptions FROM pg_class WHERE oid = 'outbox'::regclass"
    )
    assert set(options or []) >= {
        "autovacuum_vacuum_scale_factor=0.02",
        "autovacuum_vacuum_threshold=1000",
        "vacuum_index_cleanup=on",
    }


async def test_purge_removes_only_rows_published_longer_ago_than_the_retention(
    components: Components,
) -> None:
    topic = await new_topic(components.infra.kafka, components.service.schema)
    async with components.pool.acquire() as conn, conn.transaction():
        for name in ("published-long-ago", "never-published", "published-now"):
            await components.outbox.publish(
                conn, topic, CounterIncremented(counter=name, by=1), subject=name
            )
        # Written two hours ago (the unpublished one too: age alone never purges a row).
        await conn.execute("UPDATE outbox SET created_at = created_at - interval '2 hours'")
    relay = components.relay(retention_hours=1.0)
    async with components.pool.acquire() as conn:
        positions = {
            r["message_key"]: r["position"]
            for r in await conn.fetch("SELECT message_key, position FROM outbox")
        }
        async with conn.transaction():
            marked = [positions["published-long-ago"], positions["published-now"]]
            entries = {e[0] for e in await conn.fetch("SELECT first_position FROM outbox_pending")}
            await relay._settle(conn, Settled(marked, []), [], entries)
        await conn.execute(
            "UPDATE outbox SET published_at = published_at - interval '2 hours'"
            " WHERE message_key = 'published-long-ago'"
        )
    assert await relay.purge_published() == 1
    left = {r["message_key"] for r in await components.pool.fetch("SELECT message_key FROM outbox")}
    assert left == {"never-published", "published-now"}
    # The unpublished one is still there to publish, and is kept for the retention after.
    assert await relay.publish_pending() == 1
    assert await relay.purge_published() == 0


async def test_a_purge_deletes_a_batch_per_transaction(components: Components) -> None:
    """What expired goes in batches, each its own statement and transaction (short row locks,
    small WAL bursts), until a batch finds nothing expired."""
    topic = await new_topic(components.infra.kafka, components.service.schema)
    async with components.pool.acquire() as conn, conn.transaction():
        await components.publish_counters(conn, topic, 5)
    relay = components.relay(retention_hours=1.0)
    assert await relay.publish_pending() == 5
    await components.pool.execute("UPDATE outbox SET published_at = now() - interval '2 hours'")
    role = f"{components.service.schema}_svc"
    before = await statements_sent(components.infra, role)
    assert await relay.purge_published(batch_size=2) == 5
    assert await statements_sent(components.infra, role) - before == 4  # 2 + 2 + 1 + 0
    assert await components.pool.fetchval("SELECT count(*) FROM outbox") == 0
    with pytest.raises(ValueError, match="at least one row"):  # LIMIT 0 would never end
        await relay.purge_published(batch_size=0)


async def test_a_row_kafka_refuses_for_good_is_parked_and_the_rows_after_it_flow(
    components: Components,
) -> None:
    """A 2 MB row (over the producer's and the broker's message size) once stalled a
    service's whole event flow: the relay retried it in order forever. It is parked with its
    reason; the rows behind it are published, in order; the DLQ tool shows it."""
    topic = await new_topic(components.infra.kafka, components.service.schema)
    before, after = await _around_a_refused_row(components, topic, "p", "test.too_large", 2_000_000)

    relay = components.relay()
    assert await relay.publish_pending() == 3
    assert (relay.published_total, relay.parked_total) == (2, 1)
    assert await relay.publish_pending() == 0  # the parked row is not tried again

    records = await read_records(components.infra.kafka, topic.name, count=2)
    assert [json.loads(r.value)["id"] for r in records] == [str(before.id), str(after.id)]

    parked = await parked_rows(components.service.dsn, components.service.schema)
    assert [(row["event_type"], row["size"]) for row in parked] == [("test.too_large", 2_000_000)]
    assert parked[0]["park_reason"].startswith("MessageSizeTooLargeError")
    assert (
        await components.pool.fetchval(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL AND parked_at IS NULL"
        )
        == 0
    )


async def test_a_relay_lock_held_elsewhere_while_rows_wait_shows_as_unhealthy(
    components: Components,
) -> None:
    """Advisory locks are open to every role: whoever holds the relay's lock (another instance
    that publishes, or anything else) must not stall the outbox unnoticed."""
    topic = await new_topic(components.infra.kafka, components.service.schema)
    async with components.pool.acquire() as conn, conn.transaction():
        await components.outbox.publish(
            conn, topic, CounterIncremented(counter="c", by=1), subject="c"
        )
    relay = components.relay(stall_seconds=3600)
    holder = await asyncpg.connect(components.infra.admin_dsn)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", relay._lock_key)
        assert await relay.publish_pending() is None
        assert not relay.stalled  # the row has not waited an hour
        relay.stall_seconds = 0.0  # (not a short wait: a busy machine overran 0.2 s)

        async def stall_seen() -> bool:
            await relay.publish_pending()
            return relay.stalled

        await eventually(stall_seen, 10, what="the relay to report the stall", every=0.1)
    finally:
        await holder.execute("SELECT pg_advisory_unlock_all()")
        await holder.close()
    assert await relay.publish_pending() == 1
    assert not relay.stalled


async def test_the_leader_keeps_the_lock_between_batches_and_a_standby_takes_over_when_it_dies(
    components: Components,
) -> None:
    """The leader holds the relay's lock for its session, not a batch's transaction: a standby
    publishes nothing while the leader lives, and takes over once its session is gone (here
    ended by the server, as when the leader's process dies and its socket closes)."""
    topic = await new_topic(components.infra.kafka, components.service.schema)
    leader, standby = components.relay(), components.relay()
    await _commit_increment(components, topic, 1)
    assert await leader.publish_pending() == 1
    await _commit_increment(components, topic, 2)
    assert await standby.publish_pending() is None  # the leader is between batches
    assert await leader.publish_pending() == 1
    await _commit_increment(components, topic, 3)
    assert leader._conn is not None
    admin = await asyncpg.connect(components.infra.admin_dsn)
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", leader._conn.get_server_pid())
    finally:
        await admin.close()
    await _hands_over(leader, standby)
    records = await read_records(components.infra.kafka, topic.name, count=3)
    assert [json.loads(r.value)["data"]["seq"] for r in records] == [1, 2, 3]


async def test_a_leader_gone_silent_loses_the_lead_after_lead_idle_seconds(
    components: Components,
) -> None:
    """A leader whose host died or was cut off never closes its socket; the server ends a
    session idle past lead_idle_seconds (a live leader polls every fallback_poll_seconds), so
    the lock frees and a standby takes over."""
    topic = await new_topic(components.infra.kafka, components.service.schema)
    leader = components.relay(fallback_poll_seconds=0.2, lead_idle_seconds=3.0)
    standby = components.relay(fallback_poll_seconds=0.2, lead_idle_seconds=3.0)
    assert await leader.publish_pending() == 0  # it leads, with nothing to send
    await _commit_increment(components, topic, 1)
    assert await standby.publish_pending() is None
    # The leader goes silent: no batch, no poll.
    await _hands_over(leader, standby)


async def test_a_leader_waiting_long_for_kafka_keeps_the_lead(components: Components) -> None:
    """Kafka may take longer than lead_idle_seconds to acknowledge (aiokafka retries a batch
    until it is delivered): the leader keeps its session busy meanwhile, so no standby sends
    the same rows while it still waits to mark them."""
    topic = await new_topic(components.infra.kafka, components.service.schema)
    acknowledged = asyncio.Event()

    class SlowToAcknowledge(OutboxRelay):
        async def _send(self, rows: Sequence[asyncpg.Record]) -> Settled:
            settled = await super()._send(rows)
            await acknowledged.wait()  # the acknowledgement, arriving late
            return settled

    leader = components.relay(SlowToAcknowledge, fallback_poll_seconds=0.2, lead_idle_seconds=1.0)
    standby = components.relay(fallback_poll_seconds=0.2, lead_idle_seconds=1.0)
    assert await leader.publish_pending() == 0  # it leads, with nothing to send yet
    await _commit_increment(components, topic, 1)
    leading = asyncio.create_task(leader.publish_pending())
    # Three times the idle limit, the standby trying all the while, between tries the leader
    # still waiting for its acknowledgement (not failed).
    until = time.monotonic() + 3.0
    while time.monotonic() < until:
        assert await standby.publish_pending() is None
        assert not (await asyncio.wait({leading}, timeout=0.1))[0]
    acknowledged.set()
    assert await leading == 1
    assert standby.published_total == 0


async def test_a_relay_stopped_while_kafka_does_not_acknowledge_ends_and_leaves_the_rows(
    components: Components,
) -> None:
    """Stopping (SIGTERM) while a batch waits for acknowledgements that do not come (Kafka
    unreachable: aiokafka retries it) ends the relay after its grace; the rows stay unmarked,
    and the next leader publishes them."""
    sending = asyncio.Event()

    class NeverAcknowledged(OutboxRelay):
        async def _send(self, rows: Sequence[asyncpg.Record]) -> Settled:
            sending.set()
            await asyncio.Event().wait()  # no acknowledgement, ever
            raise AssertionError("unreachable")

    stuck = components.relay(NeverAcknowledged, fallback_poll_seconds=0.2, stop_grace_seconds=0.2)
    assert await _stopped_mid_batch(components, stuck, sending) == 1
    assert stuck.published_total == 0


async def test_a_relay_stopped_while_its_batch_is_acknowledged_marks_the_rows(
    components: Components,
) -> None:
    """A stop (a rolling restart) while Kafka is acknowledging the batch waits for the
    acknowledgement and marks the rows: the next leader does not send them again."""
    sending = asyncio.Event()
    acknowledged = asyncio.Event()

    class AcknowledgedDuringTheStop(OutboxRelay):
        async def _send(self, rows: Sequence[asyncpg.Record]) -> Settled:
            settled = await super()._send(rows)
            sending.set()
            await acknowledged.wait()  # Kafka's acknowledgement, arriving after the stop
            return settled

    stopped = components.relay(AcknowledgedDuringTheStop, fallback_poll_seconds=0.2)

    async def acknowledge_once_stopping(running: asyncio.Task[None]) -> None:
        # Still waiting for the acknowledgement, not ended by the stop.
        assert not (await asyncio.wait({running}, timeout=0.1))[0]
        acknowledged.set()

    assert await _stopped_mid_batch(components, stopped, sending, acknowledge_once_stopping) == 0
    assert stopped.published_total == 1


async def _stopped_mid_batch(
    components: Components,
    relay: OutboxRelay,
    sending: asyncio.Event,
    after_stop: Callable[[asyncio.Task[None]], Awaitable[None]] | None = None,
) -> int:
    """Commit one event, run `relay` until its batch is being sent (`sending`), stop it
    (then `after_stop`) and wait for it to end (the bound only turns a hang into a failure);
    then how many rows the next leader publishes."""
    topic = await new_topic(components.infra.kafka, components.service.schema)
    await _commit_increment(components, topic, 1)
    running = asyncio.create_task(relay.run())
    await asyncio.wait_for(sending.wait(), 10)
    relay.stop()
    if after_stop is not None:
        await after_stop(running)
    await asyncio.wait_for(running, 5)
    successor = components.relay()
    try:
        return await successor.publish_pending() or 0
    finally:
        await successor.close()


async def test_a_producer_that_refuses_every_send_is_replaced(components: Components) -> None:
    """A producer whose sender is gone (here: stopped) raises on every send; the relay
    replaces it, as after a failed delivery, instead of retrying on it for ever."""
    topic = await new_topic(components.infra.kafka, components.service.schema)
    dead = make_producer(components.infra.kafka, "test-relay-dead")
    await dead.start()
    await dead.partitions_for(topic.name)  # the topic's metadata, kept after the stop
    await dead.stop()
    fresh: list[AIOKafkaProducer] = []

    def new_producer() -> AIOKafkaProducer:
        fresh.append(make_producer(components.infra.kafka, "test-relay-fresh"))
        return fresh[-1]

    relay = components.relay(producer=dead, new_producer=new_producer)
    await _commit_increment(components, topic, 1)
    try:
        with pytest.raises(ProducerClosed):
            await relay.publish_pending()
        assert await relay.publish_pending() == 1
        assert relay.producers_renewed == 1
    finally:
        for producer in fresh:
            await producer.stop()
    records = await read_records(components.infra.kafka, topic.name, count=1)
    assert [json.loads(r.value)["data"]["seq"] for r in records] == [1]


def test_a_lead_idle_time_within_the_fallback_poll_is_refused(components: Components) -> None:
    with pytest.raises(ValueError, match="lead_idle_seconds"):
        components.relay(fallback_poll_seconds=1.0, lead_idle_seconds=1.0)


async def _commit_increment(components: Components, topic: Topic, seq: int) -> None:
    async with components.pool.acquire() as conn, conn.transaction():
        await components.outbox.publish(
            conn, topic, CounterIncremented(counter="c", by=1, seq=seq), subject="c"
        )


async def _around_a_refused_row(
    components: Components, topic: Topic, key: str, refused_type: str, refused_size: int
) -> tuple[Envelope[Any], Envelope[Any]]:
    """Three rows for `key` in one transaction: an increment, a raw row of `refused_size`
    bytes (one Kafka refuses), another increment; the two increments' envelopes."""
    async with components.pool.acquire() as conn, conn.transaction():
        before = await components.outbox.publish(
            conn, topic, CounterIncremented(counter=key, by=1), subject=key
        )
        await components.outbox.publish_raw(
            conn,
            topic_name=topic.name,
            key=key,
            event_id=uuid.uuid4(),
            event_type=refused_type,
            value=b"x" * refused_size,
            headers={},
        )
        after = await components.outbox.publish(
            conn, topic, CounterIncremented(counter=key, by=2), subject=key
        )
    assert before is not None
    assert after is not None
    return before, after


async def _hands_over(leader: OutboxRelay, standby: OutboxRelay) -> None:
    """The standby publishes the waiting row, then the old leader finds it leads no more."""

    async def standby_publishes() -> bool:
        return await standby.publish_pending() == 1

    await eventually(standby_publishes, 20, what="the standby to take the lead", every=0.1)
    await eventually(lambda: _stands_by(leader), 20, what="the old leader to stand by", every=0.1)


async def _stands_by(relay: OutboxRelay) -> bool:
    """The relay's next batch finds another leader (its first may still meet its ended
    session: that batch fails, and gives up the connection)."""
    try:
        return await relay.publish_pending() is None
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return False


async def test_after_the_broker_refuses_a_batch_a_fresh_producer_sends_the_rows_behind_it(
    components: Components,
) -> None:
    """An idempotent producer numbers a partition's batches when it sends them: one the broker
    then refuses (here over the topic's own size limit; on a cluster, a batch that expired
    while too few replicas were in sync) leaves a gap, and every later batch on the partition
    was answered OutOfOrderSequenceNumber for ever: after a whole-cluster restart no event of
    the service flowed again. The relay replaces its producer and the rows behind flow."""
    topic = Topic(
        f"test.{uuid.uuid4().hex[:12]}", components.service.schema, "aggregate id", 1, "test"
    )
    layout = TopicLayout.from_env(os.environ)
    admin = AIOKafkaAdminClient(**components.infra.kafka.aiokafka_options())
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    topic.name,
                    num_partitions=1,
                    replication_factor=layout.replication_factor,
                    topic_configs={**layout.configs(topic), "max.message.bytes": "4096"},
                )
            ]
        )
    finally:
        await admin.close()
    before, after = await _around_a_refused_row(
        components,
        topic,
        "g",
        "test.over_the_topic_limit",
        20_000,  # under the producer's limit, over the topic's
    )

    relay = components.relay(
        batch_size=1,  # one row per batch: the refused one is a batch of its own
        new_producer=lambda: make_producer(components.infra.kafka, "test-relay-renewed"),
    )
    try:
        assert await relay.publish_pending() == 1
        assert await relay.publish_pending() == 1  # refused by the broker: parked
        assert relay.parked_total == 1
        assert await relay.publish_pending() == 1  # the row behind it, by a fresh producer
        assert relay.producers_renewed == 1
    finally:
        await relay.close()
        if relay.producer is not components.producer:
            await relay.producer.stop()
    records = await read_records(components.infra.kafka, topic.name, count=2)
    assert [json.loads(r.value)["id"] for r in records] == [str(before.id), str(after.id)]
