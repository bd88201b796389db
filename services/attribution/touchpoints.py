"""Touchpoints reported by partner apps and CRMs (`POST /touchpoints`): recorded once per
(source, external_id), and on a deal already won they settle its credits at once (a correction
inside the lock period), under the deal's lock so a touchpoint reported while the deal closes
is never missed."""

from __future__ import annotations

from dataclasses import dataclass

from services.attribution import repository
from services.attribution.crediting import DealBook
from services.attribution.domain.config import AttributionConfig
from services.attribution.domain.corrections import Settlement
from services.attribution.domain.models import CannotAttribute
from services.attribution.domain.touchpoints import ReportedTouchpoint
from shared.db import Pool
from shared.errors import Conflict
from shared.outbox import Outbox


class DealCannotBeAttributed(Conflict):
    def __init__(self, deal_key: str, error: CannotAttribute) -> None:
        super().__init__(f"deal {deal_key} cannot be attributed: {error}")


@dataclass(frozen=True)
class TouchpointReport:
    touchpoint_id: str
    created: bool  # False: the same touchpoint was reported before
    settlement: Settlement | None  # None: a repeat, or the deal is not known yet


async def report_touchpoint(
    pool: Pool, outbox: Outbox, config: AttributionConfig, touchpoint: ReportedTouchpoint
) -> TouchpointReport:
    """Record the touchpoint and settle its deal again, in one transaction (a deal that cannot
    be attributed rolls the touchpoint back too)."""
    async with pool.acquire() as conn, conn.transaction():
        await repository.lock_deal(conn, touchpoint.deal_key)
        stored = await repository.stored_touchpoint(conn, touchpoint.touchpoint_id)
        if stored is not None and touchpoint.repeats(stored):
            return TouchpointReport(touchpoint.touchpoint_id, created=False, settlement=None)
        await repository.insert_reported_touchpoint(conn, touchpoint)
        book = await DealBook.load(conn, [touchpoint.deal_key])
        try:
            settlement = book.recalculate(
                config,
                touchpoint.deal_key,
                at=touchpoint.received_at,
                trigger=touchpoint.describe(),
                ingested_at=touchpoint.received_at,
            )
        except CannotAttribute as error:
            raise DealCannotBeAttributed(touchpoint.deal_key, error) from error
        await book.save(conn)
        await outbox.publish_many(conn, book.events)
    return TouchpointReport(touchpoint.touchpoint_id, created=True, settlement=settlement)
