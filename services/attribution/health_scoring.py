"""Partner health, scored daily and stored: each partner in the programme is scored as of a
day (the job, or a channel manager's run with `as_of`: tests drive time with it), the day's row
kept with its inputs and reasons, and the score announced on attribution.health.v1 when it
differs from the last one announced (the first time too), so onboarding's programme year
reads health without asking attribution."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from decimal import Decimal

from services.attribution import health_repository as store
from services.attribution import views
from services.attribution.domain.config import AttributionConfig
from services.attribution.domain.health import health_score
from services.attribution.health_repository import ScoredDay
from shared.db import Pool
from shared.events.attribution import PartnerHealthScored
from shared.name_ids import NameIds
from shared.outbox import Outbox, OutgoingEvent
from shared.topics import PARTNER_HEALTH

log = logging.getLogger(__name__)
HEALTH_IDS = NameIds(uuid.UUID("6b0d6f0e-3c55-4b8e-9a61-2f4f1c0e7d21"))


async def score_partners(
    pool: Pool,
    outbox: Outbox,
    config: AttributionConfig,
    as_of: datetime,
    partner_ids: list[str] | None = None,
) -> dict[str, Decimal]:
    """Score every partner in the programme (or those named) as of `as_of`'s day, each in its
    own transaction (one partner's failure blocks no other). Returns the scores announced."""
    day = as_of.date()
    async with pool.acquire() as conn:
        ids = partner_ids if partner_ids is not None else await store.partners_in_programme(conn)
    announced: dict[str, Decimal] = {}
    for partner_id in ids:
        try:
            async with pool.acquire() as conn, conn.transaction():
                inputs = await views.health_inputs(conn, config, partner_id, day)
                score = health_score(config.health, inputs)
                last = (await store.last_announced(conn, [partner_id], day)).get(partner_id)
                announce = last is None or last != score.score
                scored = ScoredDay(
                    partner_id, day, inputs, score, config.version, as_of, published=announce
                )
                await store.save_scores(conn, [scored])
                if announce:
                    await outbox.publish_many(conn, [_announcement(scored, last)])
                    announced[partner_id] = score.score
        except Exception:
            log.exception("health scoring failed", extra={"partner_id": partner_id})
    return announced


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
    # One id per partner, day and move: two instances scoring the same day at once announce
    # the same move once.
    event_id = HEALTH_IDS.uuid(f"{scored.partner_id}/{scored.day}/{previous}->{score.score}")
    return OutgoingEvent(PARTNER_HEALTH, payload, scored.partner_id, event_id=event_id)
