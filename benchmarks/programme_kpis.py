"""Programme KPI report cost as the programme's facts grow, on the local stack.

    eval "$(deploy/local-stack.sh env)"
    .venv/bin/python -m benchmarks.programme_kpis [--sizes 10000,100000]

Seeds a throw-away programme schema with N credits over two years (one in ten reversed), as
many incentive entries, N/2 registration moves and N/20 survey answers, for N/100 partners of
three tiers with three versions each (applied, activated, promoted) (the revenue totals,
migration 0010, kept by the database as the rows go in), then times GET /kpis's
work (every figure, one repeatable-read snapshot) programme-wide for all time, for one quarter,
and for one tier in one quarter, the whole report and each of its reads alone. Prints the
median of five runs per size; JSON to --out.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

from benchmarks.command import arguments, run_and_write
from services.programme import kpis, views
from services.programme.app import definition
from services.programme.schemas import KpiFiltersOut
from services.programme.views import Filters
from tests.support.infra import Infra, migrated_pool, scratch_schema

SEED = [
    # partners p: applied two years ago, activated 30 days later, promoted a year later
    """INSERT INTO partner_versions (partner_id, version, partner_type, status, previous_status,
           tier, regions, change, decision, changed_at)
       SELECT 'p-' || p, v, (ARRAY['gsi','isv','msp','var_reseller'])[1 + p % 4],
           CASE v WHEN 1 THEN 'applied' ELSE 'active' END,
           CASE v WHEN 2 THEN 'applied' WHEN 3 THEN 'active' END,
           CASE v WHEN 3 THEN (ARRAY['gold','platinum','gold'])[1 + p % 3]
                ELSE (ARRAY['silver','gold','registered'])[1 + p % 3] END,
           '{US,DE}', (ARRAY['applied','activated','tier_changed'])[v],
           CASE v WHEN 2 THEN (CASE WHEN p % 4 = 0 THEN 'manual' ELSE 'automatic' END) END,
           '2025-01-01'::timestamptz + (v - 1) * interval '200 days' + p * interval '1 minute'
       FROM generate_series(0, $1::int / 100 - 1) AS p, generate_series(1, 3) AS v""",
    """INSERT INTO credits (credit_id, deal_key, partner_id, kind, amount, currency,
           customer_country, close_date, issued_at)
       SELECT 'c-' || i, 'salesforce:' || i, 'p-' || (i % ($1::int / 100)),
           CASE WHEN i % 3 = 0 THEN 'influenced' ELSE 'sourced' END, 1000 + i % 9000, 'USD',
           (ARRAY['US','DE','GB'])[1 + i % 3], '2025-01-01'::date + (i % 700),
           '2025-01-01'::timestamptz + (i % 700) * interval '1 day'
       FROM generate_series(0, $1::int - 1) AS i""",
    """INSERT INTO credit_reversals (credit_id, reversal_id, amount, reversed_at)
       SELECT credit_id, 'r-' || credit_id, amount, issued_at + interval '1 day'
       FROM credits WHERE right(credit_id, 1) = '7'""",
    """INSERT INTO spend_entries (entry_id, partner_id, movement, credit_id, quarter, amount,
           currency, at, rule, deal_key)
       SELECT 'e-' || credit_id, partner_id,
           CASE WHEN right(credit_id, 1) = '5' THEN 'mdf_accrual' ELSE 'incentive' END,
           credit_id, to_char(close_date, 'YYYY-"Q"Q'), amount * 0.05, 'USD', issued_at,
           'base:gold', deal_key
       FROM credits""",
    """INSERT INTO registration_moves (event_id, registration_id, partner_id, move, outcome,
           automatic, at_submission, at)
       SELECT gen_random_uuid(), 'reg-' || (i / 2), 'p-' || (i % ($1::int / 100)),
           CASE WHEN i % 2 = 0 AND i % 6 = 0 THEN 'pending' ELSE 'decision' END,
           CASE WHEN i % 2 = 0 AND i % 6 = 0 THEN NULL ELSE 'approved' END,
           CASE WHEN i % 2 = 0 AND i % 6 = 0 THEN NULL ELSE i % 5 <> 0 END,
           i % 2 = 0 AND i % 6 <> 0,
           '2025-01-01'::timestamptz + (i % 700) * interval '1 day' + (i % 2) * interval '5 hours'
       FROM generate_series(0, $1::int / 2 - 1) AS i""",
    """INSERT INTO surveys (survey_id, question, tiers, types, closes_at, created_by, created_at)
       VALUES ('00000000-0000-4000-8000-000000000001', 'q', '{}', '{}', now(), 'bench', now())""",
    """INSERT INTO survey_recipients (survey_id, partner_id)
       SELECT '00000000-0000-4000-8000-000000000001', 'p-' || p
       FROM generate_series(0, $1::int / 100 - 1) AS p""",
    """INSERT INTO survey_answers (answer_id, survey_id, partner_id, respondent, score, comment,
           tier, partner_type, answered_at)
       SELECT gen_random_uuid(), '00000000-0000-4000-8000-000000000001',
           'p-' || (i % ($1::int / 100)), 'person-' || i, i % 11, '', 'gold', 'gsi',
           '2025-01-01'::timestamptz + (i % 700) * interval '1 day'
       FROM generate_series(0, $1::int / 20 - 1) AS i""",
]
SHOWN = KpiFiltersOut(
    from_quarter=None, to_quarter=None, tier=None, partner_type=None, region=None, partner_ids=[]
)
# The reads kpis.report makes, each timed alone too (outside its snapshot): where a case's time
# goes.
FIGURES = (
    "revenue",
    "spend",
    "onboarding_decisions",
    "registration_decisions",
    "partner_counts",
    "first_deal_waits",
    "nps_answers",
    "top_partners",
)
CASES = {
    "all time": Filters(None, None, None, None, None, None),
    "one quarter": Filters(date(2025, 10, 1), date(2026, 1, 1), None, None, None, None),
    "one tier, one quarter": Filters(date(2025, 10, 1), date(2026, 1, 1), None, "gold", None, None),
}


async def measure(infra: Infra, size: int) -> dict[str, Any]:
    async with (
        scratch_schema(infra) as scratch,
        migrated_pool(scratch, "programme", definition.migrations, max_size=2) as pool,
    ):
        started = time.perf_counter()
        for statement in SEED:
            await (pool.execute(statement, size) if "$1" in statement else pool.execute(statement))
        await pool.execute("ANALYZE")
        row: dict[str, Any] = {
            "credits": size,
            "seed_seconds": round(time.perf_counter() - started, 1),
        }
        async with pool.acquire() as conn:
            for name, filters in CASES.items():
                row[name] = await median_ms(kpis.report, conn, filters, SHOWN)
                row[f"{name} by figure"] = {
                    figure: await median_ms(getattr(views, figure), conn, filters)
                    for figure in FIGURES
                }
    return row


async def median_ms(read: Callable[..., Awaitable[object]], *args: object) -> float:
    times = []
    for _ in range(5):
        started = time.perf_counter()
        await read(*args)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 1)


async def run(infra: Infra, sizes: list[int]) -> dict[str, Any]:
    report: dict[str, Any] = {"benchmark": "programme_kpis", "unit": "ms (median of 5)"}
    for size in sizes:
        row = report[str(size)] = await measure(infra, size)
        cases = ", ".join(f"{name} {row[name]:.1f} ms" for name in CASES)
        print(f"{size:>8} credits  {cases}")
        for name in CASES:
            figures = ", ".join(f"{f} {ms:.1f}" for f, ms in row[f"{name} by figure"].items())
            print(f"{'':>18}{name}: {figures}")
    return report


if __name__ == "__main__":
    parser = arguments("programme_kpis", __doc__, sizes="10000,100000")
    args = parser.parse_args()
    run_and_write(args.out, lambda infra: run(infra, args.sizes))
