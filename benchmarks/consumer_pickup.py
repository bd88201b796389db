"""How long an idle consumer takes to pick up a record: a FastStream batch subscriber on a fresh
topic, fed one record at a time at random moments (0.2-0.4 s apart, so it is idle in between),
first with FastStream's own polling (which sleeps its batch timeout after a poll that found
nothing) and then as the platform's consumers poll (shared/subscriber.py), in turns. The time is
from the record's Kafka timestamp (the producer's) to the handler.

    eval "$(deploy/local-stack.sh env)"
    python -m benchmarks.consumer_pickup [--records 60] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import statistics
import time
import uuid

from aiokafka import AIOKafkaProducer
from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from shared.kafka_client import KafkaConnection
from shared.subscriber import Records, poll_without_idle_sleep, raw_records
from shared.topics import Topic, ensure_topics

BATCH_TIMEOUT_MS = 100  # the platform's default (CONSUMER_BATCH_TIMEOUT_MS)


async def pickups(kafka: KafkaConnection, records: int, ours: bool) -> list[float]:
    """Milliseconds from each record's timestamp to its handler."""
    topic = Topic(f"bench.pickup.{uuid.uuid4().hex[:8]}", "bench", "key", 3, "pick-up probe")
    await ensure_topics(kafka, [topic])
    quiet = logging.getLogger("bench.pickup")  # FastStream logs every message at INFO
    quiet.setLevel(logging.WARNING)
    # The handler takes the batch's records as the platform's consumers do (no dependency
    # injection, the raw records as the body), so only the polling differs between the turns.
    broker = KafkaBroker(
        kafka.hosts, security=kafka.faststream_security(), logger=quiet, apply_types=False
    )
    seen: list[float] = []
    warm, done = asyncio.Event(), asyncio.Event()

    async def on_batch(batch: Records) -> None:
        at = time.time() * 1000
        for record in batch:
            if record.value == b"warm":
                warm.set()
            else:
                seen.append(at - record.timestamp)
        if len(seen) >= records:
            done.set()

    subscriber = broker.subscriber(
        topic.name,
        group_id=f"bench-pickup-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        batch=True,
        max_records=200,
        batch_timeout_ms=BATCH_TIMEOUT_MS,
        decoder=raw_records,
    )
    subscriber(on_batch)
    if ours:
        poll_without_idle_sleep(subscriber)
    producer = AIOKafkaProducer(**kafka.aiokafka_options(), linger_ms=0)
    await broker.start()
    await producer.start()
    try:
        await producer.send_and_wait(topic.name, b"warm", key=b"warm")
        await asyncio.wait_for(warm.wait(), 60)  # joined the group and fetched once
        moments = random.Random(23)  # noqa: S311 (arrival times, not secrets)
        for n in range(records):
            await asyncio.sleep(moments.uniform(0.2, 0.4))
            await producer.send_and_wait(topic.name, b"x", key=str(n).encode())
        await asyncio.wait_for(done.wait(), 10)
    finally:
        await producer.stop()
        await broker.stop()
    return seen


def summary(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p90 = statistics.quantiles(ordered, n=10)[-1]
    return (
        f"{name:22} records {len(ordered):4}  p50 {statistics.median(ordered):6.1f}  "
        f"p90 {p90:6.1f}  max {ordered[-1]:6.1f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    kafka = KafkaConnection.from_env(os.environ)
    for _ in range(args.rounds):
        print(summary("FastStream's polling", await pickups(kafka, args.records, ours=False)))
        print(summary("the platform's polling", await pickups(kafka, args.records, ours=True)))


if __name__ == "__main__":
    asyncio.run(main())
