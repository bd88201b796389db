"""Postgres plumbing: connection pools bound to a service's schema, and versioned migrations."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from pydantic import BaseModel

log = logging.getLogger(__name__)

PLATFORM_MIGRATIONS = Path(__file__).parent / "migrations"

# The database is out of reach for now (refused, dropped or timed-out connections, a server
# shutting down or starting): nothing is wrong with the request, it can be tried again.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
)
# Postgres ended the transaction so that a concurrent one could go on (a deadlock's victim, a
# serialization conflict, a lock not granted at once): nothing was recorded, and the same work
# tried again succeeds.
TRANSACTION_COLLISIONS: tuple[type[Exception], ...] = (
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.LockNotAvailableError,
)

if TYPE_CHECKING:  # asyncpg's classes are generic only in its stubs
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
    # A connection of our own or one lent by a pool: handlers accept either.
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
else:
    Pool = asyncpg.Pool
    Connection = asyncpg.Connection | PoolConnectionProxy


async def _reset_on_release(conn: asyncpg.Connection) -> None:
    """What a connection needs when it goes back to the pool: only a rollback of a transaction
    left open. The platform keeps no session state on pooled connections (locks and settings
    are transaction-scoped; the migration lock is undone by its owner; the relay's lock and
    LISTEN live on a connection of its own, see connect_alone), so asyncpg's default reset
    (RESET ALL, CLOSE ALL, UNLISTEN *, pg_advisory_unlock_all) would cost a round trip per
    release for nothing."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


def _numeric_as_text(value: Any) -> str:
    """A numeric parameter as Postgres reads it back exactly. Anything but a Decimal is made
    one first, as asyncpg's own encoder does (a float by its exact binary value); every NaN
    is Postgres' one NaN (it refuses `sNaN` and `-NaN` as text; the binary codec sent NaN)."""
    number = value if isinstance(value, Decimal) else Decimal(value)
    return "NaN" if number.is_nan() else str(number)


async def _numeric_in_text(conn: asyncpg.Connection) -> None:
    """Numeric values travel as text: asyncpg's binary codec takes every Decimal apart digit
    by digit (`as_tuple`) on the way out and builds it from its parts on the way in. On the
    2-core machine, a statement sending four arrays of 40 amounts cost 748 us of client CPU in
    binary and 333 us as text, reading 160 amounts 411 and 280 us; the same values come back
    (scale kept, NaN and infinities included). Incentives, which writes the most money, spent
    2-3% less CPU per credit in three runs in turns.

    What asyncpg cannot do with a text codec: read a numeric inside a row value (a query
    returning `(a, amount)` or a table's whole row fails with a UnicodeDecodeError) or a
    `numrange`. Select the columns themselves (or the row as JSON); a test pins the failure."""
    await conn.set_type_codec(
        "numeric", encoder=_numeric_as_text, decoder=Decimal, schema="pg_catalog", format="text"
    )


