"""Write side of partner health: the daily scores (and which were announced), the partners in
the programme to score, and onboarding's enablement signal as consumed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from services.attribution.domain.health import HealthInputs, HealthScore
from services.attribution.domain.voice import VoiceInputs
from shared.db import Connection, advisory_key, columns, lock_in_order
from shared.events.programme import PartnerEnablementMeasured

# Partners scored each day: those in the programme (what partners.lifecycle.v1 last said).
SCORED_STATUSES = ("active", "grace", "suspended")


@dataclass(frozen=True)
class ScoredDay:
    partner_id: str
    day: date
    inputs: HealthInputs
    score: HealthScore
    config_version: str
    scored_at: datetime
    published: bool
    # The database's clock when the run began to read `inputs` (`inputs_read_at`): a day's
    # row is never replaced by inputs read before the ones it holds.
    inputs_read_at: datetime


async def partners_in_programme(conn: Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT partner_id FROM partner_access WHERE status = ANY($1::text[]) ORDER BY partner_id",
        list(SCORED_STATUSES),
    )
    return [r["partner_id"] for r in rows]


async def known_partners(conn: Connection, partner_ids: Sequence[str]) -> set[str]:
    """Those of `partner_ids` attribution knows: partners.lifecycle.v1 said something of them
    (whatever their status). Attribution holds no other word that a partner exists."""
    rows = await conn.fetch(
        "SELECT partner_id FROM partner_access WHERE partner_id = ANY($1::text[])",
        list(partner_ids),
    )
    return {r["partner_id"] for r in rows}


async def database_clock(conn: Connection) -> datetime:
    """The database's clock now: every statement after this call sees at least what had
    committed by then."""
    moment: datetime = await conn.fetchval("SELECT clock_timestamp()")
    return moment


def partner_day_key(partner_id: str, day: date) -> int:
    """The advisory lock key of the partner's scoring of `day`."""
    return advisory_key("attribution", "health", partner_id, day.isoformat())


async def lock_partner_day(conn: Connection, partner_id: str, day: date) -> None:
    """Hold the partner's scoring of `day` for this transaction: two runs of the same day (two
    instances) decide what to announce one after the other, each seeing what the other
    stored and announced."""
    await lock_in_order(conn, [partner_day_key(partner_id, day)])


async def last_announced(
    conn: Connection, partner_ids: Sequence[str], day: date
) -> dict[str, Decimal]:
    """Per partner, the score last announced on or before `day`."""
    rows = await conn.fetch(
        """SELECT DISTINCT ON (partner_id) partner_id, score FROM health_scores
           WHERE published AND partner_id = ANY($1::text[]) AND day <= $2
           ORDER BY partner_id, day DESC""",
        list(partner_ids),
        day,
    )
    return {r["partner_id"]: r["score"] for r in rows}


