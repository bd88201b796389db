"""Onboarding's application pages stay index walks as the public intake grows: the real
queries, EXPLAINed by the real planner on an onboarding schema of 60k applications, most of
them rejected by the scoring, a few hundred waiting for a manager."""

from __future__ import annotations

import pytest

from services.onboarding.views import REJECTED_SQL, WAITING_SQL
from shared.db import Pool
from tests.support.infra import ROOT
from tests.support.plans import read_no_whole_table, seeded_pool_fixture, statements

pytestmark = pytest.mark.integration
MIGRATIONS = ROOT / "services" / "onboarding" / "migrations"
APPLICATIONS = 60_000

# One in 200 waits for review, one in 300 is recommended, one in 10 became a partner; the rest
# the scoring rejected.
SEED = """
INSERT INTO partners (partner_id, company_name, domain, partner_type, status, tier,
    application, regions, products_applied, qualification, qualification_outcome,
    policy_version, applied_at, updated_at, domain_token)
SELECT 'ptn_' || i, 'Company ' || i, 'c' || i || '.example', 'isv',
    CASE WHEN i % 200 = 0 OR i % 300 = 0 THEN 'applied' WHEN i % 10 = 0 THEN 'active'
         ELSE 'rejected' END,
    'registered', '{}', '{US}', '{data}', '{}',
    CASE WHEN i % 200 = 0 THEN 'review' WHEN i % 300 = 0 THEN 'approve'
         WHEN i % 10 = 0 THEN 'approve' ELSE 'reject' END,
    'v1', now() - i * interval '1 minute', now(), 't' || i
FROM generate_series(1, $1) AS i;
ANALYZE partners;
"""


populated = seeded_pool_fixture("onboarding", MIGRATIONS, statements(SEED, (APPLICATIONS,)))


async def test_application_pages_walk_their_index(populated: Pool) -> None:
    waiting, rejected = frozenset({"partners_waiting"}), frozenset({"partners_rejected"})
    lookups = [
        ("the review queue", WAITING_SQL, ("review", None, 100), 300, waiting),
        ("its next page", WAITING_SQL, ("review", "ptn_30000", 100), 300, waiting),
        ("the recommended ones", WAITING_SQL, ("approve", None, 100), 300, waiting),
        ("the latest rejections", REJECTED_SQL, ("reject", None, 100), 100, rejected),
        ("older rejections", REJECTED_SQL, ("reject", "ptn_30001", 100), 100, rejected),
    ]
    await read_no_whole_table(populated, "partners", APPLICATIONS, lookups)
    async with populated.acquire() as conn:
        page = await conn.fetch(REJECTED_SQL, "reject", "ptn_30001", 3)
    # Applied a minute apart, the higher numbers earlier: after 30001 come 30002, 30003, ...
    assert [r["partner_id"] for r in page] == ["ptn_30002", "ptn_30003", "ptn_30004"]
