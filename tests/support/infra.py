"""Where the tests' real Kafka broker and PostgreSQL come from, and throw-away schemas on them.

Both are the local stack's (`deploy/local-stack.sh`), named by the environment it prints
(`make test` starts the stack and sets them): the `KAFKA_*` variables (the operators' admin
principal), POLLINATE_KAFKA_CREDENTIALS (each service principal's password) and
POLLINATE_ADMIN_DATABASE_URL. Without them the integration tests fail, saying how to start it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import asyncpg
import pytest

from shared.db import PLATFORM_MIGRATIONS, Pool, apply_migrations, create_pool, load_migrations
from shared.kafka_client import KafkaConnection

ROOT = Path(__file__).resolve().parent.parent.parent
INIT_SQL = ROOT / "deploy" / "postgres" / "init.sql"

HOW_TO_START = (
    "no Kafka/PostgreSQL for the integration tests. Run `make test` (starts everything), or "
    '`deploy/local-stack.sh start && eval "$(deploy/local-stack.sh env)"` and run pytest again.'
)


def missing_capability(reason: str) -> NoReturn:
    """Skip a test whose prerequisite this machine lacks, except in CI (CI=true), where the
    repo's own scripts provide everything: there a missing capability is a failure, never a
    silent skip."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must provide this: {reason}", pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True)
class Infra:
    # The operators' admin principal: tests that play an operator or a forger use it; a
    # service process gets its own principal (`service_kafka`).
    kafka: KafkaConnection
    admin_dsn: str
    kafka_credentials: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Infra:
        needed = (
            "KAFKA_SASL_PASSWORD",
            "POLLINATE_KAFKA_CREDENTIALS",
            "POLLINATE_ADMIN_DATABASE_URL",
        )
        if not all(environ.get(name) for name in needed):
            pytest.fail(HOW_TO_START, pytrace=False)
        return cls(
            KafkaConnection.from_env(environ),
            environ["POLLINATE_ADMIN_DATABASE_URL"],
            Path(environ["POLLINATE_KAFKA_CREDENTIALS"]),
        )

    def service_kafka(self, service: str) -> KafkaConnection:
        """The broker as `service`'s own principal: only what the registry grants it."""
        password = (self.kafka_credentials / service).read_text().strip()
        return self.kafka.as_principal(service, password)

    def kafka_env(self, kafka: KafkaConnection) -> dict[str, str]:
        """The `KAFKA_*` variables a child process connects with."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "KAFKA_SECURITY_PROTOCOL": kafka.security_protocol,
            "KAFKA_SASL_MECHANISM": kafka.sasl_mechanism,
            "KAFKA_SASL_USERNAME": kafka.sasl_username,
            "KAFKA_SASL_PASSWORD": kafka.sasl_password.get_secret_value(),
        }

    def dsn_for(self, role: str, password: str) -> str:
        rest = self.admin_dsn.split("@", 1)[1]
        return f"postgresql://{role}:{password}@{rest}"


@dataclass(frozen=True)
class ScratchService:
    """A throw-away service footprint: its own schema, the owner role that migrates it and the
    runtime role that only reads and writes its rows (`dsn`, what a service connects as)."""

    schema: str
    dsn: str
    owner_dsn: str

    async def as_owner(self, ddl: str) -> None:
        """Run DDL as the schema's owner: a test's own tables (the runtime role gets DML on
        them through the schema's default privileges)."""
        owner = await asyncpg.connect(self.owner_dsn)
        try:
            await owner.execute(ddl)
        finally:
            await owner.close()

    async def migrate(self, component: str, migrations: Path | None = None) -> None:
        """Apply the platform's migrations and `component`'s own, as the schema's owner."""
        pool = await create_pool(self.owner_dsn, self.schema, max_size=1)
        try:
            wanted = load_migrations("platform", PLATFORM_MIGRATIONS)
            if migrations is not None:
                wanted += load_migrations(component, migrations)
            await apply_migrations(pool, self.schema, wanted)
        finally:
            await pool.close()


@asynccontextmanager
async def scratch_schema(infra: Infra) -> AsyncIterator[ScratchService]:
    """A throw-away schema and its role, provisioned like a service's; dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(infra.admin_dsn)
    try:
        await admin.execute(
            "SELECT platform_admin.provision_service($1, $2, $3)", schema, schema, schema
        )
    finally:
        await admin.close()
    try:
        yield ScratchService(
            schema,
            infra.dsn_for(f"{schema}_svc", schema),
            infra.dsn_for(f"{schema}_owner", schema),
        )
    finally:
        admin = await asyncpg.connect(infra.admin_dsn)
        try:
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
            for role in (f"{schema}_svc", f"{schema}_owner"):
                await admin.execute(f'DROP OWNED BY "{role}"')
                await admin.execute(f'DROP ROLE "{role}"')
        finally:
            await admin.close()


def scratch_pool_fixture(
    component: str, migrations: Path, max_size: int = 4
) -> Callable[..., AsyncIterator[Pool]]:
    """A test module's `pool` fixture: `migrated_pool` on each test's scratch schema
    (`pool = scratch_pool_fixture("incentives", MIGRATIONS)`)."""

    @pytest.fixture
    async def pool(scratch_service: ScratchService) -> AsyncIterator[Pool]:
        async with migrated_pool(scratch_service, component, migrations, max_size) as pool:
            yield pool

    return pool


@asynccontextmanager
async def migrated_pool(
    service: ScratchService, component: str, migrations: Path, max_size: int = 4
) -> AsyncIterator[Pool]:
    """A pool of the runtime role on a scratch schema its owner migrated: the platform tables
    and `component`'s own."""
    await service.migrate(component, migrations)
    pool = await create_pool(service.dsn, service.schema, max_size=max_size)
    try:
        yield pool
    finally:
        await pool.close()


def migrations_before(migrations: Path, first_left_out: str, into: Path) -> Path:
    """`into`, holding copies of `migrations`' scripts that come before `first_left_out`: a
    schema as an earlier release left it, to migrate the rest onto data written then."""
    into.mkdir()
    for script in sorted(migrations.glob("*.sql")):
        if script.name < first_left_out:
            shutil.copy(script, into / script.name)
    return into


async def statements_sent(infra: Infra, role: str) -> int:
    """Statements `role`'s clients have sent so far (top level, so round trips; not the
    foreign-key checks they run), from pg_stat_statements, which the local stack loads."""
    admin = await asyncpg.connect(infra.admin_dsn)
    try:
        sent = await admin.fetchval(
            """SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s
               JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = $1 AND s.toplevel""",
            role,
        )
    except (
        asyncpg.exceptions.UndefinedTableError,
        asyncpg.exceptions.ObjectNotInPrerequisiteStateError,
    ) as error:
        missing_capability(f"pg_stat_statements is not available: {error}")
    finally:
        await admin.close()
    return int(sent)


async def waits_for(conn: asyncpg.Connection | Pool, holder_pid: int) -> bool:
    """Whether a transaction waits for a lock the backend `holder_pid` holds: a test that holds
    a lock a request takes next knows the request has come that far (for `eventually`)."""
    waiting = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", holder_pid
    )
    return bool(waiting)
