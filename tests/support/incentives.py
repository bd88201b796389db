"""What the incentives tests need beyond the shared support: redelivering the very same
envelopes (an upstream producer retrying), and reading dead letters with their headers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer

from shared.events import Envelope
from shared.outbox import make_producer
from tests.support.infra import Infra


async def send_envelopes(infra: Infra, topic: str, key: str, *envelopes: Envelope[Any]) -> None:
    """Send `envelopes` as they are (the same one twice is a redelivery: same event id)."""
    producer = make_producer(infra.kafka_bootstrap, "test-incentives")
    await producer.start()
    try:
        for envelope in envelopes:
            await producer.send_and_wait(topic, envelope.to_bytes(), key=key.encode())
    finally:
        await producer.stop()


async def keyed_headers(
    infra: Infra,
    topic: str,
    key: str,
    done: Callable[[list[dict[str, str]]], bool],
    timeout: float = 30.0,
) -> list[dict[str, str]]:
    """The headers of the records keyed `key` on `topic`, read from the start until `done`
    holds (fails after `timeout`): a dead letter's reason and origin are headers."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=infra.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
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
