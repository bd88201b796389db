"""Least privilege: each service role touches only its own schema."""

from __future__ import annotations

import itertools

import asyncpg
import pytest

from shared.db import PLATFORM_MIGRATIONS, apply_migrations, create_pool, load_migrations
from shared.topics import SERVICES
from tests.support.infra import Infra
from tests.support.processes import migrate

pytestmark = pytest.mark.integration


def role_dsn(infra: Infra, service: str) -> str:
    return infra.dsn_for(f"{service}_svc", f"{service}_svc")


def owner_dsn(infra: Infra, service: str) -> str:
    return infra.dsn_for(f"{service}_owner", f"{service}_owner")


async def test_each_service_role_is_refused_other_schemas(infra: Infra) -> None:
    for service in SERVICES:
        pool = await create_pool(owner_dsn(infra, service), service)
        try:
            await apply_migrations(pool, service, load_migrations("platform", PLATFORM_MIGRATIONS))
        finally:
            await pool.close()
        conn = await asyncpg.connect(role_dsn(infra, service))
        try:
            assert await conn.fetchval("SELECT count(*) >= 0 FROM outbox")  # its own: fine
        finally:
            await conn.close()

    for own, other in itertools.permutations(SERVICES, 2):
        for dsn in (role_dsn(infra, own), owner_dsn(infra, own)):
            conn = await asyncpg.connect(dsn)
            try:
                with pytest.raises(
                    asyncpg.InsufficientPrivilegeError,
                    match=f"permission denied for schema {other}",
                ):
                    await conn.fetch(f"SELECT * FROM {other}.outbox")
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(f"CREATE TABLE {other}.intruder (id int)")
            finally:
                await conn.close()


async def test_the_running_service_cannot_disable_the_ledgers_append_only_triggers(
    infra: Infra,
) -> None:
    """The runtime role reads and writes rows; only the schema's owner (the migration step)
    may change the schema, so a compromised service cannot rewrite the ledger."""
    await migrate(infra, "incentives")
    conn = await asyncpg.connect(role_dsn(infra, "incentives"))
    try:
        assert await conn.fetchval("SELECT count(*) >= 0 FROM ledger_entries")
        for statement in (
            "ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_append_only",
            "ALTER TABLE ledger_entries DISABLE TRIGGER ALL",
            "DROP TRIGGER ledger_entries_append_only ON ledger_entries",
            "ALTER TABLE mdf_entries DISABLE TRIGGER mdf_entries_append_only",
            "TRUNCATE ledger_entries",
            "CREATE TABLE incentives.intruder (id int)",
            "CREATE OR REPLACE FUNCTION incentives.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "SET ROLE incentives_owner",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
    finally:
        await conn.close()


async def test_service_roles_cannot_create_outside_their_schema(infra: Infra) -> None:
    conn = await asyncpg.connect(role_dsn(infra, "deals"))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE public.intruder (id int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE SCHEMA intruder")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE ROLE intruder")
    finally:
        await conn.close()


@pytest.mark.parametrize("database", ["postgres", "template1"])
async def test_service_roles_reach_only_the_platforms_database(infra: Infra, database: str) -> None:
    elsewhere = role_dsn(infra, "deals").rsplit("/", 1)[0] + f"/{database}"
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for database"):
        await asyncpg.connect(elsewhere)
