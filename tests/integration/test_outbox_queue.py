"""The outbox's queue of waiting rows (shared migration 0013): every row written joins it,
whoever writes it; the relay reads it, and its publish mark is a HOT update (no index entry)."""

from __future__ import annotations

import json
import uuid

import pytest

from shared.db import (
    PLATFORM_MIGRATIONS,
    Connection,
    apply_migrations,
    create_pool,
    load_migrations,
)
from shared.dlq import parked_rows
from shared.outbox import OutgoingEvent
from shared.relay import Settled
from shared.topics import Topic
from tests.support.counter import Components, CounterIncremented
from tests.support.infra import ScratchService
from tests.support.kafka import new_topic, read_records

pytestmark = pytest.mark.integration

# About the size of the chain's events, so that a page holds few rows (as in production).
BULKY = "x" * 1100


async def queued(components: Components) -> list[int]:
    rows = await components.pool.fetch(
        "SELECT unnest(positions) AS position FROM outbox_pending ORDER BY position"
    )
    return [row["position"] for row in rows]


async def write_a_row_kafka_refuses(components: Components, conn: Connection, topic: Topic) -> None:
    """A 2 MB row: over the producer's and the broker's message size, so it is parked."""
    await components.outbox.publish_raw(
        conn,
        topic_name=topic.name,
        key="big",
        event_id=uuid.uuid4(),
        event_type="test.too_large",
        value=b"x" * 2_000_000,
        headers={},
    )


async def test_the_publish_mark_is_a_hot_update(components: Components) -> None:
    """No index of the outbox names published_at or committed_at, and the pages have room
    (fill factor 50): each marked row's new version goes on its page with no index entry."""
    topic = await new_topic(components.infra.kafka, components.service.schema)
    events = [
        OutgoingEvent(topic, CounterIncremented(counter=f"{n}-{BULKY}", by=1), str(n))
        for n in range(40)
    ]
    async with components.pool.acquire() as conn, conn.transaction():
        await components.outbox.publish_many(conn, events)
    positions = await queued(components)
    assert len(positions) == 40

    relay = components.relay()
    async with components.pool.acquire() as conn, conn.transaction():
        entries = await conn.fetch("SELECT first_position FROM outbox_pending")
        await relay._settle(conn, Settled(positions, []), [], {e[0] for e in entries})
        # The transaction's own counts: exact, and not waiting for the statistics collector.
        hot = await conn.fetchval("SELECT pg_stat_get_xact_tuples_hot_updated('outbox'::regclass)")
        updated = await conn.fetchval("SELECT pg_stat_get_xact_tuples_updated('outbox'::regclass)")
    assert (updated, hot) == (40, 40)
    assert await queued(components) == []


@pytest.mark.parametrize("batch_size", [1, 2, 500])
async def test_rows_of_interleaved_entries_are_sent_in_position_order(
    components: Components, batch_size: int
) -> None:
    """Statements that write at once interleave their positions, so their entries do: an
    entry the relay settled in part is keyed again by the lowest position it still holds, so
    the next batch starts from the lowest row of all."""
    topic = await new_topic(components.infra.kafka, components.service.schema)
    async with components.pool.acquire() as conn, conn.transaction():
        for n in range(6):
            await components.outbox.publish(
                conn, topic, CounterIncremented(counter=f"c{n}", by=n + 1), subject="one-key"
            )
    positions = await queued(components)
    # As two statements running at once would have left them: 1st, 3rd, 5th and 2nd, 4th, 6th.
    async with components.pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM outbox_pending")
        await conn.execute(
            """INSERT INTO outbox_pending (first_position, positions)
               SELECT min(p), array_agg(p ORDER BY p)
               FROM unnest($1::bigint[]) WITH ORDINALITY AS q(p, n) GROUP BY n % 2""",
            positions,
        )

    relay = components.relay(batch_size=batch_size)
    while await relay.publish_pending():
        pass

    records = await read_records(components.infra.kafka, topic.name, count=6)
    assert [json.loads(r.value)["data"]["by"] for r in records] == list(range(1, 7))
    assert await queued(components) == []


