"""The idempotent consumer on a real FastStream/Kafka subscription: redelivery, dead letters,
replay, and trace propagation across the hop."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, cast

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.producer import message_accumulator
from aiokafka.producer import producer as producer_module
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy as PythonBatchBuilder
from faststream.kafka import KafkaBroker
from opentelemetry import trace

from services.incentives.domain.earnings import money
from shared import dead_lettering
from shared.consumer import EventConsumer, HandlerContext, Outcome
from shared.db import Connection
from shared.dead_lettering import DLQ_ORIGIN_OFFSET, DLQ_ORIGIN_TOPIC, DLQ_REASON
from shared.events import Envelope, EventPayload, InvalidEvent, event_type
from shared.metrics import ConsumerFigures, Scrape, ServiceMetrics
from shared.outbox import OutgoingEvent
from shared.provisions import Provisions
from shared.subscriber import poll_without_idle_sleep
from shared.topics import Topic, dead_letter_topic, ensure_topics
from shared.tracing import current_traceparent
from tests.support.counter import Components, CounterIncremented, counter_consumer
from tests.support.kafka import new_topic, read_records, reader_from_the_start, replay
from tests.support.outbox import event_json
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


class OutcomeWaiter:
    """Collects a consumer's outcomes and lets a test await the next n of them."""

    def __init__(self, consumer: EventConsumer) -> None:
        self.queue: asyncio.Queue[tuple[Outcome, Any]] = asyncio.Queue()
        consumer.observers.append(lambda outcome, record: self.queue.put_nowait((outcome, record)))

    async def next(self, n: int, timeout: float = 30.0) -> list[Outcome]:
        async with asyncio.timeout(timeout):
            return [(await self.queue.get())[0] for _ in range(n)]


@pytest.fixture
async def running(
    components: Components,
) -> AsyncIterator[tuple[Topic, EventConsumer, OutcomeWaiter]]:
    """A topic, a consumer subscribed to it on a real broker, and a running outbox relay."""
    topic = await new_topic(components.infra.kafka, components.service.schema)
    await ensure_topics(components.infra.kafka, [dead_letter_topic(components.service.schema)])
    consumer = counter_consumer(components, topic)
    waiter = OutcomeWaiter(consumer)
    kafka = components.infra.kafka
    broker = KafkaBroker(kafka.hosts, security=kafka.faststream_security())
    consumer.attach(broker)
    relay = components.relay(fallback_poll_seconds=0.5)
    relay_task = asyncio.create_task(relay.run())
    await broker.start()
    yield topic, consumer, waiter
    await broker.stop()
    relay.stop()
    await relay_task


async def send_raw(components: Components, topic: Topic, value: bytes, key: bytes = b"k") -> None:
    await components.producer.send_and_wait(topic.name, value=value, key=key)


async def test_redelivering_an_event_n_times_changes_state_once(
    components: Components, running: Any
) -> None:
    topic, _, waiter = running
    event = Envelope.wrap(CounterIncremented(counter="hits", by=7), source="test", subject="hits")
    for _ in range(5):
        await send_raw(components, topic, event.to_bytes(), key=b"hits")

    assert await waiter.next(5) == [Outcome.PROCESSED] + [Outcome.DUPLICATE] * 4
    assert await components.pool.fetchval("SELECT value FROM counters WHERE name = 'hits'") == 7
    assert await components.pool.fetchval("SELECT count(*) FROM inbox") == 1


