"""Reading and writing real topics in tests: wait for records (never sleep), bounded."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from shared.dead_lettering import DLQ_HEADERS
from shared.dlq import DeadLetter, read_dead_letters
from shared.events import Envelope, EventPayload
from shared.kafka_client import KafkaConnection
from shared.outbox import make_producer
from shared.topics import PARTNER_LIFECYCLE, Topic, dead_letter_topic, ensure_topics
from tests.support.factories import partner_state_changed
from tests.support.infra import Infra


async def new_topic(kafka: KafkaConnection, owner: str, partitions: int = 3) -> Topic:
    topic = Topic(f"test.{uuid.uuid4().hex[:12]}", owner, "aggregate id", partitions, "test topic")
    await ensure_topics(kafka, [topic])
    return topic


async def publish(
    infra: Infra, topic: Topic, payloads: list[EventPayload], *, subject: str, source: str
) -> list[Envelope[Any]]:
    """Publish events as their producing service would (an envelope each, keyed by
    `subject`), straight to the broker: a test playing an upstream service."""
    envelopes: list[Envelope[Any]] = [
        Envelope.wrap(payload, source=f"pollinate/{source}", subject=subject)
        for payload in payloads
    ]
    await send_envelopes(infra, topic.name, subject, *envelopes)
    return envelopes


async def announce_partners(infra: Infra, *partner_ids: str) -> None:
    """Announce each partner on partners.lifecycle.v1 as onboarding does: a partner state at
    the factory's defaults (active)."""
    for partner_id in partner_ids:
        state = partner_state_changed(partner_id=partner_id)
        await publish(infra, PARTNER_LIFECYCLE, [state], subject=partner_id, source="onboarding")


async def send_envelopes(infra: Infra, topic: str, key: str, *envelopes: Envelope[Any]) -> None:
    """Send `envelopes` as they are, in order, on one key: the same one again is a
    redelivery (same event id), as a producer retrying or a group rewinding delivers it."""
    producer = make_producer(infra.kafka, "test-producer")
    await producer.start()
    try:
        for envelope in envelopes:
            await producer.send_and_wait(topic, envelope.to_bytes(), key=key.encode())
    finally:
        await producer.stop()


async def as_records(
    infra: Infra, envelopes: Sequence[Envelope[Any]]
) -> list[ConsumerRecord[Any, Any]]:
    """The envelopes as the records a consumer is handed: sent in order, each keyed by its
    subject, to a new topic of one partition, and read back."""
    return await raw_records(infra, [((e.subject or "").encode(), e.to_bytes()) for e in envelopes])


async def raw_records(
    infra: Infra, items: Sequence[tuple[bytes, bytes]]
) -> list[ConsumerRecord[Any, Any]]:
    """(key, value) pairs as the records a consumer is handed (values any producer may send,
    which no envelope of today's contracts could be), in order, on one partition."""
    topic = await new_topic(infra.kafka, "test", partitions=1)
    producer = make_producer(infra.kafka, "test-records")
    await producer.start()
    try:
        for key, value in items:
            await producer.send_and_wait(topic.name, value, key=key)
    finally:
        await producer.stop()
    return await read_records(infra.kafka, topic.name, len(items))


def reader_from_the_start(kafka: KafkaConnection, topic: str) -> AIOKafkaConsumer:
    """A consumer of `topic` in no group, from its earliest records, committing nothing."""
    return AIOKafkaConsumer(
        topic,
        **kafka.aiokafka_options(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )


async def keyed_headers(
    infra: Infra,
    topic: str,
    key: str,
    done: Callable[[list[dict[str, str]]], bool],
    timeout: float = 30.0,
) -> list[dict[str, str]]:
    """The headers of the records keyed `key` on `topic`, read from the start until `done`
    holds (fails after `timeout`): a dead letter's reason and origin are headers."""
    consumer = reader_from_the_start(infra.kafka, topic)
    await consumer.start()
    found: list[dict[str, str]] = []
    try:
        async with asyncio.timeout(timeout):
            while not done(found):
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    found.extend(
                        {name: value.decode() for name, value in record.headers or ()}
                        for record in records
                        if record.key == key.encode()
                    )
    finally:
        await consumer.stop()
    return found


async def read_records(
    kafka: KafkaConnection, topic: str, count: int, timeout: float = 30.0
) -> list[Any]:
    """Read `count` records from the beginning of `topic`; fail if they do not arrive in time.

    After the count is reached, drains whatever else is already there, so a test that expects
    exactly `count` records can assert on the length.
    """
    consumer = reader_from_the_start(kafka, topic)
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(timeout):
            while len(records) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for recs in batch.values():
                    records.extend(recs)
        # Anything beyond `count` that is already on the broker.
        partitions = list(consumer.assignment())
        end = await consumer.end_offsets(partitions)
        for tp in partitions:
            while await consumer.position(tp) < end[tp]:
                batch = await consumer.getmany(tp, timeout_ms=500)
                records.extend(batch.get(tp, []))
    finally:
        await consumer.stop()
    return records


async def wait_for_keyed(
    kafka: KafkaConnection,
    topic: str,
    key: str,
    done: Callable[[list[dict[str, Any]]], bool],
    *,
    since: datetime,
    timeout: float = 30.0,
) -> list[dict[str, Any]]:
    """The decoded events with `key` on a shared topic, published since `since`, read until
    `done(events)` holds (fails after `timeout`). Other tests' records are skipped by key."""
    consumer = AIOKafkaConsumer(**kafka.aiokafka_options(), enable_auto_commit=False, group_id=None)
    await consumer.start()
    events: list[dict[str, Any]] = []
    try:
        # aiokafka has no public call that refreshes the metadata partitions_for_topic reads.
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        assert partitions, f"topic {topic} has no partitions"
        consumer.assign(partitions)
        starts = await consumer.offsets_for_times(
            {tp: int(since.timestamp() * 1000) - 1000 for tp in partitions}
        )
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            found = starts.get(tp)
            consumer.seek(tp, found.offset if found is not None else ends[tp])
        async with asyncio.timeout(timeout):
            while not done(events):
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    events.extend(json.loads(r.value) for r in records if r.key == key.encode())
    finally:
        await consumer.stop()
    return events


async def replay(
    kafka: KafkaConnection, service: str, offsets: set[int] | None = None, *, origins: set[str]
) -> list[DeadLetter]:
    """Send a scratch service's dead letters back to their origin topic, as an operator's tool
    once did (a service replays its own through shared/dead_letters.py, recording each): the
    letters not sent back before (progress kept as the group `<dlq topic>.replayer`'s offsets),
    or those at `offsets`; a letter whose origin is not among `origins` is not sent."""
    dlq = dead_letter_topic(service).name
    group = f"{dlq}.replayer" if offsets is None else None
    letters, consumer = await read_dead_letters(kafka, service, group_id=group)
    producer = make_producer(kafka, client_id=f"{service}-dlq-replay")
    await producer.start()
    replayed: list[DeadLetter] = []
    try:
        for letter in letters:
            if (offsets is not None and letter.offset not in offsets) or (
                letter.origin_topic not in origins
            ):
                continue
            headers = [(k, v.encode()) for k, v in letter.headers.items() if k not in DLQ_HEADERS]
            headers.append(("dlq.replayed_from", f"{dlq}:{letter.offset}".encode()))
            await producer.send_and_wait(
                letter.origin_topic, value=letter.value, key=letter.key, headers=headers
            )
            replayed.append(letter)
        if group is not None and letters:
            await consumer.commit()  # remember what was sent back
    finally:
        await producer.stop()
        await consumer.stop()
    return replayed
