"""The payouts view reads the running totals per partner and period (incentives migration
0012), not the ledger's entries: its figures must be the ledger's own, for entries written
before the migration (its backfill) and after it (the trigger), in every period asked for."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.incentives.payout_views import PARTNER_TOTALS_SQL, PERIODS_SQL
from shared.db import Pool, create_pool
from tests.support.infra import ROOT, ScratchService, migrations_before

pytestmark = pytest.mark.integration
MIGRATIONS = ROOT / "services" / "incentives" / "migrations"
D = Decimal

# What the view summed before the totals carried it: the definition the totals must match.
FROM_THE_LEDGER = """
SELECT partner_id,
       coalesce(sum(amount) FILTER (WHERE entry_type = ANY($2::text[]) AND in_period), 0)
           AS earned,
       coalesce(sum(amount) FILTER (WHERE entry_type = 'reversal' AND in_period), 0)
           AS reversed,
       coalesce(-sum(amount) FILTER (WHERE entry_type = 'payout' AND in_period), 0) AS paid,
       sum(amount) AS balance,
       max(created_at) FILTER (WHERE entry_type = 'payout') AS last_paid_at
FROM (SELECT *, ($1::text IS NULL OR period = $1) AS in_period FROM ledger_entries) e
GROUP BY partner_id
HAVING bool_or(in_period)
ORDER BY sum(amount) DESC, partner_id
"""
EARNINGS = ["accrual", "kicker", "spiff"]

# (entry_id, partner, type, period, amount, reverses, minutes after the hour); several
# partners and periods in one statement, as a booking run writes them.
BEFORE = [
    ("a1", "p-a", "accrual", "2026-Q3", "100.00", None, 1),
    ("a2", "p-a", "kicker", "2026-Q3", "25.50", None, 2),
    ("b1", "p-b", "spiff", "2026-Q4", "40.00", None, 3),
    ("a3", "p-a", "reversal", "2026-Q4", "-100.00", "a1", 4),
    ("a4", "p-a", "payout", "2026-Q4", "-20.00", None, 5),
    ("c1", "p-c", "payout", "2026-Q3", "-0.00", None, 6),
]
AFTER = [
    ("a5", "p-a", "accrual", "2026-Q4", "10.00", None, 7),
    ("b2", "p-b", "payout", "2026-Q4", "-40.00", None, 8),
    ("b3", "p-b", "reversal", "2026-Q3", "-0.00", "b1", 9),
    ("d1", "p-d", "accrual", "2027-Q1", "5.25", None, 10),
    ("a6", "p-a", "payout", "2027-Q1", "-5.00", None, 11),
    ("a7", "p-a", "payout", "2027-Q1", "-1.00", None, 12),
]


async def write(pool: Pool, entries: list[tuple[Any, ...]]) -> None:
    await pool.execute(
        """INSERT INTO ledger_entries (entry_id, partner_id, entry_type, rule, period, amount,
               currency, programs_version, reverses, created_at)
           SELECT e, p, t, t, per, a, 'USD', 'v', r, '2026-11-30 10:00+00'::timestamptz
               + m * interval '1 minute'
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[],
               $6::text[], $7::int[]) AS x(e, p, t, per, a, r, m)""",
        *([row[i] for row in entries] for i in range(7)),
    )


async def test_the_payouts_view_adds_up_to_the_ledger_before_and_after_the_migration(
    scratch_service: ScratchService, tmp_path: Path
) -> None:
    before = migrations_before(MIGRATIONS, "0012_payout_totals.sql", tmp_path / "migrations")
    await scratch_service.migrate("incentives", before)
    pool = await create_pool(scratch_service.dsn, scratch_service.schema, max_size=2)
    try:
        await write(pool, [(*row[:4], D(row[4]), *row[5:]) for row in BEFORE])
        # An MDF accrual alone makes a totals row, with no ledger entry in its period.
        await pool.execute(
            "INSERT INTO period_totals (partner_id, period, accrued) VALUES ('p-e', '2026-Q2', 7)"
        )
        await scratch_service.migrate("incentives", MIGRATIONS)
        await write(pool, [(*row[:4], D(row[4]), *row[5:]) for row in AFTER])
        # A later statement with no payout keeps the period's latest payout time.
        await write(pool, [("b4", "p-b", "accrual", "2026-Q4", D("3.00"), None, 13)])
        for period in (None, "2026-Q2", "2026-Q3", "2026-Q4", "2027-Q1"):
            wanted = [dict(r) for r in await pool.fetch(FROM_THE_LEDGER, period, EARNINGS)]
            got = [dict(r) for r in await pool.fetch(PARTNER_TOTALS_SQL, period)]
            assert got == wanted, period
        assert [r["period"] for r in await pool.fetch(PERIODS_SQL)] == [
            "2027-Q1",
            "2026-Q4",
            "2026-Q3",
        ]
        # Partner a: 135.50 earned, 100 reversed, 26 paid; its last payout the 12th minute.
        everyone = {r["partner_id"]: r for r in await pool.fetch(PARTNER_TOTALS_SQL, None)}
        assert everyone["p-a"]["balance"] == D("9.50")
        assert everyone["p-a"]["last_paid_at"].minute == 12
        assert set(everyone) == {"p-a", "p-b", "p-c", "p-d"}
    finally:
        await pool.close()
