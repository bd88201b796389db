"""Query plans as the real planner makes them, for tests that hold a lookup to its index."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from shared.db import Pool, create_pool
from tests.support.infra import ScratchService


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


async def explain(conn: Any, sql: str, *args: object) -> list[dict[str, Any]]:
    """Every node of `sql`'s plan, run (ANALYZE, BUFFERS) with `args`."""
    raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON, ANALYZE, BUFFERS) {sql}", *args)
    document = json.loads(raw) if isinstance(raw, str) else raw
    return list(plan_nodes(document[0]["Plan"]))


Lookup = tuple[str, str, tuple[object, ...], int, frozenset[str]]


async def read_no_whole_table(pool: Pool, table: str, rows: int, lookups: Sequence[Lookup]) -> None:
    """Each lookup (name, SQL, arguments, most rows a node of its plan may carry, indexes its
    plan must use), run on `table` seeded with `rows` rows, reads no more of it than its answer
    needs: no sequential scan of it, and its own index, not one that merely bounds the rows."""
    async with pool.acquire() as conn, conn.transaction():
        assert await conn.fetchval(f"SELECT count(*) FROM {table}") == rows
        for name, sql, args, most, indexes in lookups:
            nodes = await explain(conn, sql, *args)
            scanned = {n.get("Relation Name") for n in nodes if "Seq Scan" in n["Node Type"]}
            assert table not in scanned, f"{name}: all of {table} read ({scanned})"
            used = {n["Index Name"] for n in nodes if "Index Name" in n}
            assert indexes <= used, f"{name}: {sorted(indexes - used)} not used ({sorted(used)})"
            assert max(n.get("Actual Rows", 0) for n in nodes) <= most, name


Seed = Sequence[tuple[str, tuple[object, ...]]]


def statements(
    script: str, arguments: tuple[object, ...] = ()
) -> list[tuple[str, tuple[object, ...]]]:
    """`script`'s statements, each with `arguments` if it names a parameter."""
    return [(sql, arguments if "$1" in sql else ()) for sql in script.split(";") if sql.strip()]


@asynccontextmanager
async def seeded_pool(
    service: ScratchService, component: str, migrations: Path, seed: Seed
) -> AsyncIterator[Pool]:
    """A pool of the runtime role on a scratch schema `component`'s migrations made and its
    owner seeded (and analysed: ANALYZE is the owner's), statement by statement."""
    await service.migrate(component, migrations)
    owner = await create_pool(service.owner_dsn, service.schema, max_size=1)
    try:
        async with owner.acquire() as conn:
            for sql, arguments in seed:
                await conn.execute(sql, *arguments)
    finally:
        await owner.close()
    pool = await create_pool(service.dsn, service.schema)
    try:
        yield pool
    finally:
        await pool.close()


def seeded_pool_fixture(component: str, migrations: Path, seed: Seed) -> Callable[..., Any]:
    """A test module's `populated` fixture: `seeded_pool` on each test's scratch schema
    (`populated = seeded_pool_fixture("onboarding", MIGRATIONS, statements(SEED, (ROWS,)))`)."""

    @pytest.fixture
    async def populated(scratch_service: ScratchService) -> AsyncIterator[Pool]:
        async with seeded_pool(scratch_service, component, migrations, seed) as pool:
            yield pool

    return populated
