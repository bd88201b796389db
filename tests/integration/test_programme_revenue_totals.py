"""The KPI report's revenue and top partners read running totals (migration 0010), kept by the
database's triggers as credits, reversals and partner versions are written. Whatever order the
facts arrive in (a reversal before its credit, a partner version after credits it applies to,
versions of one moment, a credit older than any version, several facts a statement), the
figures must be those summed from the facts themselves, as the report summed them before: the
reference queries below."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import Any

import pytest

from services.programme import repository, revenue_totals, views
from services.programme.domain.quarters import Quarter, QuarterRange
from services.programme.schemas import TOP_PARTNERS
from shared.db import Pool
from shared.events import Envelope
from shared.events.attribution import CreditIssued, CreditKind, CreditReversed
from shared.events.crm import Customer
from shared.events.partners import PartnerStateChanged
from tests.support import factories as f
from tests.support.infra import (
    ROOT,
    ScratchService,
    migrated_pool,
    migrations_before,
    scratch_pool_fixture,
)
from tests.support.locks import waiter_of

pytestmark = pytest.mark.integration
MIGRATIONS = ROOT / "services" / "programme" / "migrations"
START = datetime(2025, 1, 1, tzinfo=UTC)

# What the report summed before the totals: every credit, net of its reversal, with its
# partner's version at issue from the spans (migration 0005).
REFERENCE_FACTS = """
    FROM credits c
    LEFT JOIN credit_reversals r USING (credit_id)
    LEFT JOIN partner_spans p ON p.partner_id = c.partner_id
        AND c.issued_at >= p.valid_from AND c.issued_at < p.valid_to
    WHERE ($1::date IS NULL OR c.close_date >= $1::date)
      AND ($2::date IS NULL OR c.close_date < $2::date) AND isfinite(c.close_date)
      AND ($3::text[] IS NULL OR c.partner_id = ANY($3::text[]))
      AND ($4::text IS NULL OR coalesce(p.tier, 'unknown') = $4::text)
      AND ($5::text IS NULL OR coalesce(p.partner_type, 'unknown') = $5::text)
      AND ($6::text IS NULL OR coalesce(c.customer_country, 'unknown') = $6::text)"""
NET = "c.amount - coalesce(r.amount, 0)"
SOURCED = f"coalesce(sum({NET}) FILTER (WHERE c.kind = 'sourced'), 0)"
INFLUENCED = f"coalesce(sum({NET}) FILTER (WHERE c.kind = 'influenced'), 0)"
REFERENCE_REVENUE = f"""
    SELECT to_char(date_trunc('quarter', c.close_date), 'YYYY-"Q"Q') AS quarter,
           coalesce(p.tier, 'unknown') AS tier, coalesce(p.partner_type, 'unknown') AS partner_type,
           coalesce(c.customer_country, 'unknown') AS region, c.currency,
           {SOURCED} AS sourced, {INFLUENCED} AS influenced
    {REFERENCE_FACTS}
    GROUP BY date_trunc('quarter', c.close_date), 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5"""
REFERENCE_TOP = f"""
    SELECT c.partner_id, c.currency, {SOURCED} AS sourced, {INFLUENCED} AS influenced
    {REFERENCE_FACTS}
    GROUP BY 1, 2 HAVING {SOURCED} + {INFLUENCED} > 0"""
# The totals as summed from the facts: what migration 0010 fills the table with.
REFERENCE_TOTALS = f"""
    SELECT c.partner_id, date_trunc('quarter', c.close_date)::date AS quarter,
           coalesce(p.tier, 'unknown') AS tier, coalesce(p.partner_type, 'unknown') AS ptype,
           coalesce(c.customer_country, 'unknown') AS region, c.currency,
           {SOURCED} AS sourced, {INFLUENCED} AS influenced
    {REFERENCE_FACTS}
    GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6"""
TOTALS = """
    SELECT partner_id, quarter, tier, partner_type AS ptype, region, currency, sourced,
           influenced
    FROM revenue_totals ORDER BY 1, 2, 3, 4, 5, 6"""

PARTNERS = [f"p-{n}" for n in range(6)]
Fact = CreditIssued | CreditReversed | PartnerStateChanged


def facts(seed: int) -> list[Fact]:
    """Versions (some of one moment), credits issued before, between and after them in several
    quarters, currencies, regions and kinds, and reversals of a third of the credits."""
    rng = random.Random(seed)
    made: list[Fact] = []
    for partner_id in PARTNERS[:-1]:  # the last partner never has a version
        moment = START + timedelta(days=rng.randrange(60))
        for version in range(1, rng.randrange(2, 6)):
            if rng.random() > 0.25:  # else: the same moment as the version before
                moment += timedelta(days=rng.randrange(1, 120))
            made.append(
                f.partner_state_changed(
                    partner_id=partner_id,
                    version=version,
                    tier=rng.choice(["registered", "silver", "gold"]),
                    partner_type=rng.choice(["isv", "gsi"]),
                    changed_at=moment,
                )
            )
    for n in range(120):
        issued = START + timedelta(days=rng.randrange(500), hours=rng.randrange(24))
        credit = f.credit_issued(
            credit_id=f"c-{n}",
            partner_id=rng.choice(PARTNERS),
            kind=rng.choice(list(CreditKind)),
            amount=f"{rng.randrange(1, 10**6)}.{rng.randrange(10000):04d}",
            currency=rng.choice(["USD", "EUR"]),
            customer=Customer(name="C", domain=None, country=rng.choice(["US", "DE", None])),
            close_date=(issued + timedelta(days=rng.randrange(-30, 200))).date(),
            issued_at=issued,
        )
        made.append(credit)
        if rng.random() < 0.33:  # a reversal may even name another partner: the credit's counts
            named = credit.partner_id if rng.random() < 0.8 else rng.choice(PARTNERS)
            made.append(f.credit_reversed(credit, partner_id=named))
    return made


async def record(pool: Pool, batch: Sequence[Fact]) -> None:
    """A batch as the consumers record it, in one transaction: a run of facts of one type a
    statement (the partner versions' group and the credits' group are apart; a batch here
    holds either kind, as theirs do)."""
    async with pool.acquire() as conn, conn.transaction():
        for _, run in groupby(batch, key=type):
            facts_of_a_type = list(run)
            versions: list[tuple[PartnerStateChanged, str | None]] = [
                (v, None) for v in facts_of_a_type if isinstance(v, PartnerStateChanged)
            ]
            await repository.record_partner_versions(conn, versions)
            await repository.record_credits(
                conn, [c for c in facts_of_a_type if isinstance(c, CreditIssued)]
            )
            await repository.record_reversals(
                conn, [r for r in facts_of_a_type if isinstance(r, CreditReversed)]
            )


async def record_by_both_groups(pool: Pool, batch: Sequence[Fact]) -> None:
    """`batch`'s partner versions as the versions' group records them, then its credits and
    reversals as the credits' group does."""
    await record(pool, [b for b in batch if isinstance(b, PartnerStateChanged)])
    await record(pool, [b for b in batch if not isinstance(b, PartnerStateChanged)])


