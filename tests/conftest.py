"""Test fixtures: a real Kafka broker and a real PostgreSQL (see `tests/support/infra.py` for
where they come from), an admin connection, scratch service schemas, and an in-memory span
exporter."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.support.infra import Infra, ScratchService, scratch_schema


@pytest.fixture(scope="session")
def infra() -> Infra:
    return Infra.from_env(os.environ)


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
