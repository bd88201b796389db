"""The deployed rules of engagement are stored and activated once, and only a seed that
committed is remembered: a seed inside a transaction that rolled back is done again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.deals.policy import PolicyStore, load_policy
from shared.db import Connection, Pool, advisory_key
from tests.support.deals import deals_pool
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

# After the seed's activation (stamped with the clock as it is written).
SOON = datetime.now(UTC) + timedelta(hours=1)


async def _stored(db: Pool | Connection, version: str) -> tuple[int, int]:
    versions = await db.fetchval("SELECT count(*) FROM policy_versions WHERE version = $1", version)
    activations = await db.fetchval(
        "SELECT count(*) FROM policy_activations WHERE version = $1", version
    )
    return versions, activations


async def test_a_seed_undone_by_its_callers_rollback_is_done_again(infra: Infra) -> None:
    store = PolicyStore(load_policy(""))
    version = store.deployed.version
    async with deals_pool(infra) as pool:
        async with pool.acquire() as conn:
            caller = conn.transaction()
            await caller.start()
            assert await store.in_force(conn, SOON) == store.deployed
            assert await _stored(conn, version) == (1, 1)  # inside the caller's transaction
            await caller.rollback()
        assert await _stored(pool, version) == (0, 0)

        async with pool.acquire() as conn, conn.transaction():
            row = await store.in_force_row(conn, SOON)
        assert row is not None
        assert row["version"] == version
        assert await _stored(pool, version) == (1, 1)


async def test_the_start_seed_is_remembered_and_a_second_store_adds_nothing(
    infra: Infra,
) -> None:
    async with deals_pool(infra) as pool:
        started = PolicyStore(load_policy(""))
        async with pool.acquire() as conn:
            await started.seed(conn)  # as the service does at start: outside any transaction
        version = started.deployed.version
        assert await _stored(pool, version) == (1, 1)

        # While another transaction holds the seeding lock, the store seeded at start answers
        # without it; a store not yet seeded waits for it (here: until the lock timeout).
        async with pool.acquire() as holder, holder.transaction():
            await holder.execute(
                "SELECT pg_advisory_xact_lock($1)", advisory_key("deals", "policy-versions")
            )
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SET LOCAL lock_timeout = '2s'")
                row = await started.in_force_row(conn, SOON)
                assert row is not None
                assert row["version"] == version
            unseeded = PolicyStore(load_policy(""))
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SET LOCAL lock_timeout = '50ms'")
                with pytest.raises(asyncpg.LockNotAvailableError):
                    await unseeded.in_force_row(conn, SOON)

        # Another instance starting finds the version in force and adds nothing.
        second = PolicyStore(load_policy(""))
        async with pool.acquire() as conn:
            await second.seed(conn)
            await second.seed(conn)
        assert await _stored(pool, version) == (1, 1)