def filter_sets() -> list[views.Filters]:
    quarters = QuarterRange(Quarter.of(date(2025, 4, 1)), Quarter.of(date(2025, 12, 1)))
    every = views.Filters(None, None, None, None, None, None)
    return [
        every,
        views.Filters(quarters.starts, quarters.ends, None, None, None, None),
        views.Filters(None, None, PARTNERS[:3], None, None, None),
        views.Filters(None, None, None, "gold", None, None),
        views.Filters(None, None, None, "unknown", None, None),
        views.Filters(None, None, None, None, "isv", None),
        views.Filters(None, None, None, None, None, "unknown"),
        views.Filters(quarters.starts, None, None, "silver", "gsi", "DE"),
    ]


async def assert_figures_as_summed_from_the_facts(pool: Pool) -> None:
    """The totals, the revenue and the top partners, each value to the digit as its text."""
    async with pool.acquire() as conn:
        assert texts(await conn.fetch(TOTALS)) == texts(
            await conn.fetch(REFERENCE_TOTALS, *filter_sets()[0].args())
        )
        for filters in filter_sets():
            assert texts(await views.revenue(conn, filters)) == texts(
                await conn.fetch(REFERENCE_REVENUE, *filters.args())
            ), filters
            top = await views.top_partners(conn, filters)
            assert [
                (r["partner_id"], r["currency"], str(r["sourced"]), str(r["influenced"]))
                for r in top
            ] == first_of_each_currency(await conn.fetch(REFERENCE_TOP, *filters.args()))


def first_of_each_currency(totals: list[Any]) -> list[tuple[str, str, str, str]]:
    """The reference's partners ranked as the report ranks them: per currency (byte order),
    the most revenue first, a tie to the smaller id (byte order)."""
    ranked = sorted(
        totals,
        key=lambda r: (
            r["currency"].encode(),
            -(r["sourced"] + r["influenced"]),
            r["partner_id"].encode(),
        ),
    )
    shown: list[tuple[str, str, str, str]] = []
    for row in ranked:
        if sum(1 for s in shown if s[1] == row["currency"]) < TOP_PARTNERS:
            shown.append(
                (row["partner_id"], row["currency"], str(row["sourced"]), str(row["influenced"]))
            )
    return shown


def texts(rows: list[Any]) -> list[tuple[str, ...]]:
    """Rows as the API writes them: every value as its text (a Decimal keeps its scale)."""
    return [tuple(str(value) for value in row.values()) for row in rows]


