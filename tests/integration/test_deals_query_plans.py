"""The conflict check's lookups stay index lookups as registrations grow: the real queries,
EXPLAINed by the real planner on a deals schema holding 120k registrations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.deals.decision_facts import DECISION_FACTS_SQL
from services.deals.domain.customers import Customer
from services.deals.repository import (
    DIRECT_OWNERS_SQL,
    DUE_TO_EXPIRE_SQL,
    OVERLAPPING_SQL,
    direct_owners,
)
from services.deals.review_repository import (
    OVERDUE_REVIEWS_SQL,
    REVIEWS_TO_ESCALATE_SQL,
    REVIEWS_TO_REMIND_SQL,
)
from services.deals.views import REGISTRATIONS_SQL
from tests.support.infra import ROOT, ScratchService
from tests.support.plans import explain, read_no_whole_table, seeded_pool, statements

pytestmark = pytest.mark.integration
DEALS_MIGRATIONS = ROOT / "services" / "deals" / "migrations"
REGISTRATIONS = 120_000

# Realistic spread: 60k customers, a third of registrations still holding, over ~400 days;
# 5,000 partners in the projection.
SEED = """
INSERT INTO registrations (registration_id, partner_id, customer_name, customer_domain,
    customer_country, name_key, products, amount, currency, status, reasons, conflicts,
    policy_version, inputs, submitted_at, decided_at, expires_at, updated_at)
SELECT 'reg_' || i, 'p-' || (i % 700), 'Customer ' || (i % 60000) || ' Inc',
    'customer-' || (i % 60000) || '.example', 'US', 'customer' || (i % 60000), '{data}',
    1000 + i % 5000, 'USD',
    (ARRAY['approved','expired','won','lost','rejected','pending_review'])[1 + i % 6],
    '{}', '[]', 'p1', '{}', now() - (i % 400) * interval '1 day',
    now() - (i % 400) * interval '1 day', now() + (90 - i % 400) * interval '1 day', now()
FROM generate_series(1, $1) AS i;
INSERT INTO partners (partner_id, name, status, tier, regions, products, version, updated_at)
SELECT 'p-' || i, 'Partner ' || i, 'active', 'gold', '{US}', '{data}', 1, now()
FROM generate_series(0, 4999) AS i;
INSERT INTO crm_deals (deal_key, source, source_id, customer_name, customer_domain, name_key,
    status, owner)
SELECT 'salesforce:' || i, 'salesforce', i::text, 'Customer ' || i || ' Inc',
    'customer-' || i || '.example', 'customer' || i,
    (ARRAY['open','won','lost'])[1 + i % 3], 'rep-' || (i % 40)
FROM generate_series(1, $1 / 3) AS i;
ANALYZE registrations;
ANALYZE crm_deals;
ANALYZE partners;
"""


@pytest.fixture
async def populated(scratch_service: ScratchService) -> Any:
    async with seeded_pool(
        scratch_service, "deals", Path(DEALS_MIGRATIONS), statements(SEED, (REGISTRATIONS,))
    ) as pool:
        yield pool


async def test_lookups_use_their_indexes_and_never_scan_the_table(populated: Any) -> None:
    now = datetime.now(UTC)
    window_start = (now - timedelta(days=90)).timestamp()
    lookups = [
        (
            # Holding registrations and open direct opportunities, each by exact domain and by
            # fuzzy-name block, with the holders' partner types, and the requesting partner.
            "a decision's facts",
            DECISION_FACTS_SQL,
            (
                "customer-4242.example",
                "customer4242",
                window_start,
                "p-42",
                "example",
                (now - timedelta(days=30)).timestamp(),
                now.timestamp(),
                "customer4242former",
            ),
            {
                "registrations_holding_by_domain",
                "registrations_expired_by_partner",
                # whether an expired one was ended by its partner's expulsion (no cooldown)
                "registration_ledger_by_registration",
                "registrations_holding_by_name_key",
                "crm_deals_open_by_domain",
                "crm_deals_open_by_name_key",
                "partners_pkey",
            },
        ),
        ("registrations due to expire", DUE_TO_EXPIRE_SQL, (now,), {"registrations_due_to_expire"}),
    ]
    async with populated.acquire() as conn, conn.transaction():
        assert await conn.fetchval("SELECT count(*) FROM registrations") == REGISTRATIONS
        for name, sql, args, indexes in lookups:
            nodes = await explain(conn, sql, *args)
            scans = {n["Node Type"] for n in nodes if "Scan" in n["Node Type"]}
            assert "Seq Scan" not in scans, f"{name}: sequential scan in {scans}"
            assert {n["Index Name"] for n in nodes if "Index Name" in n} == indexes, name
            # An index lookup touches a handful of rows, not the table.
            assert max(n.get("Actual Rows", 0) for n in nodes) <= 500, name


async def test_governance_lookups_stay_index_lookups(populated: Any) -> None:
    """The account's direct owners and overlapping partners (domain or name block), and the
    review deadlines due."""
    now = datetime.now(UTC)
    lookups = [
        (
            "direct owners",
            DIRECT_OWNERS_SQL,
            ("customer-4242.example", "customer4242", "salesforce:4242"),
        ),
        (
            "overlapping partners",
            OVERLAPPING_SQL,
            ("p-42", "customer-4242.example", "customer4242"),
        ),
        ("reviews to remind", REVIEWS_TO_REMIND_SQL, (now, now + timedelta(hours=24))),
        ("reviews to escalate", REVIEWS_TO_ESCALATE_SQL, (now,)),
        ("overdue reviews", OVERDUE_REVIEWS_SQL, (now, None, [])),
    ]
    async with populated.acquire() as conn, conn.transaction():
        for name, sql, args in lookups:
            nodes = await explain(conn, sql, *args)
            scans = {n["Node Type"] for n in nodes if "Scan" in n["Node Type"]}
            # partners is a small projection table: scanning it is fine; registrations and
            # crm_deals are never scanned.
            scanned = {n.get("Relation Name") for n in nodes if n["Node Type"] == "Seq Scan"}
            assert not scanned & {"registrations", "crm_deals"}, f"{name}: {scans} on {scanned}"
            assert max(n.get("Actual Rows", 0) for n in nodes) <= 500, name


# The direct owners as every opportunity of the block decided them, each parsed (before the
# block's names were measured once each, with a first look in C).
EVERY_OWNED_OPPORTUNITY = """
SELECT deal_key, owner, customer_name, customer_domain FROM crm_deals
WHERE NOT deleted AND owner IS NOT NULL AND (customer_domain = $1 OR name_key = $2 OR deal_key = $3)
"""
# 4,000 opportunities of one name block ("global ..."), 600 names and 90 owners, some deleted,
# some without an owner, one without a name, two on the customer's domain.
BLOCK = """
INSERT INTO crm_deals (deal_key, source, source_id, customer_name, customer_domain, name_key,
    status, owner, deleted)
