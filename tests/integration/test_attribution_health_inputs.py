"""A health scoring run reads every partner's inputs together (health_views.py): they must be
what each partner's inputs read alone were, on facts of every kind the window and the filters
tell apart. The reference below is the per-partner read the run used before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta

import pytest

from services.attribution.domain.config import AttributionConfig
from services.attribution.domain.health import HealthInputs
from services.attribution.domain.voice import voice_inputs
from services.attribution.health_views import health_inputs_of
from shared.db import Connection, Pool
from tests.support.infra import ROOT, ScratchService, migrated_pool

pytestmark = pytest.mark.integration
MIGRATIONS = ROOT / "services" / "attribution" / "migrations"
PARTNERS = [f"p-{n}" for n in range(9)]  # p-8 has no facts at all
TODAY = date(2026, 12, 6)

# 600 deals over 500 days (a third outside a year's window), won, lost or open, a few deleted
# or undated; each with a touchpoint of its partner (kinds, origins, approvals, inactive ones),
# some with a second one of the same partner and some with another partner's; on a sixth of
# them (won) two more registrations: an earlier one of the same partner (its first counts) and
# one of another partner after the close (no negative days); credits on a third (some
# reversed); registrations; enablement; survey answers in and out of range.
SEED = """
INSERT INTO deals (deal_key, source, revision, status, deleted, amount, currency, close_date,
    customer, changed_at)
SELECT 'd-' || i, 'crm', 1, (ARRAY['won', 'lost', 'open'])[1 + i % 3], i % 37 = 0, 100, 'USD',
    CASE WHEN i % 41 = 0 THEN NULL ELSE $1::date - (i * 7 % 500) END, '{}', now()
FROM generate_series(1, 600) AS i;
INSERT INTO touchpoints (touchpoint_id, deal_key, partner_id, kind, occurred_at, source, origin,
    approved, active)
SELECT 't-' || i || '-' || k, 'd-' || i, 'p-' || ((i + k / 2 * 3) % 8),
    (ARRAY['sourced_registration', 'referral', 'co_sell_meeting'])[1 + (i + k) % 3],
    $1::date - (i * 7 % 500) - (i % 90) - k, 'crm',
    (ARRAY['registration', 'crm', 'api'])[1 + (i / 2 + k) % 3], i % 4 < 2, i % 11 <> 0
FROM generate_series(1, 600) AS i, generate_series(0, 2) AS k
WHERE k = 0 OR (k = 1 AND i % 5 = 0) OR (k = 2 AND i % 7 = 0);
INSERT INTO touchpoints (touchpoint_id, deal_key, partner_id, kind, occurred_at, source, origin,
    approved, active)
SELECT 't-' || i || '-s' || j, 'd-' || i, 'p-' || ((i + j * 5) % 8), 'sourced_registration',
    $1::date - (i * 7 % 500) + CASE WHEN j = 1 THEN 3 ELSE -120 END, 'crm', 'registration',
    true, true
FROM generate_series(1, 600) AS i, generate_series(0, 1) AS j
WHERE i % 6 = 0;
INSERT INTO credits (credit_id, deal_key, partner_id, kind, amount, currency, original_amount,
    original_currency, fx_rate, share, model, config_version, reasons, close_date,
    deal_revision, issued_at, reversal_id, reversed_at)
SELECT 'c-' || i, 'd-' || i, 'p-' || (i % 8), (ARRAY['sourced', 'influenced'])[1 + i % 2],
    i * 1.25, 'USD', i * 1.25, 'USD', 1, 1, 'm', 'v', '[]', $1::date - (i * 7 % 500), 1, now(),
    CASE WHEN i % 13 = 0 THEN 'rv-' || i END, CASE WHEN i % 13 = 0 THEN now() END
FROM generate_series(1, 600) AS i WHERE i % 3 = 1;
INSERT INTO registrations (registration_id, partner_id, status, conflicts, changed_at)
SELECT 'r-' || i, 'p-' || (i % 8), (ARRAY['approved', 'rejected', 'expired', 'won'])[1 + i % 4],
    i % 3, $1::date - (i * 5 % 500)
