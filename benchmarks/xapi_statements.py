"""Enablement cost on the local stack: storing and applying xAPI statements, and the reads built
on them (a partner's learning paths, its enablement KPIs, the programme's).

    eval "$(deploy/local-stack.sh env)"
    .venv/bin/python -m benchmarks.xapi_statements [--partners 200] [--people 5] [--batches 20]
        [--batch 100]

Seeds a throw-away onboarding schema with active partners and their people, then sends batches
of statements the way the endpoint does (one transaction per request): 70% module completions,
20% certification exams passed, 10% failed, each for a random person. Prints statements per
second and the batch latency, then the read timings, and writes them as JSON (--out).
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.command import arguments, run_and_write
from services.onboarding import enablement_views
from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.enablement import COMPLETED, FAILED, PASSED, Statement, mbox_key
from services.onboarding.domain.programme import EXAM_BASE, MODULE_BASE
from services.onboarding.statements import receive
from shared.outbox import Outbox
from tests.support.infra import Infra, migrated_pool, scratch_schema

MIGRATIONS = Path(__file__).resolve().parent.parent / "services" / "onboarding" / "migrations"
PARTNERS = """
INSERT INTO partners (partner_id, company_name, domain, partner_type, status, tier, application,
    regions, products_applied, products, qualification, qualification_outcome, policy_version,
    applied_at, updated_at, domain_token)
SELECT 'ptn_b' || i, 'Bench ' || i, 'bench' || i || '.example', 'gsi', 'active', 'registered',
    '{}', '{US}', '{data,ai}', '{data}', '{}', 'approve', 'bench', now(), now(), md5(i::text)
FROM generate_series(1, $1::int) AS i
"""
PEOPLE = """
INSERT INTO people (person_id, partner_id, email, role, joined_at, added_by)
SELECT 'psn_b' || i || '_' || j, 'ptn_b' || i, 'p' || j || '@bench' || i || '.example',
    (ARRAY['sales', 'technical', 'customer_success'])[1 + j % 3], now() - interval '30 days',
    'bench'
FROM generate_series(1, $1::int) AS i, generate_series(1, $2::int) AS j
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def workload(
    rng: random.Random, partners: int, people: int, size: int
) -> list[tuple[Statement, dict[str, Any]]]:
    batch = []
    now = datetime.now(UTC)
    for _ in range(size):
        i, j = rng.randint(1, partners), rng.randint(1, people)
        role = "sales" if j % 3 == 0 else "technical"
        track = rng.choice(("data", "ai", "security", "cloud"))
        draw = rng.random()
        verb, activity = (
            (COMPLETED, f"{MODULE_BASE}{track}/fundamentals")
            if draw < 0.7
            else (PASSED if draw < 0.9 else FAILED, f"{EXAM_BASE}{track}/{role}")
        )
        statement_id = str(uuid.uuid4())
        at = now - timedelta(minutes=rng.randint(0, 10_000))
        actor = f"p{j}@bench{i}.example"
        statement = Statement(statement_id, mbox_key(actor), verb, activity, None, None, at)
        content = {
            "id": statement_id,
            "actor": {"objectType": "Agent", "mbox": f"mailto:{actor}"},
            "verb": {"id": verb},
            "object": {"objectType": "Activity", "id": activity},
            "timestamp": at.isoformat(),
        }
        batch.append((statement, content))
    return batch


async def timed(action: Any) -> float:
    started = time.perf_counter()
    await action
    return (time.perf_counter() - started) * 1000


async def run(infra: Infra, partners: int, people: int, batches: int, size: int) -> dict[str, Any]:
    rng = random.Random(11)  # noqa: S311 (a repeatable workload, not a secret)
    config = OnboardingConfig()
    report: dict[str, Any] = {
        "benchmark": "xapi_statements",
        "partners": partners,
        "people": partners * people,
        "batches": batches,
        "batch": size,
    }
    async with (
        scratch_schema(infra) as scratch,
        migrated_pool(scratch, "onboarding", MIGRATIONS, max_size=2) as pool,
    ):
        # Written to the scratch schema's outbox (its search path) as onboarding's events.
        outbox = Outbox("onboarding", "pollinate/bench")
        await pool.execute(PARTNERS, partners)
        await pool.execute(PEOPLE, partners, people)
        await pool.execute("ANALYZE")
        timings: list[float] = []
        started = time.perf_counter()
        for _ in range(batches):
            batch = workload(rng, partners, people, size)
            t0 = time.perf_counter()
            async with pool.acquire() as conn, conn.transaction():
                await receive(
                    conn, outbox, config, batch, at=datetime.now(UTC), by="bench", by_subject="b"
                )
            timings.append((time.perf_counter() - t0) * 1000)
        elapsed = time.perf_counter() - started
        report["statements_per_second"] = round(batches * size / elapsed, 1)
        report["batch_p50_ms"] = round(percentile(timings, 0.5), 1)
        report["batch_p99_ms"] = round(percentile(timings, 0.99), 1)
        report["batch_mean_ms"] = round(statistics.fmean(timings), 1)
        report["certifications"] = await pool.fetchval("SELECT count(*) FROM certifications")
        now = datetime.now(UTC)
        report["learning_ms"] = round(
            await timed(enablement_views.learning(pool, config, "ptn_b1")), 1
        )
        report["partner_enablement_ms"] = round(
            await timed(enablement_views.enablement(pool, config, "ptn_b1", now)), 1
        )
        report["programme_enablement_ms"] = round(
            await timed(enablement_views.enablement(pool, config, None, now)), 1
        )
    print(
        f"{report['people']} people: {report['statements_per_second']} statements/s "
        f"(batches of {size}: p50 {report['batch_p50_ms']} ms, p99 {report['batch_p99_ms']} ms); "
        f"learning {report['learning_ms']} ms, partner KPIs {report['partner_enablement_ms']} ms, "
        f"programme KPIs {report['programme_enablement_ms']} ms"
    )
    return report


if __name__ == "__main__":
    parser = arguments("xapi_statements", __doc__)
    parser.add_argument("--partners", type=int, default=200)
    parser.add_argument("--people", type=int, default=5)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    run_and_write(
        args.out, lambda infra: run(infra, args.partners, args.people, args.batches, args.batch)
    )