SELECT 'hubspot:g' || i, 'hubspot', 'g' || i,
    CASE WHEN i = 7 THEN NULL
         ELSE 'Global ' || (ARRAY['Logistics', 'Logistic', 'Logistics Partners', 'Foods',
             'Bank'])[1 + i % 5] || ' ' || (i % 120) || (ARRAY['', ' Ltd', ' GmbH'])[1 + i % 3]
    END,
    CASE WHEN i IN (11, 12) THEN 'globallogistics.example' ELSE 'g' || i || '.example' END,
    'global', (ARRAY['open', 'won', 'lost'])[1 + i % 3],
    CASE WHEN i % 31 = 0 THEN NULL ELSE 'rep-g' || (i % 90) END, i % 47 = 0
FROM generate_series(1, 4000) AS i
"""


async def test_direct_owners_of_a_large_name_block_are_what_each_opportunity_says(
    populated: Any,
) -> None:
    customer = Customer.parse("Global Logistics 17", "globallogistics.example")
    async with populated.acquire() as conn:
        await conn.execute(BLOCK)
        for linked in (None, "hubspot:g4", "salesforce:4242"):
            rows = await conn.fetch(
                EVERY_OWNED_OPPORTUNITY, customer.domain, customer.name_key, linked
            )
            expected = sorted(
                {
                    r["owner"]
                    for r in rows
                    if r["deal_key"] == linked
                    or customer.matches(
                        Customer.parse(r["customer_name"], r["customer_domain"]), 0.88
                    )
                }
            )
            owners = await direct_owners(conn, customer, linked, 0.88)
            assert owners == expected, linked
            assert len(owners) > 3


async def test_registration_pages_read_their_index_not_every_registration(populated: Any) -> None:
    """`GET /registrations`: a partner's page (open ones or every status), after a cursor too,
    and a manager's page over every partner, each a walk of its index from where it starts."""
    open_statuses = ["approved", "pending_review", "submitted"]
    pages = [
        ("a partner's newest", ("p-42", None, None, 100), {"registrations_by_partner"}),
        ("a partner's open ones", ("p-42", open_statuses, None, 100), {"registrations_by_partner"}),
        ("a partner's next page", ("p-42", None, "reg_4242", 100), {"registrations_by_partner"}),
        ("a manager's newest", (None, None, None, 100), {"registrations_newest"}),
        ("a manager's next page", (None, None, "reg_4242", 100), {"registrations_newest"}),
    ]
    lookups = [
        (name, REGISTRATIONS_SQL, args, 500, frozenset(index)) for name, args, index in pages
    ]
    await read_no_whole_table(populated, "registrations", REGISTRATIONS, lookups)