pool = scratch_pool_fixture("programme", MIGRATIONS)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_the_totals_are_the_facts_summed_whatever_order_they_came_in(
    pool: Pool, seed: int
) -> None:
    made = facts(seed)
    random.Random(seed).shuffle(made)
    for first in range(0, len(made), 7):
        await record_by_both_groups(pool, made[first : first + 7])
    await assert_figures_as_summed_from_the_facts(pool)
    async with pool.acquire() as conn:  # every path was taken
        assert await conn.fetchval("SELECT count(*) FROM credit_reversals") > 20
        assert await conn.fetchval("SELECT count(*) FROM revenue_totals WHERE tier = 'unknown'") > 0


async def test_a_repeated_fact_changes_no_total(pool: Pool) -> None:
    made = facts(4)
    for batch in (made, made):
        await record_by_both_groups(pool, batch)
    await assert_figures_as_summed_from_the_facts(pool)


async def test_the_migration_fills_the_totals_from_the_facts_there_are(
    scratch_service: ScratchService, tmp_path: Path
) -> None:
    before = migrations_before(MIGRATIONS, "0010_revenue_totals.sql", tmp_path / "migrations")
    async with migrated_pool(scratch_service, "programme", before) as pool:
        await record_by_both_groups(pool, facts(5))  # no totals kept yet: the rows alone
    async with migrated_pool(scratch_service, "programme", MIGRATIONS) as pool:
        await assert_figures_as_summed_from_the_facts(pool)
        assert await pool.fetchval("SELECT count(*) FROM revenue_totals") > 10


async def test_a_credit_recorded_while_its_partner_gains_a_version_counts_in_that_version(
    pool: Pool,
) -> None:
    """The credits' consumer and the partner versions' consumer are apart: a credit recorded
    while a version of its partner commits must be counted with that version if it applies."""
    partner = PARTNERS[0]
    await record(pool, [f.partner_state_changed(partner_id=partner, tier="gold", changed_at=START)])
    credit = f.credit_issued(
        partner_id=partner, issued_at=START + timedelta(days=10), close_date=date(2025, 2, 1)
    )
    async with pool.acquire() as holder, holder.transaction():
        key = await holder.fetchval("SELECT revenue_lock_key('partner/' || $1)", partner)
        await holder.execute("SELECT pg_advisory_xact_lock($1)", key)
        credit_recorded = asyncio.create_task(record(pool, [credit]))
        async with pool.acquire() as observer:
            await waiter_of(observer, key, what="the credit waiting for its partner's facts")
        silver = f.partner_state_changed(
            partner_id=partner, version=2, tier="silver", changed_at=START + timedelta(days=5)
        )
        await repository.record_partner_versions(holder, [(silver, None)])
    await credit_recorded
    async with pool.acquire() as conn:
        tiers = await conn.fetch("SELECT tier, sourced FROM revenue_totals")
    assert [(r["tier"], r["sourced"]) for r in tiers] == [("silver", credit.amount)]
    await assert_figures_as_summed_from_the_facts(pool)


async def test_a_credit_and_its_reversal_recorded_at_once_count_net(pool: Pool) -> None:
    """Neither sees the other uncommitted: the credit's trigger waits for the credit's lock the
    reversal's transaction holds, then reads the reversal it committed."""
    credit = f.credit_issued(partner_id=PARTNERS[1], close_date=date(2025, 5, 1))
    async with pool.acquire() as holder, holder.transaction():
        key = await holder.fetchval("SELECT revenue_lock_key('credit/' || $1)", credit.credit_id)
        await holder.execute("SELECT pg_advisory_xact_lock($1)", key)
        credit_recorded = asyncio.create_task(record(pool, [credit]))
        async with pool.acquire() as observer:
            await waiter_of(observer, key, what="the credit waiting for its reversal's commit")
        await repository.record_reversals(holder, [f.credit_reversed(credit)])
    await credit_recorded
    async with pool.acquire() as conn:
        assert [tuple(r) for r in await conn.fetch("SELECT sourced FROM revenue_totals")] == [
            (credit.amount - credit.amount,)
        ]
    await assert_figures_as_summed_from_the_facts(pool)


async def test_a_batch_locks_what_the_triggers_lock_for_its_facts(pool: Pool) -> None:
    """A reversal naming another partner than its credit's locks the credit's partner too (the
    trigger takes the partner of the credit it finds)."""
    credit = f.credit_issued(partner_id=PARTNERS[2])
    await record(pool, [credit])
    reversal = f.credit_reversed(credit, partner_id=PARTNERS[3])
    events = [Envelope.wrap(reversal, source="pollinate/attribution", subject=credit.deal_key)]
    async with pool.acquire() as conn:
        keys = set(await revenue_totals.lock_keys(conn, events))
        wanted = {
            await conn.fetchval("SELECT revenue_lock_key($1)", name)
            for name in (
                f"partner/{PARTNERS[2]}",
                f"partner/{PARTNERS[3]}",
                f"credit/{credit.credit_id}",
            )
        }
    assert keys == wanted