FROM generate_series(1, 300) AS i;
INSERT INTO enablement_signals (partner_id, score, measured_at, people, reasons)
SELECT 'p-' || i, 10 * i + 0.5, now(), i, '{}' FROM generate_series(0, 5) AS i;
INSERT INTO voice_answers (answer_id, survey_id, partner_id, score, answered_at)
SELECT 'a-' || i, 's', 'p-' || (i % 8), i % 11, $1::date - (i * 3 % 300) + interval '13 hours'
FROM generate_series(1, 200) AS i
"""


@pytest.fixture
async def pool(scratch_service: ScratchService) -> AsyncIterator[Pool]:
    async with migrated_pool(scratch_service, "attribution", MIGRATIONS) as pool:
        async with pool.acquire() as conn:
            for statement in SEED.split(";"):
                await conn.execute(statement, *((TODAY,) if "$1" in statement else ()))
        yield pool


async def read_alone(
    conn: Connection, config: AttributionConfig, partner_id: str, today: date
) -> HealthInputs:
    """The inputs as a partner's own read took them (its days in no set order: sorted), over
    the window's days to `today`, both ends included."""
    since = today - timedelta(days=config.health.window_days - 1)
    revenue = await conn.fetchval(
        """SELECT coalesce(sum(amount), 0) FROM credits
           WHERE partner_id = $1 AND reversed_at IS NULL AND close_date >= $2
             AND close_date <= $3""",
        partner_id,
        since,
        today,
    )
    outcomes = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE d.status = 'won') AS won,
                  count(*) FILTER (WHERE d.status = 'lost') AS lost
           FROM deals d
           WHERE NOT d.deleted AND d.close_date >= $2 AND d.close_date <= $3 AND EXISTS (
               SELECT 1 FROM touchpoints t
               WHERE t.deal_key = d.deal_key AND t.partner_id = $1 AND t.active
                 AND (t.origin <> 'api' OR t.approved))""",
        partner_id,
        since,
        today,
    )
    days = await conn.fetch(
        """SELECT d.close_date - min(t.occurred_at)::date AS days
           FROM deals d JOIN touchpoints t ON t.deal_key = d.deal_key
           WHERE t.partner_id = $1 AND t.active AND t.kind = 'sourced_registration'
             AND d.status = 'won' AND NOT d.deleted AND d.close_date >= $2
             AND d.close_date <= $3
           GROUP BY d.deal_key, d.close_date""",
        partner_id,
        since,
        today,
    )
    signals = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE conflicts > 0) AS conflicts,
                  count(*) FILTER (WHERE status = 'rejected') AS rejections,
                  count(*) FILTER (WHERE status = 'expired') AS expiries
           FROM registrations WHERE partner_id = $1 AND changed_at >= $2 AND changed_at < $3""",
        partner_id,
        datetime.combine(since, time(0), tzinfo=UTC),
        datetime.combine(today + timedelta(days=1), time(0), tzinfo=UTC),
    )
    enablement = await conn.fetchval(
        "SELECT score FROM enablement_signals WHERE partner_id = $1", partner_id
    )
    policy = config.health.voice
    end = datetime.combine(today + timedelta(days=1), time(0), tzinfo=UTC)
    answers = await conn.fetch(
        """SELECT answered_at, score FROM voice_answers
           WHERE partner_id = $1 AND answered_at >= $2 AND answered_at < $3""",
        partner_id,
        end - timedelta(days=2 * policy.quarter_days),
        end,
    )
    assert outcomes is not None
    assert signals is not None
    return HealthInputs(
        revenue=revenue,
        won=outcomes["won"],
        lost=outcomes["lost"],
        days_to_close=tuple(sorted(max(0, r["days"]) for r in days)),
        conflicts=signals["conflicts"],
        rejections=signals["rejections"],
        expiries=signals["expiries"],
        enablement=enablement,
        voice=voice_inputs(
            policy, today, [(r["answered_at"].astimezone(UTC).date(), r["score"]) for r in answers]
        ),
    )


@pytest.mark.parametrize("window_days", [365, 30])
async def test_partners_read_together_have_the_inputs_each_read_alone(
    pool: Pool, window_days: int
) -> None:
    config = AttributionConfig.model_validate({"health": {"window_days": window_days}})
    async with pool.acquire() as conn:
        together = await health_inputs_of(conn, config, [*PARTNERS, "p-3"], TODAY)
        alone = {p: await read_alone(conn, config, p, TODAY) for p in PARTNERS}
    assert list(together) == PARTNERS  # each once, in the order named
    for partner_id, inputs in together.items():
        sorted_days = tuple(sorted(inputs.days_to_close))
        assert alone[partner_id] == HealthInputs(
            **{**inputs.__dict__, "days_to_close": sorted_days}
        ), partner_id
    # The facts reach every branch: deals won and lost, days, signals, enablement, voice.
    seen = together.values()
    assert all(sum(getattr(i, f) for i in seen) > 0 for f in ("won", "lost", "conflicts"))
    assert any(i.days_to_close for i in seen)
    assert any(i.revenue for i in seen)
    assert together["p-8"] == alone["p-8"]
    assert together["p-8"].enablement is None