async def test_invalid_events_are_dead_lettered_with_reason_and_replayed_after_a_fix(
    components: Components, running: Any
) -> None:
    topic, _, waiter = running
    bootstrap = components.infra.kafka
    schema = components.service.schema
    await send_raw(components, topic, b"{this is not json")
    bad_amount = Envelope.wrap(
        CounterIncremented(counter="a", by=1), source="test", subject="k"
    ).model_dump(mode="json")
    bad_amount["data"]["by"] = -3
    await send_raw(components, topic, json.dumps(bad_amount).encode())
    unknown_partner = Envelope.wrap(
        CounterIncremented(counter="p", by=2, partner_id="p-9"), source="test", subject="k"
    )
    await send_raw(
        components, topic, unknown_partner.to_bytes()
    )  # same key: same partition, in order
    # The consumer keeps going after poison messages.
    good = Envelope.wrap(CounterIncremented(counter="g", by=1), source="test", subject="k")
    await send_raw(components, topic, good.to_bytes())

    assert await waiter.next(4) == [Outcome.DEAD_LETTERED] * 3 + [Outcome.PROCESSED]
    assert await components.pool.fetchval("SELECT value FROM counters WHERE name = 'g'") == 1

    letters = await read_records(bootstrap, dead_letter_topic(schema).name, 3)
    assert len(letters) == 3
    reasons = [dict(letter.headers)[DLQ_REASON].decode() for letter in letters]
    assert reasons[0].startswith("malformed CloudEvents envelope")
    assert (
        reasons[1]
        == "invalid test.counter_incremented.v1 payload: by: Input should be greater than 0"
    )
    assert reasons[2] == "rejected by handler: unknown partner 'p-9'"
    origins = [
        (dict(x.headers)[DLQ_ORIGIN_TOPIC].decode(), int(dict(x.headers)[DLQ_ORIGIN_OFFSET]))
        for x in letters
    ]
    assert origins == [(topic.name, 0), (topic.name, 1), (topic.name, 2)]

    # The fix: the partner becomes known. Replay every dead letter once.
    await components.pool.execute("INSERT INTO known_partners VALUES ('p-9')")
    # A letter whose origin header names a topic the service does not consume is refused.
    assert await replay(bootstrap, schema, {x.offset for x in letters}, origins={"other.v1"}) == []
    replayed = await replay(bootstrap, schema, origins={topic.name})
    assert len(replayed) == 3
    outcomes = await waiter.next(3)
    assert sorted(outcomes) == sorted(
        [Outcome.DEAD_LETTERED, Outcome.DEAD_LETTERED, Outcome.PROCESSED]
    )
    assert await components.pool.fetchval("SELECT value FROM counters WHERE name = 'p'") == 2
    # Replay remembers its progress: nothing new to replay except what failed again.
    again = await read_records(bootstrap, dead_letter_topic(schema).name, 5)
    assert len(again) == 5
    assert len(await replay(bootstrap, schema, origins={topic.name})) == 2


async def test_trace_started_at_the_first_hop_continues_in_the_consumer(
    components: Components, running: Any, span_exporter: Any
) -> None:
    topic, _, waiter = running
    with trace.get_tracer("test").start_as_current_span("register deal") as first_hop:
        async with components.pool.acquire() as conn, conn.transaction():
            await components.outbox.publish(
                conn, topic, CounterIncremented(counter="t", by=1, seq=1), subject="t"
            )
    first_trace = format(first_hop.get_span_context().trace_id, "032x")

    assert await waiter.next(1) == [Outcome.PROCESSED]
    assert (
        await components.pool.fetchval("SELECT trace_id FROM seen WHERE aggregate = 't'")
        == first_trace
    )
    consume_spans = [
        s for s in span_exporter.get_finished_spans() if s.name == f"consume {topic.name}"
    ]
    assert consume_spans
    assert consume_spans[-1].parent.span_id == first_hop.get_span_context().span_id


async def test_a_batch_commits_its_good_records_and_parks_its_poison_one(
    components: Components,
) -> None:
    """One transaction per batch, a savepoint per record: the poison record's effects and
    inbox row are rolled back alone, and it is dead-lettered in the same commit."""
    topic = await new_topic(components.infra.kafka, components.service.schema)
    consumer = counter_consumer(components, topic)
    good = Envelope.wrap(CounterIncremented(counter="batch", by=2), source="t", subject="b")
    poison = Envelope.wrap(
        CounterIncremented(counter="batch", by=100, partner_id="nobody"), source="t", subject="b"
    )
    later = Envelope.wrap(CounterIncremented(counter="batch", by=3), source="t", subject="b")
    for envelope in (good, poison, later, good):
        await send_raw(components, topic, envelope.to_bytes(), key=b"b")
    records = await read_records(components.infra.kafka, topic.name, 4)

    outcomes = await consumer.process_batch(records)

    assert outcomes == [
        Outcome.PROCESSED,
        Outcome.DEAD_LETTERED,
        Outcome.PROCESSED,
        Outcome.DUPLICATE,
    ]
    assert await components.pool.fetchval("SELECT value FROM counters WHERE name = 'batch'") == 5
    inbox = await components.pool.fetch("SELECT event_id FROM inbox ORDER BY kafka_offset")
    assert [r["event_id"] for r in inbox] == [good.id, later.id]  # the poison one can be replayed
    parked = await components.pool.fetchval(
        "SELECT headers->>'dlq.reason' FROM outbox WHERE message_key = 'b' AND topic LIKE '%.dlq.v1'"
    )
    assert parked == "rejected by handler: unknown partner 'nobody'"


