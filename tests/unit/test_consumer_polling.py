"""An event consumer takes records as soon as they come: after a poll that found nothing it asks
Kafka again at once (shared/subscriber.py). FastStream's own batch subscriber sleeps its batch
timeout first, which outside a burst delayed a deal at each hop by up to 100 ms."""

from __future__ import annotations

from typing import Any, cast

import anyio
import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import ConsumerStoppedError
from faststream.kafka import KafkaBroker
from faststream.kafka.subscriber import usecase

from shared.consumer import EventConsumer
from shared.outbox import Outbox
from shared.topics import Topic

TOPIC = Topic("polling.test.v1", owner="tests", key="k", partitions=2, description="polling")


class GetmanyAnswers:
    """aiokafka's consumer as a subscriber sees it: `getmany` answers, in turn, what was
    fetched by partition (an empty dict when its wait ended with nothing)."""

    def __init__(self, *answers: dict[TopicPartition, list[ConsumerRecord[Any, Any]]]) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[int, int | None]] = []

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord[Any, Any]]]:
        self.asked.append((timeout_ms, max_records))
        if not self.answers:
            raise ConsumerStoppedError()  # as a stopped consumer answers: the loop ends
        return self.answers.pop(0)


def record(partition: int, offset: int) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(TOPIC.name, partition, offset, 0, 0, b"k", b"v", None, 1, 1, [])


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every sleep FastStream's subscriber module asks for, instead of sleeping."""
    asked: list[float] = []

    async def sleep(seconds: float) -> None:
        asked.append(seconds)

    # The module calls `anyio.sleep`: the attribute is replaced where it is looked up.
    monkeypatch.setattr(anyio, "sleep", sleep)
    return asked


def attached(batch_size: int = 50, batch_timeout_ms: int = 100) -> Any:
    consumer = EventConsumer(
        name="polling",
        service="tests",
        topics=[TOPIC],
        pool=cast(Any, None),  # never reached: only the subscriber's polling is exercised
        outbox=Outbox("tests", source="pollinate/tests"),
        batch_size=batch_size,
        batch_timeout_ms=batch_timeout_ms,
    )
    broker = KafkaBroker("127.0.0.1:9")  # never started
    consumer.attach(broker)
    (subscriber,) = broker.subscribers
    return subscriber


async def test_faststream_alone_sleeps_its_batch_timeout_after_an_empty_poll(
    sleeps: list[float],
) -> None:
    """Why shared/subscriber.py exists: if this fails, FastStream no longer sleeps after an
    empty poll and the override can go."""
    subscriber = attached(batch_timeout_ms=100)
    kafka = GetmanyAnswers({})
    assert await usecase.BatchSubscriber.get_msg(subscriber, cast(Any, kafka)) == ()
    assert sleeps == [0.1]


async def test_an_event_consumer_polls_again_at_once_after_an_empty_poll(
    sleeps: list[float],
) -> None:
    subscriber = attached(batch_size=50, batch_timeout_ms=100)
    first, second = record(0, 7), record(1, 3)
    kafka = GetmanyAnswers(
        {}, {TopicPartition(TOPIC.name, 0): [first], TopicPartition(TOPIC.name, 1): [second]}
    )
    assert await subscriber.get_msg(kafka) == ()
    assert await subscriber.get_msg(kafka) == (first, second)
    assert sleeps == []
    assert kafka.asked == [(100, 50), (100, 50)]  # waits for a first record, takes a batch


async def test_fast_streams_consume_loop_polls_through_the_override(sleeps: list[float]) -> None:
    """The loop that runs in production (FastStream's `_run_consume_loop`) asks through the
    override: three empty polls, three polls and no sleep, then the consumer stops."""
    subscriber = attached(batch_size=50, batch_timeout_ms=100)
    kafka = GetmanyAnswers({}, {}, {})
    subscriber.running = True
    await subscriber._run_consume_loop(kafka)
    assert kafka.asked == [(100, 50)] * 4  # the fourth was answered by the stop
    assert sleeps == []


def test_a_batch_timeout_of_zero_is_refused() -> None:
    """An empty poll that does not wait returns without yielding: the loop would spin."""
    with pytest.raises(ValueError, match="batch_timeout_ms must be above 0"):
        attached(batch_timeout_ms=0)