async def create_pool(dsn: str, schema: str, *, min_size: int = 1, max_size: int = 10) -> Pool:
    """A pool whose connections only see the service's own schema."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        server_settings=_session_settings(schema, f"pollinate-{schema}"),
        reset=_reset_on_release,
        init=_numeric_in_text,
    )
    assert pool is not None
    return pool


async def connect_alone(
    dsn: str, schema: str, purpose: str, *, command_timeout: float | None = None
) -> asyncpg.Connection[asyncpg.Record]:
    """A connection of its own, outside the pool, for session state no pooled connection may
    carry (the relay's lock and settings): whoever holds it ends the session with it."""
    return await asyncpg.connect(
        dsn,
        command_timeout=command_timeout,
        server_settings=_session_settings(schema, f"pollinate-{schema}-{purpose}"),
    )


def _session_settings(schema: str, application_name: str) -> dict[str, str]:
    """Every platform connection sees only its service's schema, names itself in
    pg_stat_activity, and reads days and quarters in UTC, as the services' Python does: on a
    server whose TimeZone is another, a timestamp compared with a date or cut into a quarter
    (`to_char(..., 'YYYY-"Q"Q')`) fell on the server's day (found in review: the first hours of
    a UTC quarter landed in the previous one for some KPI figures and not for others)."""
    return {"search_path": schema, "application_name": application_name, "TimeZone": "UTC"}


Shape = TypeVar("Shape")


def from_row(shape: type[Shape], row: asyncpg.Record | Mapping[str, Any], **computed: Any) -> Shape:
    """`shape` (a pydantic model or a dataclass) from a row whose columns carry its field
    names: every field not in `computed` is the column of the same name. A field the row has
    no column for is left to its default (a required one is refused by the model)."""
    names = (
        list(shape.model_fields)
        if issubclass(shape, BaseModel)
        else [field.name for field in dataclasses.fields(shape)]  # type: ignore[arg-type]
    )
    present = set(row.keys())  # a record gives its keys as an iterator
    read = {name: row[name] for name in names if name not in computed and name in present}
    build: Any = shape  # a model's or dataclass's own constructor, by keyword
    return build(**read, **computed)  # type: ignore[no-any-return]


def columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """A batch of rows (tuples of one width) as one list per column: the arguments of an
    `INSERT ... SELECT * FROM unnest($1::t[], $2::t[], ...)` writing the batch in one statement.
    The batch must not be empty (it would have no columns)."""
    assert rows, "an empty batch has no columns"
    return [list(column) for column in zip(*rows, strict=True)]


async def delete_in_batches(
    pool: Pool, statement: str, *args: Any, batch_size: int, until_none: bool = False
) -> int:
    """Run `statement`, a DELETE of at most its last parameter's rows, with `args` and then
    `batch_size`, each run its own transaction (short row locks, WAL in small steps), until a
    run deletes fewer than `batch_size`, or with `until_none` until a run deletes nothing (a
    statement whose batch may hold rows it keeps). Returns how many rows went."""
    if batch_size < 1:
        raise ValueError("a purge deletes at least one row a batch")
    deleted = 0
    while True:
        result = await pool.execute(statement, *args, batch_size)
        batch = int(result.split()[-1])
        deleted += batch
        if batch == 0 or (batch < batch_size and not until_none):
            return deleted


def advisory_key(*parts: str) -> int:
    """A stable signed 64-bit advisory-lock key for a name (the same in every process)."""
    digest = hashlib.blake2b("/".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def lock_in_order(conn: Connection, keys: Iterable[int]) -> None:
    """Take the transaction's advisory locks on `keys` together, in one statement, in ascending
    order: transactions that each take their whole set this way never wait on each other in
    opposite orders. No keys, no round trip."""
    ordered = sorted(set(keys))
    if ordered:
        await conn.execute(
            "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k ORDER BY k", ordered
        )


class MigrationChanged(RuntimeError):
    """An applied migration's text no longer matches what the database recorded."""


@dataclass(frozen=True)
class Migration:
    component: str
    version: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def has_statements(self) -> bool:
        # asyncpg fails on a script that is only comments; such a migration is a placeholder.
        code = [
            line
            for line in self.sql.splitlines()
            if line.strip() and not line.strip().startswith("--")
        ]
        return bool(code)


def load_migrations(component: str, directory: Path) -> list[Migration]:
    return [
        Migration(component, path.stem, path.read_text())
        for path in sorted(directory.glob("*.sql"))
    ]


class MigrationsPending(RuntimeError):
    """The schema lacks migrations the code needs: the running service may not apply them
    (its role only reads and writes rows); the schema's owner does."""


async def require_migrated(pool: Pool, schema: str, migrations: list[Migration]) -> None:
    """Refuse to run on a schema that lacks a migration or holds an edited one."""
    try:
        rows = await pool.fetch("SELECT component, version, checksum FROM schema_migrations")
    except asyncpg.UndefinedTableError:
        rows = []
    done = {(r["component"], r["version"]): r["checksum"] for r in rows}
    missing = [
        f"{m.component}/{m.version}" for m in migrations if (m.component, m.version) not in done
    ]
    changed = [
        f"{m.component}/{m.version}"
        for m in migrations
        if done.get((m.component, m.version)) not in (None, m.checksum)
    ]
    if changed:
        raise MigrationChanged(
            f"schema {schema!r} holds migrations that differ from the code: {', '.join(changed)}"
        )
    if missing:
        raise MigrationsPending(
            f"schema {schema!r} lacks migrations {', '.join(missing)}: run "
            f"`python -m services.{schema} migrate` (as the schema's owner, MIGRATION_DATABASE_URL)"
        )


async def apply_migrations(pool: Pool, schema: str, migrations: list[Migration]) -> list[str]:
    """Apply the migrations not applied yet, each in its own transaction, in order.

    Several instances of one service may start at once: an advisory lock makes one of them
    migrate while the others wait, then find nothing left to do.
    """
    applied_now: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", advisory_key(schema, "migrations"))
        try:
            await conn.execute(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    component  text NOT NULL,
                    version    text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (component, version)
                )
                """
            )
            await conn.execute(
                "ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text"
            )
            done = {
                (r["component"], r["version"]): r["checksum"]
                for r in await conn.fetch(
                    "SELECT component, version, checksum FROM schema_migrations"
                )
            }
            for migration in migrations:
                key = (migration.component, migration.version)
                if key in done:
                    if done[key] not in (None, migration.checksum):
                        # Editing an applied migration would silently diverge this database
                        # from a fresh one: refuse, and say what to do.
                        raise MigrationChanged(
                            f"migration {migration.component}/{migration.version} changed after "
                            f"it was applied to schema {schema!r}; add a new migration instead "
                            "(in development: reset the schema)"
                        )
                    if done[key] is None:  # recorded before checksums existed
                        await conn.execute(
                            """UPDATE schema_migrations SET checksum = $3
                               WHERE component = $1 AND version = $2""",
                            *key,
                            migration.checksum,
                        )
                    continue
                async with conn.transaction():
                    if migration.has_statements:
                        await conn.execute(migration.sql)
                    await conn.execute(
                        """INSERT INTO schema_migrations (component, version, checksum)
                           VALUES ($1, $2, $3)""",
                        migration.component,
                        migration.version,
                        migration.checksum,
                    )
                applied_now.append(f"{migration.component}/{migration.version}")
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", advisory_key(schema, "migrations"))
    if applied_now:
        log.info("applied migrations", extra={"schema": schema, "migrations": applied_now})
    return applied_now