async def test_a_type_its_topic_does_not_carry_yet_is_parked_not_skipped(
    components: Components,
) -> None:
    """Mid-upgrade, a newer producer's event type reaches a consumer that does not know it.
    Found in review: it was skipped like a type the consumer does not handle, its offset
    committed, and lost. Now a type its topic does not carry in this version is dead-lettered
    (to be replayed once upgraded); one it carries that this consumer does not handle is still
    skipped."""
    listed = "test.listed_not_handled.v1"
    created = await new_topic(components.infra.kafka, components.service.schema)
    topic = replace(created, events=(CounterIncremented.event_type, listed))
    consumer = counter_consumer(components, topic)
    good = Envelope.wrap(CounterIncremented(counter="newer", by=2), source="t", subject="n")
    body = json.loads(good.to_bytes())
    for kind in ("test.newer_thing.v2", listed):
        other = {**body, "id": str(uuid.uuid4()), "type": kind}
        await send_raw(components, topic, json.dumps(other).encode(), key=b"n")
    await send_raw(components, topic, good.to_bytes(), key=b"n")
    records = await read_records(components.infra.kafka, topic.name, 3)

    outcomes = await consumer.process_batch(records)

    assert outcomes == [Outcome.DEAD_LETTERED, Outcome.IGNORED, Outcome.PROCESSED]
    parked = await components.pool.fetchval(
        "SELECT headers->>'dlq.reason' FROM outbox WHERE message_key = 'n' AND topic LIKE '%.dlq.v1'"
    )
    assert parked == (
        "event type 'test.newer_thing.v2' is not one this version knows on its topic (a newer "
        "producer's?): replay it once this service is upgraded"
    )


async def test_batch_locks_postgres_refuses_park_the_record_not_the_partition(
    components: Components,
) -> None:
    """A key function reading what an event names (a counter called "a NUL b"): Postgres
    refuses the text, which is no transient failure and no handler's refusal. It stalled the
    partition for ever; now the batch is redone a record at a time, the record is parked with
    its reason and its neighbours are applied."""
    topic = await new_topic(components.infra.kafka, components.service.schema)
    consumer = counter_consumer(components, topic)

    @consumer.locks_first
    async def counters_named(
        conn: Connection, _: Provisions, events: list[Envelope[Any]]
    ) -> list[int]:
        names = [e.data.counter for e in events]
        return await conn.fetchval(
            "SELECT coalesce(array_agg(hashtext(name)), '{}') FROM counters WHERE name = ANY($1::text[])",
            names,
        )

    good = Envelope.wrap(CounterIncremented(counter="locked", by=2), source="t", subject="l")
    poison = Envelope.wrap(CounterIncremented(counter="a\x00b", by=5), source="t", subject="l")
    later = Envelope.wrap(CounterIncremented(counter="locked", by=3), source="t", subject="l")
    for envelope in (good, poison, later):
        await send_raw(components, topic, envelope.to_bytes(), key=b"l")
    records = await read_records(components.infra.kafka, topic.name, 3)

    outcomes = await consumer.process_batch(records)

    assert outcomes == [Outcome.PROCESSED, Outcome.DEAD_LETTERED, Outcome.PROCESSED]
    assert await components.pool.fetchval("SELECT value FROM counters WHERE name = 'locked'") == 5
    parked = await components.pool.fetchval(
        "SELECT headers->>'dlq.reason' FROM outbox WHERE message_key = 'l' AND topic LIKE '%.dlq.v1'"
    )
    assert "CharacterNotInRepertoireError" in parked


