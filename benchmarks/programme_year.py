"""The programme's periodic work at scale, on the local stack: onboarding's programme year
(notices, then the annual reviews) and enablement announcements, and attribution's daily
health scoring, each over every partner of a throw-away schema.

    eval "$(deploy/local-stack.sh env)"
    .venv/bin/python -m benchmarks.programme_year [--partners 1000]

Seeds active partners activated a year ago (onboarding) and partners in the programme
(attribution), then times one run of each job as the scheduler would make it (one transaction
per partner) and prints milliseconds per partner; writes them as JSON (--out).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.command import arguments, run_and_write
from services.attribution.domain.config import AttributionConfig
from services.attribution.health_scoring import score_partners
from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.programme_year import run_programme_year
from services.onboarding.signals import announce_enablement
from shared.outbox import Outbox
from tests.support.infra import Infra, migrated_pool, scratch_schema

ROOT = Path(__file__).resolve().parent.parent / "services"
ACTIVATED = datetime.now(UTC) - timedelta(days=365)
PARTNERS = """
INSERT INTO partners (partner_id, company_name, domain, partner_type, status, tier, application,
    regions, products_applied, products, qualification, qualification_outcome, policy_version,
    applied_at, updated_at, domain_token, agreement_valid_until)
SELECT 'ptn_b' || i, 'Bench ' || i, 'bench' || i || '.example', 'gsi', 'active', 'registered',
    '{}', '{US}', '{data,ai}', '{data}', '{}', 'approve', 'bench', $2::timestamptz,
    $2::timestamptz, md5(i::text), $2::timestamptz + interval '2 years'
FROM generate_series(1, $1::int) AS i
"""
ACTIVATIONS = """
INSERT INTO partner_history (partner_id, version, change, status, tier, reason, changed_at)
SELECT 'ptn_b' || i, 0, 'activated', 'active', 'registered', 'bench', $2
FROM generate_series(1, $1::int) AS i
"""
IN_PROGRAMME = """
INSERT INTO partner_access (partner_id, status, version, changed_at)
SELECT 'ptn_b' || i, 'active', 1, now() FROM generate_series(1, $1::int) AS i
"""


async def timed(action: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await action
    return (time.perf_counter() - started) * 1000, result


async def run(infra: Infra, partners: int) -> dict[str, Any]:
    config = OnboardingConfig.model_validate(
        {"programme_year": {"minimum": {"min_revenue": "1000"}}}
    )
    report: dict[str, Any] = {"benchmark": "programme_year", "partners": partners}
    review_on = (ACTIVATED + timedelta(days=365)).replace(hour=12)
    async with (
        scratch_schema(infra) as scratch,
        migrated_pool(scratch, "onboarding", ROOT / "onboarding" / "migrations") as pool,
    ):
        outbox = Outbox("onboarding", "pollinate/bench")
        await pool.execute(PARTNERS, partners, ACTIVATED)
        await pool.execute(ACTIVATIONS, partners, ACTIVATED)
        await pool.execute("ANALYZE")
        for name, moment in (("notices", review_on - timedelta(days=90)), ("reviews", review_on)):
            ms, done = await timed(run_programme_year(pool, outbox, config, moment))
            report[f"{name}_ms_per_partner"] = round(ms / partners, 2)
            report[f"{name}_done"] = len(done)
            report[f"{name}_failed"] = sum(1 for d in done.values() if d == ["error"])
        ms, announced = await timed(announce_enablement(pool, outbox, config, review_on))
        report["enablement_ms_per_partner"] = round(ms / partners, 2)
        report["enablement_announced"] = len(announced)
    async with (
        scratch_schema(infra) as scratch,
        migrated_pool(scratch, "attribution", ROOT / "attribution" / "migrations") as pool,
    ):
        outbox = Outbox("attribution", "pollinate/bench")
        await pool.execute(IN_PROGRAMME, partners)
        await pool.execute("ANALYZE")
        ms, scored = await timed(score_partners(pool, outbox, AttributionConfig(), review_on))
        report["health_ms_per_partner"] = round(ms / partners, 2)
        report["health_announced"] = len(scored)
        ms, _ = await timed(score_partners(pool, outbox, AttributionConfig(), review_on))
        report["health_again_ms_per_partner"] = round(ms / partners, 2)
    print(
        f"{partners} partners, ms per partner: programme-year notices "
        f"{report['notices_ms_per_partner']}, reviews {report['reviews_ms_per_partner']}, "
        f"enablement {report['enablement_ms_per_partner']}, health "
        f"{report['health_ms_per_partner']} (again, unmoved: {report['health_again_ms_per_partner']})"
    )
    return report


if __name__ == "__main__":
    parser = arguments("programme_year", __doc__)
    parser.add_argument("--partners", type=int, default=1000)
    args = parser.parse_args()
    run_and_write(args.out, lambda infra: run(infra, args.partners))
