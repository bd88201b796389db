"""The lookups that ran over every MDF lot or every ledger entry stay index lookups as the
history accumulates (a lot and entries per credit, kept for years): the real queries,
EXPLAINed by the real planner on an incentives schema holding 60k lots and 60k ledger entries
of 500 partners, a few lots due to expire and a few hundred payouts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.incentives import preapproval_views, views
from services.incentives.mdf_repository import PARTNERS_WITH_LOTS_DUE_SQL
from services.incentives.payout_views import PARTNER_TOTALS_SQL, PAYOUTS_MADE_SQL, PERIODS_SQL
from services.incentives.preapproval_views import PREAPPROVALS_OLDEST_SQL
from services.incentives.views import CLAIMS_OLDEST_SQL, ENDED_LOTS_SHOWN, FUND_LOTS_SQL
from shared.db import Pool
from tests.support.infra import ROOT
from tests.support.plans import read_no_whole_table, seeded_pool_fixture, statements

pytestmark = pytest.mark.integration
MIGRATIONS = ROOT / "services" / "incentives" / "migrations"
LOTS = 60_000
DUE = 30

# A year of lots ahead (two in three still live), and DUE live lots past their expiry.
LOTS_SEED = """
INSERT INTO mdf_funds (partner_id, created_at)
SELECT 'p-' || i, now() FROM generate_series(0, 499) AS i;
INSERT INTO mdf_lots (lot_id, partner_id, credit_id, amount, remaining, expires_at, created_at)
SELECT 'lot-' || i, 'p-' || (i % 500), 'cr-' || i, 100,
    CASE WHEN i % 3 = 0 THEN 0 ELSE 100 END,
    CASE WHEN i <= $1 THEN now() - interval '1 day' ELSE now() + (1 + i % 365) * interval '1 day' END,
    now() - interval '1 year'
FROM generate_series(1, $2) AS i;
"""
# Accruals over four quarters, a payout in 199 entries (of every quarter).
LEDGER_SEED = """
INSERT INTO ledger_entries (entry_id, partner_id, entry_type, rule, period, amount, currency,
    programs_version, created_at)
SELECT 'le-' || i, 'p-' || (i % 500), CASE WHEN i % 199 = 0 THEN 'payout' ELSE 'accrual' END,
    'r', '2026-Q' || (1 + i % 4), CASE WHEN i % 199 = 0 THEN -1 ELSE 10 END, 'USD', 'v',
    now() - (i % 365) * interval '1 day'
FROM generate_series(1, $1) AS i;
ANALYZE mdf_funds;
ANALYZE mdf_lots;
ANALYZE ledger_entries;
ANALYZE period_totals;
"""
# Years of claims and budgets of the 500 partners, one in 400 still waiting for a decision.
REQUESTS = 20_000
WAITING = REQUESTS // 400
REQUESTS_SEED = """
INSERT INTO mdf_claims (claim_id, partner_id, amount, currency, description, proof_reference,
    status, requested_at)
SELECT 'cl-' || i, 'p-' || (i % 500), 10, 'USD', 'd', 'ref-' || i,
    CASE WHEN i % 400 = 0 THEN 'requested' WHEN i % 7 = 0 THEN 'rejected' ELSE 'approved' END,
    now() - (i % 1000) * interval '1 day' - i * interval '1 second'
FROM generate_series(1, $1) AS i;
INSERT INTO mdf_preapprovals (preapproval_id, partner_id, reference, campaign_id, activity_kind,
    description, starts_on, ends_on, amount, currency, status, requested_at)
SELECT 'pa-' || i, 'p-' || (i % 500), 'ref-' || i, 'c', 'event', 'd', '2026-01-01',
    '2026-01-02', 10, 'USD',
    CASE WHEN i % 400 = 0 THEN 'requested' WHEN i % 7 = 0 THEN 'expired' ELSE 'approved' END,
    now() - (i % 1000) * interval '1 day' - i * interval '1 second'