async def test_a_clean_batch_takes_the_fast_path_and_still_applies_a_repeat_once(
    components: Components,
) -> None:
    topic = await new_topic(components.infra.kafka, components.service.schema)
    consumer = counter_consumer(components, topic)
    first = Envelope.wrap(CounterIncremented(counter="fast", by=4), source="t", subject="f")
    second = Envelope.wrap(CounterIncremented(counter="fast", by=5), source="t", subject="f")
    for envelope in (first, first, second):
        await send_raw(components, topic, envelope.to_bytes(), key=b"f")
    records = await read_records(components.infra.kafka, topic.name, 3)

    assert await consumer.process_batch(records) == [
        Outcome.PROCESSED,
        Outcome.DUPLICATE,
        Outcome.PROCESSED,
    ]
    assert await consumer.process_batch(records) == [Outcome.DUPLICATE] * 3  # redelivered
    assert await components.pool.fetchval("SELECT value FROM counters WHERE name = 'fast'") == 9


@event_type("test.counter_reset.v1")
class CounterReset(EventPayload):
    counter: str


@event_type("test.counter_echoed.v1")
class CounterEchoed(EventPayload):
    seq: int


async def set_based_consumer(
    components: Components,
) -> tuple[Topic, Topic, list[list[int]], EventConsumer]:
    """On a new topic: increments with one statement per run, echoes each event (continuing its
    trace) to the echo topic and resets one event at a time; rejects the whole run if it names
    an unknown partner. The topic, the echo topic, the runs each call got, and the consumer."""
    schema = components.service.schema
    topic = await new_topic(components.infra.kafka, schema)
    echo = Topic(f"{schema}.echo.v1", schema, "e", 1, "echoes")
    runs: list[list[int]] = []
    consumer = components.consumer("set-based", topic)

    @consumer.handles_batch(CounterIncremented)
    async def increment(ctx: HandlerContext, events: list[Envelope[CounterIncremented]]) -> None:
        runs.append([event.data.seq for event in events])
        unknown = [e.data.partner_id for e in events if e.data.partner_id == "nobody"]
        if unknown:
            raise InvalidEvent(f"unknown partner {unknown[0]!r}")
        await ctx.conn.executemany(
            """INSERT INTO counters VALUES ($1, $2)
               ON CONFLICT (name) DO UPDATE SET value = counters.value + EXCLUDED.value""",
            [(event.data.counter, event.data.by) for event in events],
        )
        await ctx.emit_all(
            [
                OutgoingEvent(echo, CounterEchoed(seq=event.data.seq), "e", cause=event)
                for event in events
            ]
        )

    @consumer.handles(CounterReset)
    async def reset(ctx: HandlerContext, event: Envelope[CounterReset]) -> None:
        runs.append([0])
        await ctx.conn.execute("UPDATE counters SET value = 0 WHERE name = $1", event.data.counter)

    return topic, echo, runs, consumer