async def save_scores(conn: Connection, days: Sequence[ScoredDay]) -> set[tuple[str, date]]:
    """Store the days scored, one statement, and answer which were stored. A day scored again
    is replaced (announced stays announced), unless the row holds inputs read later than the
    new ones (a run that began to read after this one and stored first): that day is left as
    it is and not in the answer."""
    if not days:
        return set()
    rows = await conn.fetch(
        """
        INSERT INTO health_scores (partner_id, day, score, revenue, win_rate, velocity,
            enablement, penalty, inputs, reasons, config_version, scored_at, published,
            inputs_read_at)
        SELECT e.partner_id, e.day, e.score, e.revenue, e.win_rate, e.velocity, e.enablement,
               e.penalty, e.inputs::jsonb,
               ARRAY(SELECT jsonb_array_elements_text(e.reasons::jsonb)),
               e.config_version, e.scored_at, e.published, e.inputs_read_at
        FROM unnest($1::text[], $2::date[], $3::numeric[], $4::numeric[], $5::numeric[],
                    $6::numeric[], $7::numeric[], $8::numeric[], $9::text[], $10::text[],
                    $11::text[], $12::timestamptz[], $13::bool[], $14::timestamptz[])
            AS e(partner_id, day, score, revenue, win_rate, velocity, enablement, penalty,
                 inputs, reasons, config_version, scored_at, published, inputs_read_at)
        ON CONFLICT (partner_id, day) DO UPDATE SET
            score = EXCLUDED.score, revenue = EXCLUDED.revenue, win_rate = EXCLUDED.win_rate,
            velocity = EXCLUDED.velocity, enablement = EXCLUDED.enablement,
            penalty = EXCLUDED.penalty, inputs = EXCLUDED.inputs, reasons = EXCLUDED.reasons,
            config_version = EXCLUDED.config_version, scored_at = EXCLUDED.scored_at,
            published = health_scores.published OR EXCLUDED.published,
            inputs_read_at = EXCLUDED.inputs_read_at
        WHERE health_scores.inputs_read_at IS NULL
           OR health_scores.inputs_read_at <= EXCLUDED.inputs_read_at
        RETURNING partner_id, day
        """,
        *columns(
            [
                (
                    d.partner_id,
                    d.day,
                    d.score.score,
                    d.score.revenue,
                    d.score.win_rate,
                    d.score.velocity,
                    d.score.enablement,
                    d.score.penalty,
                    json.dumps(_inputs_json(d.inputs)),
                    json.dumps(list(d.score.reasons)),
                    d.config_version,
                    d.scored_at,
                    d.published,
                    d.inputs_read_at,
                )
                for d in days
            ]
        ),
    )
    return {(row["partner_id"], row["day"]) for row in rows}


def _inputs_json(inputs: HealthInputs) -> dict[str, object]:
    return {
        "revenue": str(inputs.revenue),
        "won": inputs.won,
        "lost": inputs.lost,
        "days_to_close": list(inputs.days_to_close),
        "conflicts": inputs.conflicts,
        "rejections": inputs.rejections,
        "expiries": inputs.expiries,
        "enablement": None if inputs.enablement is None else str(inputs.enablement),
        "voice": None if inputs.voice is None else _voice_json(inputs.voice),
    }


def _voice_json(voice: VoiceInputs) -> dict[str, object]:
    return {
        name: {"promoters": q.promoters, "passives": q.passives, "detractors": q.detractors}
        for name, q in (
            ("last_quarter", voice.last_quarter),
            ("quarter_before", voice.quarter_before),
        )
    }


async def record_enablement(conn: Connection, events: Sequence[PartnerEnablementMeasured]) -> None:
    """Keep each partner's newest enablement measurement (an older one never wins), one
    statement."""
    latest: dict[str, PartnerEnablementMeasured] = {}
    for event in events:
        held = latest.get(event.partner_id)
        if held is None or held.measured_at < event.measured_at:
            latest[event.partner_id] = event
    rows = list(latest.values())
    await conn.execute(
        """
        INSERT INTO enablement_signals (partner_id, score, measured_at, people, reasons)
        SELECT e.partner_id, e.score, e.measured_at, e.people,
               ARRAY(SELECT jsonb_array_elements_text(e.reasons::jsonb))
        FROM unnest($1::text[], $2::numeric[], $3::timestamptz[], $4::int[], $5::text[])
            AS e(partner_id, score, measured_at, people, reasons)
        ON CONFLICT (partner_id) DO UPDATE SET
            score = EXCLUDED.score, measured_at = EXCLUDED.measured_at,
            people = EXCLUDED.people, reasons = EXCLUDED.reasons
        WHERE enablement_signals.measured_at < EXCLUDED.measured_at
        """,
        [r.partner_id for r in rows],
        [r.score for r in rows],
        [r.measured_at for r in rows],
        [r.people for r in rows],
        [json.dumps(list(r.reasons)) for r in rows],
    )