FROM generate_series(1, $1) AS i;
ANALYZE mdf_claims;
ANALYZE mdf_preapprovals;
"""
SEED = [
    *statements(LOTS_SEED, (DUE * 3, LOTS)),
    *statements(LEDGER_SEED, (LOTS,)),
    *statements(REQUESTS_SEED, (REQUESTS,)),
]


populated = seeded_pool_fixture("incentives", Path(MIGRATIONS), SEED)


async def test_mdf_lookups_read_their_index_not_every_lot(populated: Pool) -> None:
    lookups = [
        # The expiry job's question, every minute: the due lots alone.
        (
            "partners with lots due",
            PARTNERS_WITH_LOTS_DUE_SQL,
            (datetime.now(UTC), 200),
            200,
            frozenset({"mdf_lots_live_by_expiry"}),
        ),
        # A partner's fund view: its own lots ending after a moment, and any still live before
        # it, in expiry order.
        (
            "a partner's lots",
            FUND_LOTS_SQL,
            ("p-42", datetime.now(UTC) - ENDED_LOTS_SHOWN),
            LOTS // 500,
            frozenset({"mdf_lots_by_partner", "mdf_lots_live"}),
        ),
    ]
    await read_no_whole_table(populated, "mdf_lots", LOTS, lookups)
    async with populated.acquire() as conn:
        due = await conn.fetch(PARTNERS_WITH_LOTS_DUE_SQL, datetime.now(UTC), 200)
    # Lots 1..90 expired a day ago; every third of them is spent, so not live.
    expected = {f"p-{i % 500}" for i in range(1, DUE * 3 + 1) if i % 3 != 0}
    assert {row["partner_id"] for row in due} == expected


async def test_the_payouts_view_reads_totals_and_payouts_not_every_entry(populated: Pool) -> None:
    """Partners' totals and the periods come from the totals per partner and period (500 rows
    here: a partner's entries fall in one quarter), the latest payouts from the payouts alone
    (301)."""
    none, by_time = frozenset[str](), frozenset({"ledger_payouts_by_time"})
    lookups = [
        ("partners' totals", PARTNER_TOTALS_SQL, (None,), 500, none),
        ("a period's partners' totals", PARTNER_TOTALS_SQL, ("2026-Q2",), 500, none),
        ("the periods", PERIODS_SQL, (), 500, none),
        (
            "the latest payouts",
            PAYOUTS_MADE_SQL,
            (None, None, None, None, 500),
            LOTS // 199,
            by_time,
        ),
        (
            "a period's latest payouts",
            PAYOUTS_MADE_SQL,
            ("2026-Q1", None, None, None, 500),
            LOTS // 199,
            by_time,
        ),
    ]
    await read_no_whole_table(populated, "ledger_entries", LOTS, lookups)


async def test_the_mdf_queues_read_the_waiting_requests_alone_oldest_first(populated: Pool) -> None:
    """The console's queues: claims and budgets waiting for a decision (50 of 20,000 each)."""
    waiting = (None, "requested", 100)
    claims = (
        "waiting claims",
        CLAIMS_OLDEST_SQL,
        waiting,
        WAITING,
        frozenset({"mdf_claims_waiting"}),
    )
    await read_no_whole_table(populated, "mdf_claims", REQUESTS, [claims])
    budgets = (
        "waiting budgets",
        PREAPPROVALS_OLDEST_SQL,
        (None, None, "requested", 100),
        WAITING,
        frozenset({"mdf_preapprovals_waiting"}),
    )
    await read_no_whole_table(populated, "mdf_preapprovals", REQUESTS, [budgets])
    async with populated.acquire() as conn:
        every = await conn.fetch(
            "SELECT claim_id, status, requested_at FROM mdf_claims ORDER BY requested_at, claim_id"
        )
    queue = await views.claims(populated, None, 500, "requested", oldest_first=True)
    assert [c.claim_id for c in queue] == [
        r["claim_id"] for r in every if r["status"] == "requested"
    ]
    newest = await views.claims(populated, "p-0", 3, None, oldest_first=False)
    assert [c.claim_id for c in newest] == [
        r["claim_id"]
        for r in reversed(every)
        if r["claim_id"] in {f"cl-{i}" for i in range(0, REQUESTS + 1, 500)}
    ][:3]
    budgets_waiting = await preapproval_views.preapprovals(
        populated, None, None, 500, "requested", oldest_first=True
    )
    assert len(budgets_waiting) == WAITING
    assert all(b.status == "requested" for b in budgets_waiting)
    assert [b.requested_at for b in budgets_waiting] == sorted(
        b.requested_at for b in budgets_waiting
    )
