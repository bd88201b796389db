"""Read side of partner health: each partner's inputs to its score (domain/health.py), read
set-based for any number of partners at once, in six statements. The hourly scoring run reads
every partner's inputs together: the won and lost deals and the days to close each join the
deals to the touchpoints once (hash joins over both tables). Read a partner at a time, they
took a lookup of every deal each partner ever touched (14.6-18.3 s a run for 2,219 partners
on the benchmark's data, warm; 3.6-4.3 s together: README, Benchmarks)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from services.attribution.domain.config import AttributionConfig
from services.attribution.domain.health import HealthInputs
from services.attribution.voice_signals import partners_voice
from shared.db import Connection

# $1 the partners, $2 and $3 the window's first and last days (for registrations, the first
# moment of the one and the first moment after the other): the last `window_days` days to the
# day scored, both ends included. Open at its end, a backdated run counted facts that came
# after its day, and one day more than onboarding's revenue window.
_REVENUE_SQL = """
SELECT partner_id, sum(amount) AS revenue FROM credits
WHERE partner_id = ANY($1::text[]) AND reversed_at IS NULL
  AND close_date >= $2 AND close_date <= $3
GROUP BY partner_id"""
# A deal counts once a partner however many touchpoints it has there; waiting touchpoints
# (reported through the API, not approved) count for nothing.
_OUTCOMES_SQL = """
SELECT t.partner_id,
       count(DISTINCT d.deal_key) FILTER (WHERE d.status = 'won') AS won,
       count(DISTINCT d.deal_key) FILTER (WHERE d.status = 'lost') AS lost
FROM deals d JOIN touchpoints t ON t.deal_key = d.deal_key
WHERE NOT d.deleted AND d.close_date >= $2 AND d.close_date <= $3
  AND t.partner_id = ANY($1::text[])
  AND t.active AND (t.origin <> 'api' OR t.approved)
GROUP BY t.partner_id"""
# Registration to close, per sourced deal won in the window.
_DAYS_SQL = """
SELECT t.partner_id, d.close_date - min(t.occurred_at)::date AS days
FROM deals d JOIN touchpoints t ON t.deal_key = d.deal_key
WHERE t.partner_id = ANY($1::text[]) AND t.active AND t.kind = 'sourced_registration'
  AND d.status = 'won' AND NOT d.deleted AND d.close_date >= $2 AND d.close_date <= $3
GROUP BY t.partner_id, d.deal_key, d.close_date
ORDER BY t.partner_id, d.deal_key"""
_SIGNALS_SQL = """
SELECT partner_id,
       count(*) FILTER (WHERE conflicts > 0) AS conflicts,
       count(*) FILTER (WHERE status = 'rejected') AS rejections,
       count(*) FILTER (WHERE status = 'expired') AS expiries
FROM registrations WHERE partner_id = ANY($1::text[]) AND changed_at >= $2 AND changed_at < $3
GROUP BY partner_id"""
_ENABLEMENT_SQL = """
SELECT partner_id, score FROM enablement_signals WHERE partner_id = ANY($1::text[])"""


async def health_inputs_of(
    conn: Connection, config: AttributionConfig, partner_ids: Sequence[str], today: date
) -> dict[str, HealthInputs]:
    """Each partner's inputs as of `today` (a partner with no facts in the window reads
    zeros), in six statements whatever the number of partners, planned for the partners
    given: the same text serves one partner and thousands, and a generic plan, which the
    connection's cache may settle on, reads the outcomes of 2,219 partners in 3.8 s where
    theirs takes 2.8 s (the benchmark's data)."""
    async with conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        return await _read(conn, config, list(dict.fromkeys(partner_ids)), today)


async def _read(
    conn: Connection, config: AttributionConfig, ids: list[str], today: date
) -> dict[str, HealthInputs]:
    since = today - timedelta(days=config.health.window_days - 1)
    window = (ids, since, today)
    revenue = {r["partner_id"]: r["revenue"] for r in await conn.fetch(_REVENUE_SQL, *window)}
    outcomes = {r["partner_id"]: r for r in await conn.fetch(_OUTCOMES_SQL, *window)}
    days: dict[str, list[int]] = defaultdict(list)
    for r in await conn.fetch(_DAYS_SQL, *window):
        days[r["partner_id"]].append(max(0, r["days"]))
    from_moment = datetime.combine(since, time(0), tzinfo=UTC)
    to_moment = datetime.combine(today + timedelta(days=1), time(0), tzinfo=UTC)
    signals = {
        r["partner_id"]: r for r in await conn.fetch(_SIGNALS_SQL, ids, from_moment, to_moment)
    }
    enablement = {r["partner_id"]: r["score"] for r in await conn.fetch(_ENABLEMENT_SQL, ids)}
    voices = await partners_voice(conn, config.health.voice, ids, today)
    inputs = {}
    for partner_id in ids:
        outcome, signal = outcomes.get(partner_id), signals.get(partner_id)
        inputs[partner_id] = HealthInputs(
            revenue=revenue.get(partner_id, Decimal(0)),
            won=outcome["won"] if outcome else 0,
            lost=outcome["lost"] if outcome else 0,
            days_to_close=tuple(days[partner_id]),
            conflicts=signal["conflicts"] if signal else 0,
            rejections=signal["rejections"] if signal else 0,
            expiries=signal["expiries"] if signal else 0,
            enablement=enablement.get(partner_id),
            voice=voices[partner_id],
        )
    return inputs
