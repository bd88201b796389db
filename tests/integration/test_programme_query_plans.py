"""A partner's plan actuals read the partner's own spend, not every partner's, as the spend
ledger grows (two entries a credit): the real query, EXPLAINed by the real planner on a
programme schema holding 60k spend entries of 500 partners. A quarter's registration decisions
are found by time, not by a window over every move (and wait what that window said)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import date
from pathlib import Path

import pytest

from services.programme.views import (
    ANSWERS_SQL,
    DECISIONS_FROM_A_START_SQL,
    DECISIONS_SINCE_THE_FIRST_SQL,
    PLAN_ACTUALS_SQL,
)
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


def seeded(
    scratch_service: ScratchService, seed: str, rows: int
) -> AbstractAsyncContextManager[Pool]:
    """A programme schema seeded with `seed` for `rows` rows."""
    return seeded_pool(scratch_service, "programme", Path(MIGRATIONS), statements(seed, (rows,)))


@pytest.fixture
async def populated(scratch_service: ScratchService) -> AsyncIterator[Pool]:
    async with seeded(scratch_service, SEED, ENTRIES) as pool:
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


REGISTRATIONS = 8_000
# Registrations of 500 partners (three versions each) over 2026, one an hour: a third decided
# at submission; the others enter review and are decided five hours later; one in seven
# enters review again and is decided again a day later; one in eleven enters review again at
# the very moment of its first decision.
MOVES = """
INSERT INTO partner_versions (partner_id, version, partner_type, status, tier, regions, change,
    changed_at)
SELECT 'p-' || p, v, 'gsi', 'active', (ARRAY['silver', 'gold', 'platinum'])[v], '{US}',
    'tier_changed', '2025-12-01'::timestamptz + (v - 1) * interval '120 days' + p * interval '1h'
FROM generate_series(0, 499) AS p, generate_series(1, 3) AS v;
INSERT INTO registration_moves (event_id, registration_id, partner_id, move, outcome, automatic,
    at_submission, at)
SELECT gen_random_uuid(), 'r-' || r, 'p-' || (r % 500), m.move,
    CASE WHEN m.move = 'decision' THEN 'approved' END,
    CASE WHEN m.move = 'decision' THEN r % 2 = 0 END, r % 3 = 0 AND m.step = 1,
    '2026-01-01'::timestamptz + r * interval '1 hour' + m.after
FROM generate_series(1, $1) AS r
CROSS JOIN LATERAL (VALUES
    (0, 'pending', interval '0'), (1, 'decision', interval '5 hours'),
    (2, 'pending', interval '6 hours'), (3, 'decision', interval '30 hours'),
    (4, 'pending', interval '5 hours')) AS m(step, move, after)
WHERE (r % 3 <> 0 OR m.step = 1) AND (m.step < 2 OR (m.step < 4 AND r % 7 = 0)
    OR (m.step = 4 AND r % 11 = 0 AND r % 3 <> 0));
ANALYZE registration_moves;
ANALYZE partner_versions;
"""


@pytest.fixture
async def decided(scratch_service: ScratchService) -> AsyncIterator[Pool]:
    async with seeded(scratch_service, MOVES, REGISTRATIONS) as pool:
        yield pool


async def test_a_quarters_registration_decisions_are_found_by_time(decided: Pool) -> None:
    quarter = (date(2026, 4, 1), date(2026, 7, 1), None, None, None, None)
    async with decided.acquire() as conn:
        moves = await conn.fetchval("SELECT count(*) FROM registration_moves")
        in_quarter = await conn.fetchval(
            """SELECT count(*) FROM registration_moves
               WHERE move = 'decision' AND at >= $1 AND at < $2""",
            *quarter[:2],
        )
    lookups = [
        (
            "a quarter's registration decisions",
            DECISIONS_FROM_A_START_SQL,
            quarter,
            max(in_quarter, 1_500),  # the quarter's decisions, or the partners' versions
            frozenset({"registration_moves_decisions", "registration_moves_by_registration"}),
        )
    ]
    await read_no_whole_table(decided, "registration_moves", moves, lookups)


@pytest.mark.parametrize(
    "filters",
    [
        (None, None, None, None, None, None),
        (date(2026, 4, 1), date(2026, 7, 1), None, None, None, None),
        (None, date(2026, 3, 1), ["p-7", "p-8"], "silver", "gsi", "US"),
    ],
)
async def test_registration_decisions_wait_the_same_found_either_way(
    decided: Pool, filters: tuple[object, ...]
) -> None:
    async with decided.acquire() as conn:
        found = await conn.fetch(DECISIONS_FROM_A_START_SQL + " ORDER BY 1, 2, 3", *filters)
        windowed = await conn.fetch(DECISIONS_SINCE_THE_FIRST_SQL + " ORDER BY 1, 2, 3", *filters)
    assert [tuple(r) for r in found] == [tuple(r) for r in windowed]
    assert len({r["waited"] for r in found}) >= (3 if filters[0] is None else 2)


CREDITS = 20_000
# 200 partners' credits (three versions each), their revenue totals kept by the triggers.
CREDITS_SEED = """
INSERT INTO partner_versions (partner_id, version, partner_type, status, tier, regions, change,
    changed_at)
