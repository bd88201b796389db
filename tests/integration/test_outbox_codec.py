"""Events kept compressed in the outbox, against real Kafka and Postgres: Kafka gets the JSON,
byte for byte; rows an older version wrote as they are still flow, in order among the others; a
damaged row is parked and does not hold the rows behind it; a row a newer version packed waits
for a relay that can read it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.dlq import parked_rows
from shared.outbox import Outbox
from shared.outbox_codec import ZSTD_DICTIONARY_V1, UnknownCodec
from shared.topics import Topic
from tests.support.counter import Components, CounterIncremented
from tests.support.kafka import new_topic, read_records

pytestmark = pytest.mark.integration


async def _increments(components: Components, topic: Topic, *outboxes: Outbox) -> list[Any]:
    """Increments of one counter, one through each outbox given, in one transaction."""
    recorded = []
    async with components.pool.acquire() as conn, conn.transaction():
        for by, outbox in enumerate(outboxes, start=1):
            recorded.append(
                await outbox.publish(
                    conn, topic, CounterIncremented(counter="c", by=by), subject="c"
                )
            )
    return recorded


async def _three_with_the_middle_one(
    components: Components, changed: str
) -> tuple[Topic, list[Any]]:
    """Three compressed increments on a new topic, the middle row's columns then changed
    (`changed`: an SQL assignment) as damage or a newer version would leave them."""
    topic = await new_topic(components.infra.kafka, components.service.schema)
    recorded = await _increments(components, topic, *[components.outbox] * 3)
    await components.pool.execute(
        f"UPDATE outbox SET {changed} WHERE event_id = $1", recorded[1].id
    )
    return topic, recorded


async def test_an_event_is_stored_compressed_and_sent_as_its_json(components: Components) -> None:
    topic = await new_topic(components.infra.kafka, components.service.schema)
    [sent] = await _increments(components, topic, components.outbox)
    stored = await components.pool.fetchrow("SELECT value, value_codec FROM outbox")
    assert stored["value_codec"] == ZSTD_DICTIONARY_V1
    assert len(stored["value"]) < len(sent.to_bytes()) / 2

    assert await components.relay().publish_pending() == 1
    [record] = await read_records(components.infra.kafka, topic.name, count=1)
    assert record.value == sent.to_bytes()
    assert dict(record.headers)["ce_id"] == str(sent.id).encode()


async def test_rows_stored_as_they_are_flow_in_order_among_compressed_ones(
    components: Components,
) -> None:
    """What a version before the codec wrote (and what one with compression turned off
    writes) is sent as it is, in the outbox's order with the compressed rows around it."""
    topic = await new_topic(components.infra.kafka, components.service.schema)
    as_is = Outbox(components.service.schema, components.outbox.source, compress=False)
    sent = await _increments(components, topic, as_is, components.outbox, as_is)
    codecs = await components.pool.fetch("SELECT value_codec FROM outbox ORDER BY position")
    assert [row["value_codec"] for row in codecs] == [None, ZSTD_DICTIONARY_V1, None]

    assert await components.relay().publish_pending() == 3
    records = await read_records(components.infra.kafka, topic.name, count=3)
    assert [r.value for r in records] == [envelope.to_bytes() for envelope in sent]


async def test_a_damaged_row_is_parked_and_the_rows_after_it_flow(
    components: Components,
) -> None:
    topic, (before, damaged, after) = await _three_with_the_middle_one(
        components, "value = substring(value FROM 1 FOR 20)"
    )

    relay = components.relay()
    assert await relay.publish_pending() == 3
    assert (relay.published_total, relay.parked_total) == (2, 1)
    records = await read_records(components.infra.kafka, topic.name, count=2)
    assert [json.loads(r.value)["id"] for r in records] == [str(before.id), str(after.id)]
    [parked] = await parked_rows(components.service.dsn, components.service.schema)
    assert parked["event_id"] == damaged.id
    assert parked["park_reason"].startswith("UnreadableValue: the stored value does not unpack")
    assert parked["size"] == 20  # what is stored: it cannot be read


async def test_a_row_a_newer_version_packed_waits_with_the_rows_after_it(
    components: Components,
) -> None:
    """A codec this version does not know is not damage: the row is left for a relay of the
    version that wrote it, and the rows behind it wait too (their key's order); the rows
    before it go."""
    topic, (before, _, _) = await _three_with_the_middle_one(components, "value_codec = 99")

    relay = components.relay()
    assert await relay.publish_pending() == 1
    with pytest.raises(UnknownCodec, match="codec 99 is not known to this version"):
        await relay.publish_pending()
    waiting = await components.pool.fetch(
        "SELECT event_id FROM outbox WHERE published_at IS NULL AND parked_at IS NULL"
    )
    assert (len(waiting), relay.published_total, relay.parked_total) == (2, 1, 0)
    [record] = await read_records(components.infra.kafka, topic.name, count=1)
    assert record.value == before.to_bytes()


async def test_the_size_kafka_is_asked_to_take_is_the_events_not_the_stored_one(
    components: Components,
) -> None:
    """An event over the producer's limit is parked as too large, though its packed row is a
    few hundred bytes."""
    topic = await new_topic(components.infra.kafka, components.service.schema)
    async with components.pool.acquire() as conn, conn.transaction():
        large = await components.outbox.publish(
            conn, topic, CounterIncremented(counter="c" * 2_000_000, by=1), subject="c"
        )
    assert large is not None
    stored = await components.pool.fetchval("SELECT octet_length(value) FROM outbox")
    assert stored < 1_000

    relay = components.relay()
    assert await relay.publish_pending() == 1
    assert (relay.published_total, relay.parked_total) == (0, 1)
    [parked] = await parked_rows(components.service.dsn, components.service.schema)
    # Refused before sending, by the relay's own check of the event's size (the broker refuses
    # it too, with another message, but only after the whole event went over the wire).
    assert parked["park_reason"].startswith("MessageSizeTooLargeError")
    assert "bytes when serialized which is larger than the maximum" in parked["park_reason"]
    assert parked["size"] == len(large.to_bytes())
