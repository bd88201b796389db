"""Reading real topics in tests: wait for records (never sleep) with a bounded timeout."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer

from shared.topics import Topic, ensure_topics


async def new_topic(bootstrap: str, owner: str, partitions: int = 3) -> Topic:
    topic = Topic(f"test.{uuid.uuid4().hex[:12]}", owner, "aggregate id", partitions, "test topic")
    await ensure_topics(bootstrap, [topic])
    return topic


async def read_records(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[Any]:
    """Read `count` records from the beginning of `topic`; fail if they do not arrive in time.

    After the count is reached, drains whatever else is already there, so a test that expects
    exactly `count` records can assert on the length.
    """
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
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
