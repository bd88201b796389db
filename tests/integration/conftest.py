from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaProducer
from pydantic import Field

from shared.db import PLATFORM_MIGRATIONS, Pool, apply_migrations, create_pool, load_migrations
from shared.events import EventPayload, event_type
from shared.outbox import Outbox, OutboxRelay, make_producer
from tests.conftest import Infra, ScratchService
from tests.processes import service_processes

pytestmark = pytest.mark.integration

COUNTER_TABLE = """
CREATE TABLE IF NOT EXISTS counters (name text PRIMARY KEY, value bigint NOT NULL);
CREATE TABLE IF NOT EXISTS seen (aggregate text NOT NULL, seq int NOT NULL, trace_id text);
CREATE TABLE IF NOT EXISTS known_partners (partner_id text PRIMARY KEY);
"""


@event_type("test.counter_incremented.v1")
class CounterIncremented(EventPayload):
    counter: str
    by: int = Field(gt=0)
    seq: int = 0
    partner_id: str | None = None


@dataclass
class Components:
    infra: Infra
    service: ScratchService
    pool: Pool
    outbox: Outbox
    producer: AIOKafkaProducer

    def relay(self, **kwargs: object) -> OutboxRelay:
        return OutboxRelay(self.pool, self.producer, self.service.schema, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
async def components(infra: Infra, scratch_service: ScratchService) -> AsyncIterator[Components]:
    pool = await create_pool(scratch_service.dsn, scratch_service.schema, max_size=8)
    await apply_migrations(
        pool, scratch_service.schema, load_migrations("platform", PLATFORM_MIGRATIONS)
    )
    await pool.execute(COUNTER_TABLE)
    producer = make_producer(infra.kafka_bootstrap, client_id=scratch_service.schema)
    await producer.start()
    yield Components(
        infra, scratch_service, pool, Outbox(scratch_service.schema, "pollinate/test"), producer
    )
    await producer.stop()
    await pool.close()


@pytest.fixture(scope="package")
async def deals_instances(infra: Infra) -> AsyncIterator[list[str]]:
    """Two deals processes sharing one schema and one consumer group (expiry checked often)."""
    async with service_processes(
        infra, "deals", count=2, env={"DEALS_EXPIRY_CHECK_SECONDS": "0.3"}
    ) as urls:
        yield urls
