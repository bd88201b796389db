"""Signals onboarding exchanges with attribution's health score, through events only.

Out: each partner's enablement (training completion, certified people, engagement with the
resource library: `domain/resources.py`) as `partner.enablement_measured.v1`, announced when
its score moves and at least once a day, so attribution's health score counts it.
In: attribution's `partner.health_scored.v1`, kept per partner (the newest day), which the
programme year reads as one of its minimums."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from services.onboarding import enablement_views
from services.onboarding import programme_repository as store
from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.lifecycle import IN_PROGRAM
from shared.db import Connection, Pool
from shared.errors import NotFound
from shared.events.attribution import PartnerHealthScored
from shared.events.programme import PartnerEnablementMeasured
from shared.outbox import Outbox, OutgoingEvent
from shared.topics import PARTNER_PROGRAMME

log = logging.getLogger(__name__)


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


async def announce_enablement(
    pool: Pool,
    outbox: Outbox,
    config: OnboardingConfig,
    as_of: datetime,
    partner_ids: list[str] | None = None,
) -> dict[str, Decimal]:
    """Measure each partner in the programme (or those named) as of `as_of` and announce the
    measurements that moved or were last announced on an earlier day, each partner in its own
    transaction. Returns the scores announced."""
    ids = partner_ids
    if ids is None:
        ids = await store.partners_with_status(pool, {s.value for s in IN_PROGRAM})
    announced: dict[str, Decimal] = {}
    for partner_id in ids:
        try:
            measured = await enablement_views.enablement(pool, config, partner_id, as_of)
            score = Decimal(measured.score)
            async with pool.acquire() as conn, conn.transaction():
                last = await store.lock_enablement_announced(conn, partner_id)
                if last is not None and (
                    last["measured_at"] > as_of  # another instance announced a later one
                    or (last["score"] == score and last["measured_at"].date() >= as_of.date())
                ):
                    continue
                await store.save_enablement_announced(conn, partner_id, score, as_of)
                event = PartnerEnablementMeasured(
                    partner_id=partner_id,
                    measured_at=as_of,
                    people=measured.people,
                    training_completion_rate=_decimal(measured.training_completion_rate),
                    certified_share=_decimal(measured.certified_share),
                    engaged_share=_decimal(measured.engaged_share),
                    downloads=measured.downloads,
                    sandbox_signups=measured.sandbox_signups,
                    window_days=measured.window_days,
                    score=score,
                    reasons=tuple(measured.reasons),
                )
                await outbox.publish_many(
                    conn, [OutgoingEvent(PARTNER_PROGRAMME, event, partner_id)]
                )
                announced[partner_id] = score
        except NotFound:  # a partner named that does not exist: nothing to measure, no error
            log.info("enablement measurement: no partner %s", partner_id)
        except Exception:
            log.exception("enablement measurement failed", extra={"partner_id": partner_id})
    return announced


async def record_health(conn: Connection, events: list[PartnerHealthScored]) -> None:
    """Attribution scored partners' health: keep the newest day of each."""
    await store.record_health(conn, events)
