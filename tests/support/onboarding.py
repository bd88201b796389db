"""Onboarding test helpers the shared support modules do not have."""

from __future__ import annotations

from typing import Any

from shared.events import Envelope
from shared.outbox import make_producer
from shared.topics import Topic
from tests.support.infra import Infra


async def redeliver(infra: Infra, topic: Topic, envelope: Envelope[Any]) -> None:
    """Send an event already published once again, under the same event id (what a producer
    retrying, or a consumer group rewinding, delivers)."""
    producer = make_producer(infra.kafka_bootstrap, "test-redelivery")
    await producer.start()
    try:
        key = envelope.subject.encode()
        await producer.send_and_wait(topic.name, envelope.to_bytes(), key=key)
    finally:
        await producer.stop()
