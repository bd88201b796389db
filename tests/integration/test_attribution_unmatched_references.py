"""The console's unmatched CRM references read the references the deals name, not the deals:
the real queries, EXPLAINed by the real planner on an attribution schema of 60k deals naming
2,000 references from two CRMs, most of them resolved by confirmed links of every kind; and
what they answer is what the definition of an unmatched deal (every deal read) gives."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest

from services.attribution.views import (
    CRM_LINKS_SQL,
    UNMATCHED_DEALS_SQL,
    UNMATCHED_REFERENCES_SQL,
    crm_links,
    unmatched_deals,
    unmatched_references,
)
from shared.db import Pool
from tests.support.infra import ROOT
from tests.support.plans import read_no_whole_table, seeded_pool_fixture, statements

pytestmark = pytest.mark.integration
MIGRATIONS = ROOT / "services" / "attribution" / "migrations"
DEALS = 60_000
PAIRS = 4_000  # 2,000 references, each named from both CRMs

# Deal i names ref-(i % 2000) from Salesforce or HubSpot by turns of 2,000; a third of deals
# won, some without an amount, in two currencies; one in 13 names no reference, one in 97 is
# deleted. Links: ref-0..1799 confirmed for both CRMs, 1800..1849 for Salesforce only,
# 1900..1949 by identity (external id = partner id, from another CRM), 1950..1969 proposed for
# Salesforce only, the rest none. Unmatched: HubSpot 1800..1849 and 1850..1899 and 1950..1999,
# Salesforce 1850..1899 and 1950..1999.
SEED = """
INSERT INTO deals (deal_key, source, revision, status, deleted, amount, currency, close_date,
    customer, partner_ref, changed_at)
SELECT s.source || ':d' || i, s.source, 1,
    (ARRAY['won', 'open', 'lost'])[1 + i % 3], i % 97 = 0,
    CASE WHEN i % 11 = 0 THEN NULL ELSE (i % 1000) + 0.25 END,
    CASE WHEN i % 5 = 0 THEN 'EUR' ELSE 'USD' END,
    CASE WHEN i % 17 = 0 THEN NULL ELSE '2026-01-01'::date + i % 365 END,
    '{}', CASE WHEN i % 13 = 0 THEN NULL ELSE 'ref-' || (i % 2000) END, now()
FROM generate_series(1, $1) AS i
CROSS JOIN LATERAL (SELECT (ARRAY['salesforce', 'hubspot'])[1 + (i / 2000) % 2] AS source) s;
INSERT INTO crm_links (source, external_id, partner_id, status, proposed_by, proposed_at)
SELECT source, 'ref-' || r, 'p-' || r, 'confirmed', 'seed', now()
FROM generate_series(0, 1799) AS r, unnest(ARRAY['salesforce', 'hubspot']) AS source;
INSERT INTO crm_links (source, external_id, partner_id, status, proposed_by, proposed_at)
SELECT 'salesforce', 'ref-' || r, 'p-' || r, 'confirmed', 'seed', now()
FROM generate_series(1800, 1849) AS r;
INSERT INTO crm_links (source, external_id, partner_id, status, proposed_by, proposed_at)
SELECT 'microsoft', 'ref-' || r, 'ref-' || r, 'confirmed', 'seed', now()
FROM generate_series(1900, 1949) AS r;
INSERT INTO crm_links (source, external_id, partner_id, status, proposed_by, proposed_at)
SELECT 'salesforce', 'ref-' || r, 'p-' || r, 'proposed', 'seed', now()
FROM generate_series(1950, 1969) AS r;
ANALYZE deals;
ANALYZE crm_links;
"""

# What an unmatched deal is, read over every deal (the console's query before the references).
EVERY_UNMATCHED_DEAL = """
SELECT d.deal_key, d.source, d.partner_ref, d.status, d.amount, d.currency, d.close_date
FROM deals d
WHERE d.partner_ref IS NOT NULL AND NOT d.deleted AND NOT EXISTS (
    SELECT 1 FROM crm_links l WHERE l.status = 'confirmed' AND l.external_id = d.partner_ref
      AND (l.source = d.source OR l.partner_id = l.external_id))
