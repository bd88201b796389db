"""Money through the platform's pools (numeric values travel as text): every value comes back
as Postgres stores it (the same number, its scale kept, a whole number without an exponent),
alone or in an array; other parameter types are read as asyncpg's own encoder reads them; and
what a text codec cannot do fails loudly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest

from services.attribution.records import numeric
from shared.db import Pool, create_pool
from tests.support.infra import ScratchService

pytestmark = pytest.mark.integration

SENT = [
    Decimal("10000"),
    Decimal("12.50"),
    Decimal("-0.01"),
    Decimal("1E+2"),
    Decimal("75110097642892.12"),
    Decimal("0.000000000000000000000000000001"),
    Decimal("123456789012345678901234567890.123456789"),
    Decimal("NaN"),
    Decimal("Infinity"),
    Decimal("-Infinity"),
    Decimal("sNaN"),
    None,
]
# As Postgres itself prints them: the scale is kept, 1E+2 is the integer 100, every NaN is NaN
# (asyncpg's binary decoder gave 10000 back as 1E+4).
STORED = [
    "10000",
    "12.50",
    "-0.01",
    "100",
    "75110097642892.12",
    "0.000000000000000000000000000001",
    "123456789012345678901234567890.123456789",
    "NaN",
    "Infinity",
    "-Infinity",
    "NaN",
    None,
]


@pytest.fixture
async def pool(scratch_service: ScratchService) -> AsyncIterator[Pool]:
    """A pool as every service makes one."""
    made = await create_pool(scratch_service.dsn, scratch_service.schema)
    try:
        yield made
    finally:
        await made.close()


def exact(values: list[Decimal | None]) -> list[object]:
    """Comparable to the last digit and sign (NaN is not equal to itself)."""
    return [None if value is None else value.as_tuple() for value in values]


async def test_numeric_values_come_back_as_postgres_stores_them(pool: Pool) -> None:
    async with pool.acquire() as conn:
        alone = [await conn.fetchval("SELECT $1::numeric", value) for value in SENT]
        in_array = await conn.fetchval("SELECT $1::numeric[]", SENT)
        printed = await conn.fetchval("SELECT $1::numeric[]::text[]", SENT)
        read = await conn.fetchval("SELECT $1::text[]::numeric[]", STORED)
    assert printed == STORED
    assert (
        exact(alone)
        == exact(in_array)
        == exact(read)
        == exact([None if value is None else Decimal(value) for value in STORED])
    )


async def test_other_parameter_types_are_read_as_asyncpg_reads_them(pool: Pool) -> None:
    """An int is itself, a float its exact binary value (never its shortest repr), and a text
    that is no number is refused before it reaches the database."""
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT $1::numeric::text", 7) == "7"
        assert await conn.fetchval("SELECT $1::numeric::text", "12.5") == "12.5"
        assert await conn.fetchval("SELECT $1::numeric::text", 0.1) == (
            "0.1000000000000000055511151231257827021181583404541015625"
        )
        with pytest.raises(asyncpg.DataError, match="invalid input for query argument"):
            await conn.fetchval("SELECT $1::numeric", "ten")


HELD = ["10000", "1E+4", "-1.2E+5", "1.50E+1", "12.50", "0.0010", "-0", "-0.00", "0E+3", "-7"]


async def test_attribution_holds_an_amount_as_a_fresh_read_gives_it(pool: Pool) -> None:
    """A later snapshot in the same batch sees its predecessor's amount from memory, and its
    text is part of the change's description: it must be what reading the row back gives."""
    async with pool.acquire() as conn:
        fresh = [await conn.fetchval("SELECT $1::numeric", Decimal(value)) for value in HELD]
    assert [str(numeric(Decimal(value))) for value in HELD] == [str(value) for value in fresh]
    assert [str(value) for value in fresh[:3]] == ["10000", "10000", "-120000"]


async def test_a_row_value_holding_a_numeric_is_refused_loudly(pool: Pool) -> None:
    """asyncpg reads a row value in binary and cannot hand its numeric to a text codec: such a
    query fails at once (never a wrong number), and its columns or its JSON read fine."""
    async with pool.acquire() as conn:
        with pytest.raises(UnicodeDecodeError):
            await conn.fetchval("SELECT (1, 2.5::numeric)")
        assert await conn.fetchrow("SELECT 1 AS n, 2.5::numeric AS amount") == (
            1,
            Decimal("2.5"),
        )
        assert await conn.fetchval("SELECT row_to_json(r)::text FROM (SELECT 2.5 AS a) r") == (
            '{"a":2.5}'
        )


async def test_a_pool_reads_days_and_quarters_in_utc_whatever_the_servers_zone(
    scratch_service: ScratchService, admin_db: asyncpg.Connection
) -> None:
    """Found in review: on a server whose TimeZone is not UTC, a timestamp cut into a quarter
    or compared with a date fell on the server's day, while the services' Python counts in UTC.
    The runtime role here defaults to New York; the platform's connections read UTC."""
    role = await asyncpg.connect(scratch_service.dsn)
    try:
        user = await role.fetchval("SELECT current_user")
    finally:
        await role.close()
    await admin_db.execute(f"ALTER ROLE \"{user}\" SET TimeZone = 'America/New_York'")
    plain = await asyncpg.connect(scratch_service.dsn)
    try:
        assert await plain.fetchval("SHOW TimeZone") == "America/New_York"  # the role's default
    finally:
        await plain.close()
    pool = await create_pool(scratch_service.dsn, scratch_service.schema)
    try:
        quarter = "SELECT to_char(timestamptz '2026-10-01 02:00+00', 'YYYY-\"Q\"Q')"
        assert await pool.fetchval(quarter) == "2026-Q4"  # 2026-09-30 22:00 in New York
    finally:
        await pool.close()
