"""Policy backtest cost as registrations grow, on the local stack.

    eval "$(deploy/local-stack.sh env)"
    .venv/bin/python -m benchmarks.policy_backtest [--sizes 10000,100000]

Seeds a throw-away deals schema with N registrations over one year (three per customer on
average, 700 partners, each with its `decided` ledger entry), then times what
POST /admin/policy/backtest does for the whole year under a stricter window (30 days instead of
90): loading the period in one read-only snapshot and replaying it. Prints the times per size
and writes them as JSON (--out).
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.command import arguments, run_and_write
from benchmarks.conflict_check import CUSTOMER_NAME, NAME_KEY
from services.deals.backtest import _load
from services.deals.domain.backtest import replay
from services.deals.domain.rules import RulesOfEngagement
from tests.support.infra import Infra, migrated_pool, scratch_schema

DEALS_MIGRATIONS = Path(__file__).resolve().parent.parent / "services" / "deals" / "migrations"
START = datetime(2026, 1, 1, tzinfo=UTC)
PARTNERS = """
INSERT INTO partners (partner_id, name, status, tier, regions, products, version, updated_at)
SELECT 'p-' || p, 'Partner ' || p, 'active', (ARRAY['silver','gold','platinum'])[1 + p % 3],
    '{US}', '{data}', 1, now()
FROM generate_series(0, 699) AS p
"""
# Registration i: customer i / 3 (customers spread over the year), partner i % 700, the three of
# a customer 40 days apart; decided approved when first on its customer, else rejected (as 90
# days first come, first served does). Under 30 days the two later ones would be approved.
SEED = f"""
INSERT INTO registrations (registration_id, partner_id, customer_name, customer_domain,
    customer_country, name_key, products, amount, currency, status, reasons, conflicts,
    policy_version, inputs, submitted_at, decided_at, expires_at, updated_at)
SELECT 'reg_' || i, 'p-' || (i % 700), {CUSTOMER_NAME}, 'cust-' || c || '.example', 'US',
    {NAME_KEY}, '{{data}}', 1000 + i % 5000, 'USD',
    CASE WHEN i % 3 = 0 THEN 'approved' ELSE 'rejected' END, '{{seeded}}', '[]', 'bench', '{{}}',
    $2::timestamptz + (c * 3 * ($3::float8 / $1) + (i % 3) * 40) * interval '1 day',
    $2::timestamptz, NULL, now()
FROM generate_series(0, $1::int - 1) AS i, LATERAL (SELECT i / 3 AS c) AS customer
"""
LEDGER = """
INSERT INTO registration_ledger (registration_id, at, what, status, principal_kind, principal,
    policy_version, reasons, partner_reasons)
SELECT registration_id, submitted_at, 'decided', status, 'partner', partner_id, 'bench',
    reasons, reasons
FROM registrations
"""


async def measure(infra: Infra, size: int) -> dict[str, Any]:
    proposed = replace(RulesOfEngagement(), version="bench-30", protection_days=30)
    async with (
        scratch_schema(infra) as scratch,
        migrated_pool(scratch, "deals", DEALS_MIGRATIONS, max_size=2) as pool,
    ):
        started = time.perf_counter()
        await pool.execute(PARTNERS)
        await pool.execute(SEED, size, START, 365.0)
        await pool.execute(LEDGER)
        await pool.execute("ANALYZE")
        seeded = time.perf_counter() - started
        since, until = START, START + timedelta(days=400)
        started = time.perf_counter()
        async with pool.acquire() as conn, conn.transaction(readonly=True):
            history = await _load(conn, since, until, timedelta(days=30))
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        result = replay(proposed, history)
        replayed = time.perf_counter() - started
    return {
        "registrations": size,
        "replayed": result.replayed,
        "changed": len(result.changes),
        "load_seconds": round(loaded, 2),
        "replay_seconds": round(replayed, 2),
        "total_seconds": round(loaded + replayed, 2),
        "seed_seconds": round(seeded, 1),
    }


async def run(infra: Infra, sizes: list[int]) -> dict[str, Any]:
    report: dict[str, Any] = {"benchmark": "policy_backtest"}
    for size in sizes:
        row = report[str(size)] = await measure(infra, size)
        print(
            f"{size:>8} registrations  load {row['load_seconds']:.2f} s + replay"
            f" {row['replay_seconds']:.2f} s = {row['total_seconds']:.2f} s"
            f" ({row['changed']} would change)"
        )
    return report


if __name__ == "__main__":
    parser = arguments("policy_backtest", __doc__, sizes="10000,100000")
    args = parser.parse_args()
    run_and_write(args.out, lambda infra: run(infra, args.sizes))
