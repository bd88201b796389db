"""Conflict-check cost as registrations grow (exact domain and fuzzy name), on the local stack.

    eval "$(deploy/local-stack.sh env)"
    .venv/bin/python -m benchmarks.conflict_check [--sizes 1000,100000,1000000] [--lookups 2000]

Seeds a throw-away deals schema with N registrations (grown in place from one size to the
next), then times the whole decision the API makes for a new registration: partner lookup,
candidate lookups, the pure rules. "exact" registrations name a known customer's domain;
"fuzzy" ones give no domain and a misspelt company name, so only the name match can find the
conflict. Prints p50/p99 per size and writes the numbers as JSON (--out).

Names: first words are drawn uniformly from a large synthetic vocabulary (half as many
customers as registrations), so each name block holds a handful of customers. A vocabulary with
very common first words ("Global ...") makes fuzzy blocks bigger: see services/deals/README.md.
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks.command import arguments, run_and_write
from services.deals.domain.customers import name_key
from services.deals.domain.rules import RegistrationRequest, RulesOfEngagement
from services.deals.registering import decide
from tests.support.infra import Infra, migrated_pool, scratch_schema

DEALS_MIGRATIONS = Path(__file__).resolve().parent.parent / "services" / "deals" / "migrations"
SECTORS = "ARRAY['Systems','Logistics','Health','Foods','Energy','Capital','Labs','Media']"
# Customer c: "<Word> <Sector> Inc", word = 'k' + 7 hex digits of md5(c). Its name_key is the
# word lower-cased and folded to its confusable skeleton, where of the hex digits only 0 and 1
# change (to o and l): NAME_KEY equals services.deals.domain.customers.name_key (checked below).
CUSTOMER_NAME = f"'K' || substr(md5(c::text), 1, 7) || ' ' || ({SECTORS})[1 + c % 8] || ' Inc'"
NAME_KEY = "'k' || translate(substr(md5(c::text), 1, 7), '01', 'ol')"
SEED = f"""
INSERT INTO registrations (registration_id, partner_id, customer_name, customer_domain,
    customer_country, name_key, products, amount, currency, status, reasons, conflicts,
    policy_version, inputs, submitted_at, decided_at, expires_at, updated_at)
SELECT 'reg_' || i, 'p-' || (i % 700), {CUSTOMER_NAME}, 'cust-' || c || '.example', 'US',
    {NAME_KEY}, '{{data}}', 1000 + i % 5000, 'USD',
    (ARRAY['approved','expired','won','lost','rejected','pending_review'])[1 + i % 6],
    '{{}}', '[]', 'bench', '{{}}', now() - (i % 400) * interval '1 day',
    now() - (i % 400) * interval '1 day', now() + (90 - i % 400) * interval '1 day', now()
FROM generate_series($1::int + 1, $2::int) AS i, LATERAL (SELECT i / 2 AS c) AS customer
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def misspell(name: str, rng: random.Random) -> str:
    word, sector, suffix = name.split(" ")
    position = rng.randrange(1, len(sector))
    return f"{word} {sector[:position]}{sector[position + 1 :]} {suffix}"


async def measure(
    pool: Any, size: int, lookups: int, rng: random.Random, policy: RulesOfEngagement
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for kind in ("exact", "fuzzy"):
        timings: list[float] = []
        conflicts = 0
        async with pool.acquire() as conn:
            customers = [rng.randrange(1, size // 2) for _ in range(lookups)]
            names = await conn.fetch(
                f"SELECT c, {CUSTOMER_NAME} AS name FROM unnest($1::int[]) AS c", customers
            )
            for row in names:
                name = row["name"]
                request = RegistrationRequest(
                    partner_id="p-bench",
                    customer_name=name if kind == "exact" else misspell(name, rng),
                    customer_domain=f"cust-{row['c']}.example" if kind == "exact" else None,
                    customer_country="US",
                    products=frozenset({"data"}),
                    amount=Decimal("10000"),
                    currency="USD",
                    submitted_at=datetime.now(UTC),
                )
                started = time.perf_counter()
                async with conn.transaction():
                    decision = await decide(conn, policy, request)
                timings.append((time.perf_counter() - started) * 1000)
                conflicts += bool(decision.conflicts)
        results[kind] = {
            "p50_ms": round(percentile(timings, 0.50), 3),
            "p99_ms": round(percentile(timings, 0.99), 3),
            "mean_ms": round(statistics.fmean(timings), 3),
            "found_conflict_share": round(conflicts / lookups, 3),
        }
    return results


async def run(infra: Infra, sizes: list[int], lookups: int) -> dict[str, Any]:
    rng = random.Random(7)  # noqa: S311 (a repeatable workload, not a secret)
    policy = RulesOfEngagement()
    report: dict[str, Any] = {"benchmark": "conflict_check", "lookups_per_kind": lookups}
    async with (
        scratch_schema(infra) as scratch,
        migrated_pool(scratch, "deals", DEALS_MIGRATIONS, max_size=2) as pool,
    ):
        await pool.execute(
            """INSERT INTO partners (partner_id, name, status, tier, regions, products, version,
                   updated_at)
               VALUES ('p-bench', 'Bench', 'active', 'gold', '{US}', '{data}', 1, now())"""
        )
        sample = await pool.fetchrow(
            f"SELECT {CUSTOMER_NAME} AS n, {NAME_KEY} AS k FROM (SELECT 42 AS c) AS s"
        )
        assert sample is not None
        assert name_key(sample["n"]) == sample["k"], "the seed's name_key drifted from the code's"
        seeded = 0
        for size in sorted(sizes):
            started = time.perf_counter()
            await pool.execute(SEED, seeded, size)
            # Vacuumed as a table of that size is in steady state (visibility map set), so
            # autovacuum does not start on the fresh rows while the lookups are timed.
            await pool.execute("VACUUM (ANALYZE) registrations")
            seed_seconds = time.perf_counter() - started
            seeded = size
            report[str(size)] = await measure(pool, size, lookups, rng, policy)
            report[str(size)]["seed_seconds"] = round(seed_seconds, 1)
            row = report[str(size)]
            print(
                f"{size:>9} registrations  exact p50 {row['exact']['p50_ms']:.2f} ms"
                f" p99 {row['exact']['p99_ms']:.2f} ms | fuzzy p50 {row['fuzzy']['p50_ms']:.2f} ms"
                f" p99 {row['fuzzy']['p99_ms']:.2f} ms | conflicts found"
                f" {row['exact']['found_conflict_share']:.0%}/{row['fuzzy']['found_conflict_share']:.0%}"
            )
    return report


if __name__ == "__main__":
    parser = arguments("conflict_check", __doc__, sizes="1000,100000,1000000")
    parser.add_argument("--lookups", type=int, default=2000)
    args = parser.parse_args()
    run_and_write(args.out, lambda infra: run(infra, args.sizes, args.lookups))
