"""What the benchmarks share to read Kafka: each record as it arrives, with when it did."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord


async def arrivals(
    consumer: AIOKafkaConsumer, timeout_ms: int
) -> AsyncIterator[tuple[float, ConsumerRecord[bytes, bytes]]]:
    """Every record `consumer` receives, with the wall-clock time its batch arrived, until the
    caller stops asking."""
    while True:
        batch = await consumer.getmany(timeout_ms=timeout_ms)
        seen = time.time()
        for records in batch.values():
            for record in records:
                yield seen, record
