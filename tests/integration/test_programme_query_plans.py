"""A partner's plan actuals read the partner's own spend, not every partner's, as the spend
ledger grows (two entries a credit): the real query, EXPLAINed by the real planner on a
programme schema holding 60k spend entries of 500 partners."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest

from services.programme.views import PLAN_ACTUALS_SQL
from shared.db import Pool
from tests.support.infra import ROOT, ScratchService
from tests.support.plans import read_no_whole_table, seeded_pool, statements

pytestmark = pytest.mark.integration
MIGRATIONS = ROOT / "services" / "programme" / "migrations"
ENTRIES = 60_000

# Per credit an incentive (every other one a new-logo kicker) and an MDF accrual; one MDF
# claim in a hundred; over the four quarters of 2026.
SEED = """
INSERT INTO spend_entries (entry_id, partner_id, movement, credit_id, quarter, amount, currency,
    at, rule, deal_key)
SELECT 'se-' || i, 'p-' || (i / 2 % 500),
    CASE WHEN i % 100 = 0 THEN 'mdf_claim' WHEN i % 2 = 0 THEN 'incentive' ELSE 'mdf_accrual' END,
    'cr-' || (i / 2), '2026-Q' || (1 + i % 4), 10, 'USD',
    '2026-01-01'::timestamptz + (i % 360) * interval '1 day',
    CASE WHEN i % 4 = 0 THEN 'kicker:new_logo' ELSE 'base:gold' END, 'deal-' || (i / 2)
FROM generate_series(1, $1) AS i;
ANALYZE spend_entries;
"""


@pytest.fixture
async def populated(scratch_service: ScratchService) -> AsyncIterator[Pool]:
    async with seeded_pool(
        scratch_service, "programme", Path(MIGRATIONS), statements(SEED, (ENTRIES,))
    ) as pool:
        yield pool


async def test_a_partners_plan_actuals_read_its_own_spend(populated: Pool) -> None:
    year_start, year_end = date(2026, 1, 1), date(2027, 1, 1)
    args = (
        *("p-42", year_start, year_end, "USD", "2026-Q1", "2026-Q4"),
        *(["kicker:new_logo"], year_start, year_end),
    )
    # The partner's 120 entries, not the 60,000.
    lookups = [
        (
            "a partner's plan actuals",
            PLAN_ACTUALS_SQL,
            args,
            ENTRIES // 500,
            frozenset({"spend_entries_by_partner"}),
        )
    ]
    await read_no_whole_table(populated, "spend_entries", ENTRIES, lookups)
    async with populated.acquire() as conn:
        row = await conn.fetchrow(PLAN_ACTUALS_SQL, *args)
    assert row is not None
    # p-42's entries: i / 2 % 500 == 42; new-logo kickers are the entries i % 4 == 0 that are
    # incentives (not i % 100 == 0, the claims), one deal each.
    mine = [i for i in range(1, ENTRIES + 1) if i // 2 % 500 == 42]
    assert row["new_logos"] == len([i for i in mine if i % 4 == 0 and i % 100 != 0])
    assert row["mdf_claims"] == len([i for i in mine if i % 100 == 0])