"""


populated = seeded_pool_fixture("attribution", MIGRATIONS, statements(SEED, (DEALS,)))


async def test_unmatched_references_read_the_references_not_the_deals(populated: Pool) -> None:
    lookups = [
        (
            "unmatched references",
            UNMATCHED_REFERENCES_SQL,
            (100,),
            PAIRS,
            frozenset({"deals_by_partner_ref_and_source"}),
        ),
        (
            "one reference's deals",
            UNMATCHED_DEALS_SQL,
            ("hubspot", "ref-1999", "", 100),
            DEALS // PAIRS,
            frozenset({"deals_by_partner_ref_and_source"}),
        ),
    ]
    await read_no_whole_table(populated, "deals", DEALS, lookups)


def expected_references(deals: list[Any], proposed: dict[tuple[str, str], str]) -> list[Any]:
    """Each unmatched reference as the console lists it, from its unmatched deals."""
    named: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for deal in deals:
        named[(deal["source"], deal["partner_ref"])].append(deal)
    references = []
    for (source, ref), of_it in named.items():
        won = [d for d in of_it if d["status"] == "won"]
        sums: dict[str, Decimal] = defaultdict(Decimal)
        for deal in won:
            if deal["amount"] is not None:
                sums[deal["currency"]] += deal["amount"]
        dated = [d["close_date"] for d in of_it if d["close_date"] is not None]
        latest = sorted(of_it, key=lambda d: d["deal_key"])
        latest.sort(key=lambda d: (d["close_date"] is not None, d["close_date"]), reverse=True)
        references.append(
            {
                "source": source,
                "partner_ref": ref,
                "deals": len(of_it),
                "open": sum(d["status"] == "open" for d in of_it),
                "won": len(won),
                "won_amounts": [{"amount": str(sums[c]), "currency": c} for c in sorted(sums)],
                "latest_close_date": max(dated).isoformat() if dated else None,
                "latest_deals": [d["deal_key"] for d in latest[:5]],
                "proposed_partner_id": proposed.get((source, ref)),
            }
        )
    references.sort(key=lambda r: (-r["won"], -r["deals"], r["source"], r["partner_ref"]))
    return references


async def test_unmatched_references_are_what_every_unmatched_deal_says(populated: Pool) -> None:
    async with populated.acquire() as conn:
        deals = list(await conn.fetch(EVERY_UNMATCHED_DEAL))
        links = await conn.fetch("SELECT * FROM crm_links WHERE status = 'proposed'")
        listed = await unmatched_references(conn, 500)
        first = await unmatched_references(conn, 7)
    proposed = {(r["source"], r["external_id"]): r["partner_id"] for r in links}
    expected = expected_references(deals, proposed)
    assert len(expected) == 250  # the pairs the seed leaves unmatched
    assert [r.model_dump() for r in listed] == expected
    assert [r.model_dump() for r in first] == expected[:7]
    assert {r.proposed_partner_id for r in listed} == {None, *(f"p-{r}" for r in range(1950, 1970))}


async def test_a_references_deals_page_by_key_and_stop_once_linked(populated: Pool) -> None:
    async with populated.acquire() as conn:
        deals = await conn.fetch(EVERY_UNMATCHED_DEAL)
        paged, after = [], ""
        while page := await unmatched_deals(conn, "hubspot", "ref-1810", after, 4):
            paged.extend(page)
            after = page[-1].deal_key
        matched = await unmatched_deals(conn, "salesforce", "ref-1810", "", 100)
        by_identity = await unmatched_deals(conn, "hubspot", "ref-1910", "", 100)
    wanted = sorted(
        (d for d in deals if (d["source"], d["partner_ref"]) == ("hubspot", "ref-1810")),
        key=lambda d: d["deal_key"],
    )
    assert len(wanted) > 4
    assert [(d.deal_key, d.status, d.amount) for d in paged] == [
        (d["deal_key"], d["status"], None if d["amount"] is None else str(d["amount"]))
        for d in wanted
    ]
    assert (matched, by_identity) == ([], [])


async def test_links_page_in_key_order_and_proposals_read_their_own_index(populated: Pool) -> None:
    """The console's proposals waiting for a manager are 20 of 3,720 links."""
    proposed_page = ("proposals", CRM_LINKS_SQL, ("proposed", "", "", 7), 7, {"crm_links_proposed"})
    await read_no_whole_table(populated, "crm_links", 3_720, [proposed_page])
    async with populated.acquire() as conn:
        every = await conn.fetch("SELECT * FROM crm_links ORDER BY source, external_id")
        paged: dict[str | None, list[Any]] = {}
        for status in ("proposed", "confirmed", None):
            after = ("", "")
            while page := await crm_links(conn, status, after, 7 if status else 500):
                paged.setdefault(status, []).extend(page)
                after = (page[-1].source, page[-1].external_id)
    for status, links in paged.items():
        wanted = [r for r in every if status is None or r["status"] == status]
        assert [(link.source, link.external_id, link.status) for link in links] == [
            (r["source"], r["external_id"], r["status"]) for r in wanted
        ]
    assert (len(paged["proposed"]), len(paged["confirmed"]), len(paged[None])) == (20, 3_700, 3_720)
