"""Partner health, scored daily and stored: each partner in the programme is scored as of a
day (the job, or a channel manager's run with `as_of`: tests drive time with it), the day's row
kept with its inputs and reasons, and the score announced on attribution.health.v1 when it
differs from the last one announced (the first time too), so onboarding's programme year
reads health without asking attribution."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.attribution import health_repository as store
from services.attribution.domain.config import AttributionConfig
from services.attribution.domain.health import HealthInputs, health_score
from services.attribution.health_repository import ScoredDay
from services.attribution.health_views import health_inputs_of
from shared.db import Connection, Pool
from shared.events.attribution import PartnerHealthScored
from shared.name_ids import NameIds
from shared.outbox import Outbox, OutgoingEvent
from shared.topics import PARTNER_HEALTH

log = logging.getLogger(__name__)
HEALTH_IDS = NameIds(uuid.UUID("6b0d6f0e-3c55-4b8e-9a61-2f4f1c0e7d21"))
# A run reads its partners' inputs this many at a time, each set in six statements
# (health_views.py), before it scores and stores them a partner a transaction. Each set joins
# the deals to the touchpoints twice, whatever its size: on the benchmark's 1.2 million deals
# and 2,219 partners, sets of 1,000 took 4.9-6.0 s a run, one set 3.6-4.3 s.
INPUTS_READ_TOGETHER = 5_000


@dataclass(frozen=True)
class HealthRun:
    """What a run did: per partner, `["scored"]` (the day's row stored) or `["scored",
    "announced"]` (it moved: published too), `["superseded"]` (a run that began to read later
    had stored the day: this run's older inputs left it as it was, nothing published),
    `["not_found"]` (named, but attribution does not know the partner: nothing stored or
    published), `["error"]` (logged, rolled back)."""

    done: dict[str, list[str]]
    announced: dict[str, Decimal]  # partner -> the score announced


async def score_partners(
    pool: Pool,
    outbox: Outbox,
    config: AttributionConfig,
    as_of: datetime,
    partner_ids: list[str] | None = None,
) -> dict[str, Decimal]:
    """The scores announced by `run_health`."""
    return (await run_health(pool, outbox, config, as_of, partner_ids)).announced


async def run_health(
    pool: Pool,
    outbox: Outbox,
    config: AttributionConfig,
    as_of: datetime,
    partner_ids: Sequence[str] | None = None,
) -> HealthRun:
    """Score every partner in the programme (or those named, each once) as of `as_of`'s day:
    their inputs read together first (health_views.py: a failure there, the database out of
    reach, fails the run, which the next one repeats), then each scored and stored in its own
    transaction (one partner's failure there blocks no other). A partner named that
    attribution does not know (no partners.lifecycle.v1 word of it: `partner_access`) is not
    scored: a score published for it would tell onboarding and programme of a partner that
    does not exist.

    Every instance runs the job: runs of one day may overlap and store in any order. A day's
    row keeps the inputs read last (`inputs_read_at`, the database's clock as the read began),
    and a partner's day is scored under a lock, so the later of two runs never announces a
    move from a score the other has not yet stored."""
    async with pool.acquire() as conn:
        read_at = await store.database_clock(conn)
        if partner_ids is None:
            ids = await store.partners_in_programme(conn)
            known = set(ids)
        else:
            ids = list(dict.fromkeys(partner_ids))
            known = await store.known_partners(conn, ids)
        scored = [partner_id for partner_id in ids if partner_id in known]
        inputs: dict[str, HealthInputs] = {}
        for first in range(0, len(scored), INPUTS_READ_TOGETHER):
            chunk = scored[first : first + INPUTS_READ_TOGETHER]
            inputs |= await health_inputs_of(conn, config, chunk, as_of.date())
    run = HealthRun({}, {})
    for partner_id in ids:
        if partner_id not in known:
            run.done[partner_id] = ["not_found"]
            continue
        try:
            async with pool.acquire() as conn, conn.transaction():
                outcome = await _score(
                    conn, outbox, config, partner_id, inputs[partner_id], read_at, as_of
                )
        except Exception:
            log.exception("health scoring failed", extra={"partner_id": partner_id})
            run.done[partner_id] = ["error"]
            continue
        run.done[partner_id] = outcome.done
        if outcome.announced is not None:
            run.announced[partner_id] = outcome.announced
    return run


@dataclass(frozen=True)
class Scored:
    """What scoring a partner's day did (`HealthRun.done`'s words) and the score announced."""

    done: list[str]
    announced: Decimal | None = None


async def _score(
    conn: Connection,
    outbox: Outbox,
    config: AttributionConfig,
    partner_id: str,
    inputs: HealthInputs,
    read_at: datetime,
    as_of: datetime,
) -> Scored:
    """Score the partner on its `inputs` (read from `read_at`) as of `as_of`'s day and store
    the day, announced when the score differs from the last one announced (or none was);
    unless the day holds inputs read later (superseded: nothing stored or announced)."""
    day = as_of.date()
    await store.lock_partner_day(conn, partner_id, day)
    score = health_score(config.health, inputs)
    last = (await store.last_announced(conn, [partner_id], day)).get(partner_id)
    announce = last is None or last != score.score
    scored = ScoredDay(partner_id, day, inputs, score, config.version, as_of, announce, read_at)
    if not await store.save_scores(conn, [scored]):
        return Scored(["superseded"])
    if not announce:
        return Scored(["scored"])
    await outbox.publish_many(conn, [_announcement(scored, last)])
    return Scored(["scored", "announced"], score.score)


def _announcement(scored: ScoredDay, previous: Decimal | None) -> OutgoingEvent:
    score = scored.score
    payload = PartnerHealthScored(
        partner_id=scored.partner_id,
        day=scored.day,
        score=score.score,
        previous_score=previous,
        revenue=score.revenue,
        win_rate=score.win_rate,
        velocity=score.velocity,
        enablement=score.enablement,
        penalty=score.penalty,
        reasons=score.reasons,
        scored_at=scored.scored_at,
        config_version=scored.config_version,
    )
    # One id per partner, day, read and move. Two runs of one day no longer need the id to
    # announce a move once (a partner's day is scored under its lock, the second run sees
    # the first's announcement); a day whose score moves back and then forth again announces
    # each move (an id of the move alone dropped the third as a repeat of the first).
    moment = scored.inputs_read_at.isoformat()
    event_id = HEALTH_IDS.uuid(
        f"{scored.partner_id}/{scored.day}/{moment}/{previous}->{score.score}"
    )
    return OutgoingEvent(PARTNER_HEALTH, payload, scored.partner_id, event_id=event_id)