async def test_a_statement_of_many_rows_is_queued_in_entries_of_at_most_a_thousand(
    components: Components,
) -> None:
    await components.pool.execute(
        """INSERT INTO outbox (event_id, topic, message_key, event_type, value)
           SELECT gen_random_uuid(), 't', 'k', 'test', '{}' FROM generate_series(1, 2500)"""
    )
    entries = await components.pool.fetch(
        "SELECT first_position, positions FROM outbox_pending ORDER BY first_position"
    )
    assert 3 <= len(entries) <= 4
    assert all(len(e["positions"]) <= 1000 for e in entries)
    assert all(e["first_position"] == e["positions"][0] for e in entries)
    assert [p for e in entries for p in e["positions"]] == sorted(
        await components.pool.fetchval("SELECT array_agg(position) FROM outbox")
    )


async def test_a_row_written_by_any_writer_is_queued_and_published(
    components: Components,
) -> None:
    """A writer that knows nothing of the queue (the version before it, during a rolling
    upgrade; an operator's INSERT) still has its row queued, by the outbox's trigger."""
    topic = await new_topic(components.infra.kafka, components.service.schema)
    event_id = uuid.uuid4()
    value = json.dumps({"id": str(event_id), "data": {"by": 1}}).encode()
    await components.pool.execute(
        """INSERT INTO outbox (event_id, topic, message_key, event_type, value)
           VALUES ($1, $2, 'k', 'test.raw', $3)""",
        event_id,
        topic.name,
        value,
    )
    assert len(await queued(components)) == 1

    assert await components.relay().publish_pending() == 1

    records = await read_records(components.infra.kafka, topic.name, count=1)
    assert [r.value for r in records] == [value]
    assert await queued(components) == []


async def test_queued_rows_settled_elsewhere_only_leave_the_queue(
    components: Components,
) -> None:
    """A row a relay of the version before the queue published (it stamps published_at and
    knows no queue), or one deleted by hand, is taken off the queue and not sent again."""
    topic = await new_topic(components.infra.kafka, components.service.schema)
    async with components.pool.acquire() as conn, conn.transaction():
        for name in ("published-by-an-older-relay", "deleted", "waiting"):
            await components.outbox.publish(
                conn, topic, CounterIncremented(counter=name, by=1), subject=name
            )
    await components.pool.execute(
        "UPDATE outbox SET published_at = now() WHERE message_key = 'published-by-an-older-relay'"
    )
    await components.pool.execute("DELETE FROM outbox WHERE message_key = 'deleted'")

    relay = components.relay()
    assert await relay.publish_pending() == 3
    assert relay.published_total == 1

    records = await read_records(components.infra.kafka, topic.name, count=1)
    assert [r.key for r in records] == [b"waiting"]
    assert await queued(components) == []
    assert await relay.publish_pending() == 0


async def test_a_parked_row_leaves_the_queue_and_is_counted_apart(
    components: Components,
) -> None:
    topic = await new_topic(components.infra.kafka, components.service.schema)
    async with components.pool.acquire() as conn, conn.transaction():
        await write_a_row_kafka_refuses(components, conn, topic)
    relay = components.relay()
    assert await relay.publish_pending() == 1
    assert relay.parked_total == 1
    assert await queued(components) == []
    parked = await parked_rows(components.service.dsn, components.service.schema)
    assert [row["event_type"] for row in parked] == ["test.too_large"]


