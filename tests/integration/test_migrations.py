"""Versioned migrations on a real schema: applied once, and an edited applied migration refused."""

from __future__ import annotations

import pytest

from shared.db import Migration, MigrationChanged, apply_migrations, create_pool
from tests.conftest import ScratchService

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
