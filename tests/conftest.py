"""Test fixtures: a real Kafka broker and a real PostgreSQL (see `tests/support/infra.py` for
where they come from), an admin connection, scratch service schemas, and an in-memory span
exporter."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from tests.support.infra import (
    HOW_TO_START,
    INIT_SQL,
    Infra,
    ScratchService,
    scratch_schema,
)


def _docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    admin = os.environ.get("POLLINATE_ADMIN_DATABASE_URL")
    if kafka and admin:
        yield Infra(kafka, admin)
        return
    if not _docker_available():
        pytest.fail(HOW_TO_START, pytrace=False)
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    with (
        PostgresContainer(
            "postgres:16", username="postgres", password="postgres", dbname="pollinate"
        ) as pg,
        KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka_container,
    ):
        dsn = pg.get_connection_url().replace("postgresql+psycopg2://", "postgresql://")

        async def init() -> None:
            conn = await asyncpg.connect(dsn)
            await conn.execute(INIT_SQL.read_text())
            await conn.close()

        asyncio.run(init())
        yield Infra(kafka_container.get_bootstrap_server(), dsn)


@pytest.fixture
async def admin_db(infra: Infra) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    """A connection as the admin role: it reads any service's tables."""
    conn = await asyncpg.connect(infra.admin_dsn)
    yield conn
    await conn.close()


@pytest.fixture
async def scratch_service(infra: Infra) -> AsyncIterator[ScratchService]:
    async with scratch_schema(infra) as service:
        yield service


@pytest.fixture(scope="session")
def span_exporter() -> object:
    """An in-memory span exporter installed as this test process's tracer provider."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter
