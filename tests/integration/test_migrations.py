"""Versioned migrations on a real schema: applied once, and an edited applied migration refused."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from shared.db import (
    Migration,
    MigrationChanged,
    MigrationsPending,
    apply_migrations,
    create_pool,
    load_migrations,
    require_migrated,
)
from tests.support.infra import ScratchService

pytestmark = pytest.mark.integration


async def test_applied_once_and_an_edited_migration_is_refused(
    scratch_service: ScratchService,
) -> None:
    first = Migration("svc", "0001_init", "CREATE TABLE things (id int PRIMARY KEY);")
    pool = await create_pool(scratch_service.owner_dsn, scratch_service.schema)
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


def migrations_in(directory: Path, files: dict[str, str]) -> Path:
    for name, sql in files.items():
        (directory / name).write_text(sql)
    return directory


async def test_the_runtime_role_refuses_to_run_on_a_schema_lacking_a_migration(
    scratch_service: ScratchService, tmp_path: Path
) -> None:
    folder = migrations_in(tmp_path, {"0001_init.sql": "CREATE TABLE things (id int);"})
    await scratch_service.migrate("svc", folder)
    wanted = load_migrations("svc", folder)
    pool = await create_pool(scratch_service.dsn, scratch_service.schema)
    try:
        await require_migrated(pool, scratch_service.schema, wanted)
        (folder / "0002_more.sql").write_text("ALTER TABLE things ADD COLUMN name text;")
        with pytest.raises(MigrationsPending, match=r"lacks migrations svc/0002_more: run"):
            await require_migrated(pool, scratch_service.schema, load_migrations("svc", folder))
        (folder / "0001_init.sql").write_text("CREATE TABLE things (id bigint);")
        with pytest.raises(MigrationChanged, match="differ from the code: svc/0001_init"):
            await require_migrated(pool, scratch_service.schema, load_migrations("svc", folder))
        # Nor can it apply them itself: it may not create anything in its own schema.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await apply_migrations(pool, scratch_service.schema, load_migrations("svc", folder))
    finally:
        await pool.close()


async def test_a_connection_released_inside_a_transaction_comes_back_rolled_back(
    scratch_service: ScratchService, tmp_path: Path
) -> None:
    """The pool's light reset: nothing session-level is reset, but an open transaction is."""
    await scratch_service.migrate(
        "svc", migrations_in(tmp_path, {"0001_kept.sql": "CREATE TABLE kept (n int);"})
    )
    pool = await create_pool(scratch_service.dsn, scratch_service.schema, max_size=1)
    try:
        conn = await pool.acquire()
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO kept VALUES (1)")
        await pool.release(conn)

        async with pool.acquire() as again:  # the only connection: the same one
            assert not again.is_in_transaction()
            assert await again.fetchval("SELECT count(*) FROM kept") == 0
    finally:
        await pool.close()