async def test_a_set_based_handler_gets_runs_of_its_type_in_order_and_continues_each_trace(
    components: Components, span_exporter: Any
) -> None:
    bootstrap = components.infra.kafka
    topic, echo, runs, consumer = await set_based_consumer(components)
    tracer = trace.get_tracer("test")
    events: list[Envelope[Any]] = []
    first_hops: dict[int, str] = {}
    for seq, payload in enumerate(
        [
            CounterIncremented(counter="s", by=1, seq=1),
            CounterIncremented(counter="s", by=2, seq=2),
            CounterReset(counter="s"),
            CounterIncremented(counter="s", by=3, seq=3),
            CounterIncremented(counter="s", by=4, seq=4),
        ]
    ):
        with tracer.start_as_current_span(f"hop {seq}") as hop:
            envelope = Envelope.wrap(payload, source="t", subject="s")
            await components.producer.send_and_wait(
                topic.name,
                value=envelope.to_bytes(),
                key=b"s",
                headers=[("traceparent", (current_traceparent() or "").encode())],
            )
        events.append(envelope)
        first_hops[seq] = format(hop.get_span_context().trace_id, "032x")
    records = await read_records(bootstrap, topic.name, 5)

    assert await consumer.process_batch(records) == [Outcome.PROCESSED] * 5
    assert runs == [[1, 2], [0], [3, 4]]  # one call per run, the reset between them
    assert await components.pool.fetchval("SELECT value FROM counters WHERE name = 's'") == 7
    echoed = await components.pool.fetch(
        "SELECT value, value_codec, traceparent AS tp FROM outbox WHERE topic = $1 ORDER BY position",
        echo.name,
    )
    assert [event_json(row)["data"]["seq"] for row in echoed] == [1, 2, 3, 4]
    # Each echo continues the trace of the event that caused it, through its consume span.
    assert [row["tp"].split("-")[1] for row in echoed] == [
        first_hops[0],
        first_hops[1],
        first_hops[3],
        first_hops[4],
    ]
    consume_spans = {
        format(s.context.span_id, "016x"): s
        for s in span_exporter.get_finished_spans()
        if s.name == f"consume {topic.name}"
    }
    assert all(row["tp"].split("-")[2] in consume_spans for row in echoed)

    assert await consumer.process_batch(records) == [Outcome.DUPLICATE] * 5  # redelivered
    assert await components.pool.fetchval("SELECT value FROM counters WHERE name = 's'") == 7


async def test_a_failing_run_is_redone_one_event_at_a_time_and_only_the_poison_is_parked(
    components: Components,
) -> None:
    bootstrap = components.infra.kafka
    topic, echo, runs, consumer = await set_based_consumer(components)
    for seq, partner in ((1, None), (2, "nobody"), (3, None)):
        envelope = Envelope.wrap(
            CounterIncremented(counter="p", by=seq, seq=seq, partner_id=partner),
            source="t",
            subject="p",
        )
        await send_raw(components, topic, envelope.to_bytes(), key=b"p")
    records = await read_records(bootstrap, topic.name, 3)

    assert await consumer.process_batch(records) == [
        Outcome.PROCESSED,
        Outcome.DEAD_LETTERED,
        Outcome.PROCESSED,
    ]
    assert runs == [[1, 2, 3], [1], [2], [3]]  # the run failed, then each event alone
    assert await components.pool.fetchval("SELECT value FROM counters WHERE name = 'p'") == 4
    assert (
        await components.pool.fetchval("SELECT count(*) FROM outbox WHERE topic = $1", echo.name)
        == 2
    )
    parked = await components.pool.fetchval(
        "SELECT headers->>'dlq.reason' FROM outbox WHERE topic LIKE '%.dlq.v1'"
    )
    assert parked == "rejected by handler: unknown partner 'nobody'"


async def test_a_record_whose_key_is_not_its_subject_is_dead_lettered_and_its_neighbour_applied(
    components: Components, running: Any
) -> None:
    topic, _, waiter = running
    forged = Envelope.wrap(CounterIncremented(counter="x", by=5), source="test", subject="other")
    honest = Envelope.wrap(CounterIncremented(counter="y", by=1), source="test", subject="k")
    await send_raw(components, topic, forged.to_bytes())  # key b"k"
    await send_raw(components, topic, honest.to_bytes())

    assert await waiter.next(2) == [Outcome.DEAD_LETTERED, Outcome.PROCESSED]
    assert await components.pool.fetchval("SELECT value FROM counters WHERE name = 'x'") is None
    letters = await read_records(
        components.infra.kafka, dead_letter_topic(components.service.schema).name, 1
    )
    assert dict(letters[0].headers)[DLQ_REASON].decode() == (
        "record key 'k' is not the envelope subject 'other'"
    )