async def test_a_purge_goes_past_a_parked_row_to_the_expired_rows_behind_it(
    components: Components,
) -> None:
    """The purge takes the oldest rows by position (no index names published_at): a parked
    row at the head, never published, must not end it there."""
    topic = await new_topic(components.infra.kafka, components.service.schema)
    async with components.pool.acquire() as conn, conn.transaction():
        await write_a_row_kafka_refuses(components, conn, topic)
        await components.publish_counters(conn, topic, 3)
    relay = components.relay(retention_hours=1.0)
    assert await relay.publish_pending() == 4
    await components.pool.execute(
        "UPDATE outbox SET published_at = now() - interval '2 hours' WHERE published_at IS NOT NULL"
    )

    assert await relay.purge_published(batch_size=2) == 3
    left = await components.pool.fetch("SELECT event_type FROM outbox")
    assert [row["event_type"] for row in left] == ["test.too_large"]


async def test_a_purge_goes_past_a_row_kept_at_the_head(components: Components) -> None:
    """A row committed late is published after the rows behind it, so it may still be kept
    when they expired: every batch holds it, and the purge goes on while a batch finds any."""
    topic = await new_topic(components.infra.kafka, components.service.schema)
    async with components.pool.acquire() as conn, conn.transaction():
        await components.publish_counters(conn, topic, 5)
    relay = components.relay(retention_hours=1.0)
    assert await relay.publish_pending() == 5
    await components.pool.execute(
        "UPDATE outbox SET published_at = now() - interval '2 hours' WHERE message_key <> 'c0'"
    )

    assert await relay.purge_published(batch_size=2) == 4
    left = await components.pool.fetch("SELECT message_key FROM outbox")
    assert [row["message_key"] for row in left] == ["c0"]


async def test_the_leading_relay_reads_by_key(components: Components) -> None:
    """Between two vacuums the queue is mostly dead entries: read by its key, an entry found
    dead once is skipped after; read whole (what the planner picks from the few live rows),
    every dead version is read again at every batch."""
    relay = components.relay()
    assert await relay.publish_pending() == 0  # takes the lead
    assert relay._conn is not None
    assert await relay._conn.fetchval("SHOW enable_seqscan") == "off"


async def test_the_queue_is_vacuumed_after_every_thousand_dead_rows(
    components: Components,
) -> None:
    """Almost every row of the queue is dead (deleted on publish): vacuumed whatever its size,
    so the relay's read does not walk a long run of dead entries."""
    options = await components.pool.fetchval(
        "SELECT reloptions FROM pg_class WHERE oid = 'outbox_pending'::regclass"
    )
    assert set(options or []) >= {
        "autovacuum_vacuum_scale_factor=0",
        "autovacuum_vacuum_threshold=1000",
        "vacuum_index_cleanup=on",
    }


async def test_the_migration_queues_the_rows_waiting_before_it(
    scratch_service: ScratchService,
) -> None:
    """An outbox upgraded with rows in it: the waiting one is queued, the published and the
    parked ones are not, and no index names published_at any more."""
    platform = load_migrations("platform", PLATFORM_MIGRATIONS)
    before = [m for m in platform if m.version < "0013_outbox_pending_queue"]
    pool = await create_pool(scratch_service.owner_dsn, scratch_service.schema, max_size=1)
    try:
        await apply_migrations(pool, scratch_service.schema, before)
        for stamps in ("", "published_at = now()", "parked_at = now(), park_reason = 'test'"):
            position = await pool.fetchval(
                """INSERT INTO outbox (event_id, topic, message_key, event_type, value)
                   VALUES ($1, 't', 'k', 'test', '{}') RETURNING position""",
                uuid.uuid4(),
            )
            if stamps:
                await pool.execute(f"UPDATE outbox SET {stamps} WHERE position = $1", position)
            else:
                waiting = position
        await apply_migrations(pool, scratch_service.schema, platform)

        assert await pool.fetchval(
            "SELECT array_agg(p) FROM outbox_pending, unnest(positions) p"
        ) == [waiting]
        indexed = await pool.fetchval(
            "SELECT string_agg(indexdef, '; ') FROM pg_indexes WHERE tablename = 'outbox'"
            " AND schemaname = current_schema()"
        )
        assert "published_at" not in indexed
    finally:
        await pool.close()
