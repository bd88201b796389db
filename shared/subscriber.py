"""How an event consumer's FastStream batch subscriber takes its records from Kafka.

FastStream's batch subscriber asks aiokafka for what is waiting (`getmany`, which waits up to
`batch_timeout_ms` for a first record) and, when that wait ended with nothing, sleeps another
`batch_timeout_ms` before it asks again. A record that arrives during that sleep waits for it:
after every idle tenth of a second a consumer is deaf for the next one, so outside a burst a
deal met it at each of its hops (up to 100 ms each, 25 ms on average). aiokafka's `getmany`
never returns empty before a timeout above 0 (it waits on the fetcher, a rebalance included,
and a stopped consumer raises), so the sleep guards against no busy loop and the consumers here
poll without it. With a timeout of 0 an empty poll would return without yielding and the loop
would starve everything else in the process: the timeout is refused unless above 0.

The subscriber's decoder hands the handler the raw records (`raw_records`), which it decodes
each against its route's contract, and the handler takes them as its one argument: a handler that
asked for FastStream's message instead had it resolved as a context field, which FastStream's
dependency injection (fast_depends) runs in a worker thread, a thread hop per batch. Its parser
survives any header (`parsed_whatever_the_headers`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from itertools import chain
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.errors import ConsumerStoppedError, KafkaError
from faststream.kafka.message import KafkaMessage
from faststream.kafka.subscriber.usecase import BatchSubscriber

log = logging.getLogger(__name__)


def poll_without_idle_sleep(
    subscriber: BatchSubscriber, on_failed_poll: Callable[[Exception], None] = lambda _: None
) -> None:
    """Make `subscriber` take what is waiting, in each partition's order, as soon as it comes,
    with no sleep after an empty poll. A poll that fails reading what Kafka sent rewinds
    (`rewind_to_committed`), tells `on_failed_poll` and is raised as a KafkaError: FastStream's
    loop logs it and polls again after a pause (any other error ended its loop for good)."""
    if subscriber.batch_timeout_ms <= 0:
        raise ValueError(
            f"batch_timeout_ms must be above 0 (got {subscriber.batch_timeout_ms}): "
            "an empty poll that does not wait would spin"
        )

    async def get_msg(consumer: AIOKafkaConsumer) -> tuple[ConsumerRecord[Any, Any], ...]:
        try:
            batches = await consumer.getmany(
                timeout_ms=subscriber.batch_timeout_ms, max_records=subscriber.max_records
            )
        except ConsumerStoppedError:
            raise
        except Exception as error:
            await rewind_to_committed(consumer)
            on_failed_poll(error)
            if isinstance(error, KafkaError):
                raise
            raise KafkaError(f"records could not be read: {error!r}") from error
        return tuple(chain.from_iterable(batches.values()))

    # The instance's attribute comes before the class's method: FastStream's consume loop
    # calls `self.get_msg(consumer)`.
    subscriber.get_msg = get_msg  # type: ignore[method-assign]


async def rewind_to_committed(consumer: AIOKafkaConsumer) -> None:
    """Every assigned partition back to its committed offset (its start when none is). aiokafka
    moves a partition's position as it reads its records, and a poll that fails reading one
    partition (a record it cannot parse) throws away what it read of the others: the next
    commit would have committed those records unprocessed. At a poll, everything handed out
    before is committed (each batch's ack) or sought back (its nack), so the committed offsets
    are exactly where to start again."""
    try:
        for partition in consumer.assignment():
            committed = await consumer.committed(partition)
            if committed is None:
                await consumer.seek_to_beginning(partition)
            else:
                consumer.seek(partition, committed)
    except Exception:
        log.exception("rewinding to the committed offsets failed after a failed poll")


Records = tuple[ConsumerRecord[Any, Any], ...]


async def raw_records(message: KafkaMessage) -> Records:
    """The decoder of the platform's subscribers: the batch's records as they came. Their handler
    decodes each against its route's contract; FastStream's default decoder parsed every body as
    JSON first, for nothing (32 us a 1.1 kB record; 11.5% of notifications' CPU at saturation)."""
    records = message.raw_message
    if not isinstance(records, tuple | list):  # a list from FastStream's test broker
        raise TypeError(f"a batch subscriber's message holds records, not {type(records).__name__}")
    return tuple(records)


async def parsed_whatever_the_headers(
    records: Records, original: Callable[[Records], Awaitable[KafkaMessage]]
) -> KafkaMessage:
    """The parser of the platform's subscribers. FastStream's batch parser reads every header
    value as UTF-8 text: a header that Kafka lets carry no value (aiokafka reads it as None),
    or one not in UTF-8, made it raise before the handler ran, so the batch came again and
    again and the partition stalled behind one record any producer could send. Such a batch
    is parsed with those headers left out; the handler still gets the records as they came
    (it reads their headers itself, leniently: `shared.events.header_texts`)."""
    try:
        return await original(records)
    except (AttributeError, UnicodeDecodeError):
        message = await original(tuple(_readable_headers(record) for record in records))
        message.raw_message = records
        return message


def _readable_headers(record: ConsumerRecord[Any, Any]) -> ConsumerRecord[Any, Any]:
    readable = []
    for key, value in record.headers or ():
        try:
            value.decode()
        except (AttributeError, UnicodeDecodeError):
            continue
        readable.append((key, value))
    return replace(record, headers=readable)