async def test_headers_without_a_value_neither_stall_the_consumer_nor_decide_anything(
    components: Components, running: Any
) -> None:
    """Kafka lets a header carry no value (aiokafka reads it as None), and any bytes: an outside
    producer may send either. Such a record is read by its body like any other and parked with
    its reason when it is poison, and the records behind it flow."""
    topic, _, waiter = running
    empty: list[tuple[str, bytes | None]] = [
        ("ce_type", None),
        ("traceparent", None),
        ("x", None),
        ("y", b"\xff\xfe not UTF-8"),
    ]
    good = Envelope.wrap(CounterIncremented(counter="nv", by=2), source="test", subject="k")
    for value in (b"{not json", good.to_bytes()):
        await components.producer.send_and_wait(topic.name, value=value, key=b"k", headers=empty)

    assert await waiter.next(2) == [Outcome.DEAD_LETTERED, Outcome.PROCESSED]
    assert await components.pool.fetchval("SELECT value FROM counters WHERE name = 'nv'") == 2
    letters = await read_records(
        components.infra.kafka, dead_letter_topic(components.service.schema).name, 1
    )
    headers = dict(letters[0].headers)
    assert headers[DLQ_REASON].decode().startswith("malformed CloudEvents envelope")
    assert "x" not in headers  # a header without a value is not carried into the letter
    assert headers["y"] == "\ufffd\ufffd not UTF-8".encode()


async def test_a_reply_to_header_publishes_nothing_and_the_partition_moves_on(
    components: Components, running: Any
) -> None:
    """FastStream answers a record carrying `reply_to` by publishing the handler's result there
    with its own producer, outside the outbox: to a topic the service may not write the publish
    failed after the commit and the batch came back for ever; to one it may, an empty record
    without an envelope went out. The platform's consumers answer nothing."""
    topic, _, waiter = running
    replies = await new_topic(components.infra.kafka, components.service.schema, partitions=1)
    asked = Envelope.wrap(CounterIncremented(counter="rt", by=3), source="test", subject="k")
    after = Envelope.wrap(CounterIncremented(counter="rt", by=4), source="test", subject="k")
    await components.producer.send_and_wait(
        topic.name, value=asked.to_bytes(), key=b"k", headers=[("reply_to", replies.name.encode())]
    )
    await components.producer.send_and_wait(topic.name, value=after.to_bytes(), key=b"k")

    assert await waiter.next(2) == [Outcome.PROCESSED, Outcome.PROCESSED]
    assert await components.pool.fetchval("SELECT value FROM counters WHERE name = 'rt'") == 7
    reader = reader_from_the_start(components.infra.kafka, replies.name)
    await reader.start()
    try:
        ends = await reader.end_offsets(list(reader.assignment()))
    finally:
        await reader.stop()
    assert set(ends.values()) == {0}


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
async def test_a_compressed_batch_is_read_like_any_other(
    components: Components, running: Any, codec: str
) -> None:
    """Kafka's four codecs, as a producer (or a broker's `compression.type`) may use them:
    without the codecs' library aiokafka read snappy, lz4 and zstd batches as an error, and
    the partition stopped at the first one."""
    topic, _, waiter = running
    producer = AIOKafkaProducer(**components.infra.kafka.aiokafka_options(), compression_type=codec)
    await producer.start()
    try:
        for by in (1, 2):
            event = Envelope.wrap(CounterIncremented(counter=codec, by=by), source="t", subject="z")
            await producer.send_and_wait(topic.name, event.to_bytes(), key=b"z")
    finally:
        await producer.stop()

    assert await waiter.next(2) == [Outcome.PROCESSED, Outcome.PROCESSED]
    assert await components.pool.fetchval("SELECT value FROM counters WHERE name = $1", codec) == 3


class UnreadableHeaderKey(str):
    """A header key written as bytes that are not UTF-8: Kafka carries any bytes there and
    librdkafka lets a producer send them; aiokafka's Python record builder writes what `encode`
    gives (it reads keys back as UTF-8, and fails)."""

    def encode(self, *_: Any, **__: Any) -> bytes:
        return b"\xff\xfe"


