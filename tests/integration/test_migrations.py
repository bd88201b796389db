"""Versioned migrations on a real schema: applied once, and an edited applied migration refused."""

from __future__ import annotations

import pytest

from shared.db import Migration, MigrationChanged, apply_migrations, create_pool
from tests.support.infra import ScratchService

pytestmark = pytest.mark.integration


async def test_applied_once_and_an_edited_migration_is_refused(
    scratch_service: ScratchService,
) -> None:
    first = Migration("svc", "0001_init", "CREATE TABLE things (id int PRIMARY KEY);")
    pool = await create_pool(scratch_service.dsn, scratch_service.schema)
    try:
        assert await apply_migrations(pool, scratch_service.schema, [first]) == ["svc/0001_init"]
        assert await apply_migrations(pool, scratch_service.schema, [first]) == []

        edited = Migration("svc", "0001_init", first.sql.replace("id int", "id bigint"))
        with pytest.raises(MigrationChanged, match="svc/0001_init changed after it was applied"):
            await apply_migrations(pool, scratch_service.schema, [edited])

        second = Migration("svc", "0002_more", "ALTER TABLE things ADD COLUMN name text;")
        assert await apply_migrations(pool, scratch_service.schema, [first, second]) == [
            "svc/0002_more"
        ]
    finally:
        await pool.close()


async def test_a_connection_released_inside_a_transaction_comes_back_rolled_back(
    scratch_service: ScratchService,
) -> None:
    """The pool's light reset: nothing session-level is reset, but an open transaction is."""
    pool = await create_pool(scratch_service.dsn, scratch_service.schema, max_size=1)
    try:
        await pool.execute("CREATE TABLE kept (n int)")
        conn = await pool.acquire()
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO kept VALUES (1)")
        await pool.release(conn)

        async with pool.acquire() as again:  # the only connection: the same one
            assert not again.is_in_transaction()
            assert await again.fetchval("SELECT count(*) FROM kept") == 0
    finally:
        await pool.close()