SELECT 'p-' || p, v, 'gsi', 'active', (ARRAY['silver', 'gold', 'platinum'])[v], '{US}',
    'tier_changed', '2025-12-01'::timestamptz + (v - 1) * interval '120 days'
FROM generate_series(0, 199) AS p, generate_series(1, 3) AS v;
INSERT INTO credits (credit_id, deal_key, partner_id, kind, amount, currency, customer_country,
    close_date, issued_at)
SELECT 'c-' || i, 'd-' || i, 'p-' || (i % 200), 'sourced', 100, 'USD', 'US',
    '2026-01-01'::date + i % 365, '2026-01-01'::timestamptz + (i % 365) * interval '1 day'
FROM generate_series(1, $1) AS i;
INSERT INTO credit_reversals (credit_id, reversal_id, amount, reversed_at)
SELECT credit_id, 'r-' || credit_id, amount, issued_at FROM credits WHERE right(credit_id, 1) = '7';
ANALYZE credits;
ANALYZE credit_reversals;
"""


@pytest.fixture
async def credited(scratch_service: ScratchService) -> AsyncIterator[Pool]:
    async with seeded(scratch_service, CREDITS_SEED, CREDITS) as pool:
        yield pool


async def test_a_partner_version_sums_its_own_partners_credits_again(credited: Pool) -> None:
    """What the partner versions' trigger sums again: its partners' credits, not every one,
    each reversal looked up by its credit (p-47's credits are all reversed, p-42's none)."""
    partners = ["p-42", "p-47"]
    sql = "SELECT * FROM revenue_totals_from_credits($1::text[])"
    most = 2 * CREDITS // 200
    await read_no_whole_table(
        credited,
        "credits",
        CREDITS,
        [("the partners' credits", sql, (partners,), most, frozenset({"credits_by_partner"}))],
    )
    await read_no_whole_table(
        credited,
        "credit_reversals",
        CREDITS // 10,
        [("their reversals", sql, (partners,), most, frozenset({"credit_reversals_pkey"}))],
    )
    async with credited.acquire() as conn:
        kept = await conn.fetch(
            """SELECT partner_id, sum(sourced) AS sourced FROM revenue_totals
               WHERE partner_id = ANY($1::text[]) GROUP BY 1 ORDER BY 1""",
            partners,
        )
    assert [(r["partner_id"], r["sourced"]) for r in kept] == [
        ("p-42", 100 * (CREDITS // 200)),
        ("p-47", 0),
    ]


# Twenty surveys sent to 2,000 partners, each answered by three people of every partner.
ANSWERS_SEED = """
INSERT INTO surveys (survey_id, question, tiers, types, closes_at, created_by, created_at)
SELECT ('00000000-0000-0000-0000-' || lpad(s::text, 12, '0'))::uuid, 'q', '{}', '{}', now(),
    'cm', now()
FROM generate_series(1, 20) AS s;
INSERT INTO survey_recipients (survey_id, partner_id)
SELECT survey_id, 'p-' || p FROM surveys, generate_series(1, $1 / 60) AS p;
INSERT INTO survey_answers (answer_id, survey_id, partner_id, respondent, score, comment,
    answered_at)
SELECT gen_random_uuid(), r.survey_id, r.partner_id, r.partner_id || '/' || k, k * 3, '',
    now() - (hashtext(r.partner_id || k) % 100000) * interval '1 second'
FROM survey_recipients r, generate_series(1, 3) AS k;
ANALYZE surveys;
ANALYZE survey_recipients;
ANALYZE survey_answers;
"""


@pytest.fixture
async def answered(scratch_service: ScratchService) -> AsyncIterator[Pool]:
    async with seeded(scratch_service, ANSWERS_SEED, 120_000) as pool:
        yield pool


async def test_a_surveys_answers_page_walks_the_surveys_own_index(answered: Pool) -> None:
    survey = "00000000-0000-0000-0000-000000000007"
    async with answered.acquire() as conn:
        middle = await conn.fetchval(
            "SELECT answer_id FROM survey_answers WHERE survey_id = $1 ORDER BY answered_at, "
            "answer_id OFFSET 3000 LIMIT 1",
            survey,
        )
    index = frozenset({"survey_answers_by_survey"})
    lookups = [
        ("a survey's first page", ANSWERS_SQL, (survey, None, 101), 101, index),
        ("a page after an answer", ANSWERS_SQL, (survey, middle, 101), 101, index),
    ]
    await read_no_whole_table(answered, "survey_answers", 120_000, lookups)