async def test_a_poll_that_fails_reading_one_partition_loses_nothing_of_another(
    components: Components, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three records on partition 0 and one aiokafka cannot read on partition 1, fetched
    together: the poll read partition 0 (moving its position past the three), failed on
    partition 1 and threw the three away; the next commit would have committed them unread.
    Now a failed poll rewinds every partition to its committed offset, is reported (the
    platform's consumer shows it as a stall) and comes out as a KafkaError, which FastStream's
    loop survives (any other error ended it)."""
    kafka = components.infra.kafka
    topic = await new_topic(kafka, components.service.schema, partitions=2)
    for module in (message_accumulator, producer_module):  # its batches, its size estimate
        monkeypatch.setattr(module, "DefaultRecordBatchBuilder", PythonBatchBuilder)
    producer = AIOKafkaProducer(**kafka.aiokafka_options())
    failures: list[Exception] = []
    subscriber = SimpleNamespace(batch_timeout_ms=5_000, max_records=100)
    poll_without_idle_sleep(cast(Any, subscriber), failures.append)
    reader = AIOKafkaConsumer(
        **kafka.aiokafka_options(),
        group_id=f"{components.service.schema}-rewind",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    first, second = TopicPartition(topic.name, 0), TopicPartition(topic.name, 1)
    reader.assign([first, second])
    await producer.start()
    await reader.start()
    try:
        for n in range(3):
            await producer.send_and_wait(topic.name, b"%d" % n, key=b"a", partition=0)

        async def fetched(partition: TopicPartition, count: int) -> bool:
            return reader.highwater(partition) == count

        # The reader fetched partition 0's records before partition 1 has any: they wait in
        # its buffer ahead of partition 1's, and the poll reads them first.
        await eventually(lambda: fetched(first, 3), what="partition 0 fetched")
        unreadable = [(UnreadableHeaderKey("k"), b"v")]
        await producer.send_and_wait(topic.name, b"x", key=b"b", partition=1, headers=unreadable)
        await eventually(lambda: fetched(second, 1), what="partition 1 fetched")
        with pytest.raises(KafkaError, match="records could not be read: UnicodeDecodeError"):
            await subscriber.get_msg(reader)  # type: ignore[attr-defined]
        assert [await reader.position(p) for p in (first, second)] == [0, 0]
    finally:
        await reader.stop()
        await producer.stop()
    assert [type(f).__name__ for f in failures] == ["UnicodeDecodeError"]


async def test_what_postgres_cannot_store_is_escaped_and_the_partition_moves_on(
    components: Components, running: Any
) -> None:
    """A NUL in a record's key, in a header's name or value, or quoted in the reason (pydantic
    quotes the NUL of an envelope id "\\u0000zz"): each made the dead letter's insert fail
    (`text` and `jsonb` refuse it), the batch came back for ever and the partition stopped.
    Each is now parked with the NUL escaped, and the next record is applied."""
    topic, _, waiter = running
    nul_id = json.loads(
        Envelope.wrap(CounterIncremented(counter="n", by=1), source="test", subject="k").to_bytes()
    )
    nul_id["id"] = "\u0000zz"
    good = Envelope.wrap(CounterIncremented(counter="after", by=3), source="test", subject="k")
    sent: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = [
        (b"k", b"this is not json", [("x-evil", b"a\x00b"), ("na\x00me", b"v")]),
        (b"k", json.dumps(nul_id).encode(), []),
        (b"ptn_probek_k\x00\xff", b"not json", []),
        (b"k", good.to_bytes(), []),
    ]
    for key, value, headers in sent:
        await components.producer.send_and_wait(
            topic.name, value=value, key=key, headers=headers, partition=0
        )

    assert await waiter.next(4) == [Outcome.DEAD_LETTERED] * 3 + [Outcome.PROCESSED]
    assert await components.pool.fetchval("SELECT value FROM counters WHERE name = 'after'") == 3
    letters = await read_records(
        components.infra.kafka, dead_letter_topic(components.service.schema).name, 3
    )
    kept = [dict(letter.headers) for letter in letters]
    assert kept[0]["x-evil"] == b"a\\x00b"
    assert kept[0]["na\\x00me"] == b"v"
    assert kept[1][DLQ_REASON].endswith(b"invalid character: found `\\x00` at 0")
    assert letters[2].key == b"ptn_probek_k\\x00\\xff"
    # The values are kept byte for byte.
    assert [letter.value for letter in letters] == [value for _, value, _ in sent[:3]]


async def test_a_letter_postgres_still_refuses_is_parked_without_its_headers(
    components: Components, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should the escaping miss something, the record is parked anyway, without its original
    headers and saying so, instead of failing its batch for ever."""
    topic = await new_topic(components.infra.kafka, components.service.schema)
    consumer = counter_consumer(components, topic)
    await components.producer.send_and_wait(
        topic.name, value=b"not json", key=b"k", headers=[("x-evil", b"a\x00b")], partition=0
    )
    records = await read_records(components.infra.kafka, topic.name, 1)
    monkeypatch.setattr(dead_lettering, "storable", lambda text: text)  # escaping nothing

    assert await consumer.process_batch(records) == [Outcome.DEAD_LETTERED]
    headers = json.loads(
        await components.pool.fetchval("SELECT headers FROM outbox WHERE topic LIKE '%.dlq.v1'")
    )
    assert "x-evil" not in headers
    assert headers[DLQ_REASON].startswith("malformed CloudEvents envelope")
    assert "[its headers were not kept: UntranslatableCharacterError" in headers[DLQ_REASON]


async def test_a_batch_that_fails_for_good_says_where_its_partition_stopped(
    components: Components, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not even a dead letter could be written: the batch goes back to Kafka and its partition
    stops. The consumer's figures say so, and where, until a batch succeeds again (readiness
    reports it in `checks.consumers`, the metrics as pollinate_consumer_stalled)."""
    topic = await new_topic(components.infra.kafka, components.service.schema)
    consumer = counter_consumer(components, topic)
    await send_raw(components, topic, b"not json")
    records = await read_records(components.infra.kafka, topic.name, 1)

    async def refused(*_: Any, **__: Any) -> bool:
        raise asyncpg.DataError("the outbox refuses every letter")

    monkeypatch.setattr(dead_lettering, "write_letter", refused)
    with pytest.raises(asyncpg.DataError):
        await consumer.process_delivered(records)
    stalled = consumer.stats.stalled_at
    assert stalled is not None
    record = records[0]
    assert stalled.startswith(f"{topic.name}[{record.partition}]@{record.offset}: DataError")
    assert consumer.stats.failed_batches == 1
    figures = ConsumerFigures({}, 0, None, consumer.stats.failed_batches, stalled)
    exposition = ServiceMetrics().render(Scrape(consumers={consumer.group_id: figures})).decode()
    assert f'pollinate_consumer_stalled{{group="{consumer.group_id}"}} 1.0' in exposition

    monkeypatch.undo()
    await consumer.process_delivered(records)
    assert consumer.stats.stalled_at is None
    assert consumer.stats.failed_batches == 1


async def test_a_handler_error_reason_names_what_failed_and_where(
    components: Components,
) -> None:
    """A decimal signal's own text is only its class list: the reason read `handler error
    InvalidOperation: [<class 'decimal.InvalidOperation'>]`, saying neither what nor where."""
    topic = await new_topic(components.infra.kafka, components.service.schema)
    consumer = components.consumer("rounding", topic)

    @consumer.handles(CounterIncremented)
    async def book(ctx: HandlerContext, event: Envelope[CounterIncremented]) -> None:
        money(Decimal(f"1E+{999 * event.data.by}"), 2)  # the ledger's rounding, past its precision

    event = Envelope.wrap(CounterIncremented(counter="r", by=1), source="test", subject="k")
    await send_raw(components, topic, event.to_bytes())
    records = await read_records(components.infra.kafka, topic.name, 1)

    assert await consumer.process_batch(records) == [Outcome.DEAD_LETTERED]
    reason = await components.pool.fetchval(
        "SELECT headers->>'dlq.reason' FROM outbox WHERE topic LIKE '%.dlq.v1'"
    )
    assert "[<class" not in reason
    assert re.fullmatch(
        r"handler error InvalidOperation: a decimal operation had no exact result in its "
        r"context \(a value too large\?\) \(in services/incentives/domain/earnings\.py:\d+ "
        r"money\)",
        reason,
    )
