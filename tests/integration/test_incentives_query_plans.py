"""The MDF lookups that ran over every lot stay index lookups as lots accumulate (a lot per
credit, kept for years): the real queries, EXPLAINed by the real planner on an incentives
schema holding 60k lots of 500 partners, a few of them due to expire."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.incentives.mdf_repository import PARTNERS_WITH_LOTS_DUE_SQL
from services.incentives.views import FUND_LOTS_SQL
from shared.db import Pool, create_pool
from tests.support.infra import ROOT, ScratchService
from tests.support.plans import explain

pytestmark = pytest.mark.integration
MIGRATIONS = ROOT / "services" / "incentives" / "migrations"
LOTS = 60_000
DUE = 30

# A year of lots ahead (two in three still live), and DUE live lots past their expiry.
SEED = """
INSERT INTO mdf_funds (partner_id, created_at)
SELECT 'p-' || i, now() FROM generate_series(0, 499) AS i;
INSERT INTO mdf_lots (lot_id, partner_id, credit_id, amount, remaining, expires_at, created_at)
SELECT 'lot-' || i, 'p-' || (i % 500), 'cr-' || i, 100,
    CASE WHEN i % 3 = 0 THEN 0 ELSE 100 END,
    CASE WHEN i <= $1 THEN now() - interval '1 day' ELSE now() + (1 + i % 365) * interval '1 day' END,
    now() - interval '1 year'
FROM generate_series(1, $2) AS i;
ANALYZE mdf_funds;
ANALYZE mdf_lots;
"""


@pytest.fixture
async def populated(scratch_service: ScratchService) -> AsyncIterator[Pool]:
    await scratch_service.migrate("incentives", Path(MIGRATIONS))
    # Seeded and analysed by the owner (ANALYZE is the owner's); queried as the service.
    owner = await create_pool(scratch_service.owner_dsn, scratch_service.schema, max_size=1)
    async with owner.acquire() as conn:
        for statement in SEED.split(";"):
            if statement.strip():
                args = (DUE * 3, LOTS) if "$1" in statement else ()
                await conn.execute(statement, *args)
    await owner.close()
    pool = await create_pool(scratch_service.dsn, scratch_service.schema)
    yield pool
    await pool.close()


async def test_mdf_lookups_read_their_index_not_every_lot(populated: Pool) -> None:
    lookups = [
        # The expiry job's question, every minute: the due lots alone.
        ("partners with lots due", PARTNERS_WITH_LOTS_DUE_SQL, (datetime.now(UTC), 200), 200),
        # A partner's fund view: its own lots, all of them, in expiry order.
        ("a partner's lots", FUND_LOTS_SQL, ("p-42",), LOTS // 500),
    ]
    async with populated.acquire() as conn, conn.transaction():
        assert await conn.fetchval("SELECT count(*) FROM mdf_lots") == LOTS
        for name, sql, args, most in lookups:
            nodes = await explain(conn, sql, *args)
            scanned = {n.get("Relation Name") for n in nodes if "Seq Scan" in n["Node Type"]}
            assert "mdf_lots" not in scanned, f"{name}: every lot read ({scanned})"
            assert max(n.get("Actual Rows", 0) for n in nodes) <= most, name
    async with populated.acquire() as conn:
        due = await conn.fetch(PARTNERS_WITH_LOTS_DUE_SQL, datetime.now(UTC), 200)
    # Lots 1..90 expired a day ago; every third of them is spent, so not live.
    expected = {f"p-{i % 500}" for i in range(1, DUE * 3 + 1) if i % 3 != 0}
    assert {row["partner_id"] for row in due} == expected
