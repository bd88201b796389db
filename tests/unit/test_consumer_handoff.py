"""A batch reaches an event consumer as its raw records, on the event loop: FastStream's
dependency injection, which resolved the handler's message in a worker thread at every batch,
is not in the way (shared/subscriber.py)."""

from __future__ import annotations

from typing import Any, cast

import anyio.to_thread
import pytest
from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker, TestKafkaBroker

from shared.consumer import EventConsumer, Outcome
from shared.outbox import Outbox
from shared.topics import Topic

TOPIC = Topic("handoff.test.v1", owner="tests", key="k", partitions=1, description="handoff")


class Recording(EventConsumer):
    """An event consumer that keeps the batches it is given instead of processing them."""

    def __init__(self) -> None:
        super().__init__(
            name="handoff",
            service="tests",
            topics=[TOPIC],
            pool=cast(Any, None),  # never reached: process_batch is replaced
            outbox=Outbox("tests", source="pollinate/tests"),
        )
        self.batches: list[list[ConsumerRecord[Any, Any]]] = []

    async def process_batch(self, records: list[ConsumerRecord[Any, Any]]) -> list[Outcome]:
        self.batches.append(records)
        return []


@pytest.fixture
def worker_thread_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every function sent to anyio's worker threads (as fast_depends sends a sync resolver)."""
    calls: list[Any] = []
    real = anyio.to_thread.run_sync

    async def run_sync(func: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(func)
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", run_sync)
    return calls


@pytest.mark.parametrize("apply_types", [False, True], ids=["as the services", "injection on"])
async def test_a_batch_reaches_the_consumer_as_its_records_without_a_worker_thread(
    apply_types: bool, worker_thread_calls: list[Any]
) -> None:
    consumer = Recording()
    broker = KafkaBroker("127.0.0.1:9", apply_types=apply_types)  # never connects
    consumer.attach(broker)
    async with TestKafkaBroker(broker) as testing:
        await testing.publish_batch(b"one", b"two", topic=TOPIC.name)
    [batch] = consumer.batches
    assert [record.value for record in batch] == [b"one", b"two"]
    assert all(isinstance(record, ConsumerRecord) for record in batch)
    assert worker_thread_calls == []
