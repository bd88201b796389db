"""Least privilege: each service role touches only its own schema."""

from __future__ import annotations

import itertools

import asyncpg
import pytest

from shared.db import PLATFORM_MIGRATIONS, apply_migrations, create_pool, load_migrations
from shared.topics import SERVICES
from tests.support.infra import Infra

pytestmark = pytest.mark.integration


def role_dsn(infra: Infra, service: str) -> str:
    return infra.dsn_for(f"{service}_svc", f"{service}_svc")


async def test_each_service_role_is_refused_other_schemas(infra: Infra) -> None:
    for service in SERVICES:
        pool = await create_pool(role_dsn(infra, service), service)
        try:
            await apply_migrations(pool, service, load_migrations("platform", PLATFORM_MIGRATIONS))
            assert await pool.fetchval("SELECT count(*) >= 0 FROM outbox")  # its own: fine
        finally:
            await pool.close()

    for own, other in itertools.permutations(SERVICES, 2):
        conn = await asyncpg.connect(role_dsn(infra, own))
        try:
            with pytest.raises(
                asyncpg.InsufficientPrivilegeError, match=f"permission denied for schema {other}"
            ):
                await conn.fetch(f"SELECT * FROM {other}.outbox")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(f"CREATE TABLE {other}.intruder (id int)")
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
