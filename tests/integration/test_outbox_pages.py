"""The relay's publish mark keeps each row's new version on the row's own page.

A new version written to the same page is logged as the bytes that differ, not as the whole
event (migration 0010 leaves pages half empty for it), and only there can the mark be a HOT
update (migration 0013: test_outbox_queue.py). `benchmarks/outbox_relay.py --note-bytes 1100
--cost-only` measures the WAL: about 2,000 bytes a mark with full pages, about 360 with room
on them (before 0013)."""

from __future__ import annotations

import pytest

from tests.support.counter import Components, CounterIncremented
from tests.support.kafka import new_topic

pytestmark = pytest.mark.integration

# About the size of the chain's events (1.1-1.5 kB a row): five of them fill a full page.
BULKY = "x" * 1100


async def pages_of_rows(components: Components) -> dict[int, int]:
    """Each outbox row's heap page, by position."""
    rows = await components.pool.fetch(
        "SELECT position, (ctid::text::point)[0]::int AS page FROM outbox ORDER BY position"
    )
    return {row["position"]: row["page"] for row in rows}


async def test_a_marked_row_stays_on_its_page(components: Components) -> None:
    topic = await new_topic(components.infra.kafka, components.service.schema)
    for n in range(40):
        async with components.pool.acquire() as conn, conn.transaction():
            await components.outbox.publish(
                conn, topic, CounterIncremented(counter=f"{n}-{BULKY}", by=1), subject=str(n)
            )
    written = await pages_of_rows(components)
    assert len(written) == 40

    assert await components.relay().publish_pending() == 40

    assert (
        await components.pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        == 0
    )
    assert await pages_of_rows(components) == written
