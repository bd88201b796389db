"""Periodic work of attribution: partner health, scored and stored daily (`health_scoring.py`).
Credits need no clock: they become final by the lock period, measured at the time of each
triggering change."""

from __future__ import annotations

from decimal import Decimal

from services.attribution.domain.config import AttributionConfig
from services.attribution.health_scoring import score_partners
from shared.clock import now
from shared.service import Platform


async def score_health(platform: Platform) -> dict[str, Decimal]:
    """Score every partner in the programme as of today; returns the scores announced."""
    config = platform.provisions.get(AttributionConfig)
    return await score_partners(platform.pool, platform.outbox, config, now())
