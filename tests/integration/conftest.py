from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.db import create_pool
from shared.outbox import Outbox, make_producer
from tests.support.counter import COUNTER_TABLE, Components
from tests.support.infra import Infra, ScratchService
from tests.support.processes import service_processes

pytestmark = pytest.mark.integration


@pytest.fixture
async def components(infra: Infra, scratch_service: ScratchService) -> AsyncIterator[Components]:
    await scratch_service.migrate("platform")
    await scratch_service.as_owner(COUNTER_TABLE)
    pool = await create_pool(scratch_service.dsn, scratch_service.schema, max_size=8)
    producer = make_producer(infra.kafka, client_id=scratch_service.schema)
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
