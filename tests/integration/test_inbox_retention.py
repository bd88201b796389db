"""The inbox forgets processed event ids older than the topics' retention, in batches: the
table stops growing without bound, and what Kafka may still deliver again is kept."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from shared.clock import now
from shared.inbox import purge_inbox
from shared.settings import ServiceSettings
from tests.support.counter import Components

pytestmark = pytest.mark.integration


async def test_rows_older_than_the_retention_go_in_batches_and_newer_ones_stay(
    components: Components,
) -> None:
    moment = now()
    ages = [timedelta(hours=hours) for hours in (400, 300, 200, 170, 169, 30, 1)] + [
        timedelta(seconds=1)
    ]
    await components.pool.executemany(
        """INSERT INTO inbox (consumer, event_id, event_type, topic, kafka_partition,
                              kafka_offset, processed_at)
           VALUES ('c', $1, 't', 'topic', 0, $2, $3)""",
        [(uuid.uuid4(), offset, moment - age) for offset, age in enumerate(ages)],
    )
    retention = timedelta(hours=ServiceSettings(service_name="t").inbox_retention_hours)
    assert retention == timedelta(hours=168)  # the local broker's log.retention.hours

    purged = await purge_inbox(components.pool, moment - retention, batch_size=2)

    assert purged == 5
    kept = await components.pool.fetch("SELECT kafka_offset FROM inbox ORDER BY kafka_offset")
    assert [row["kafka_offset"] for row in kept] == [5, 6, 7]
    assert await purge_inbox(components.pool, moment - retention, batch_size=2) == 0
