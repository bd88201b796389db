"""Periodic work of incentives."""

from __future__ import annotations

from services.incentives import mdf_expiry
from services.incentives.domain.programs import IncentivePrograms
from shared.service import Platform


async def expire_mdf_lots(platform: Platform) -> int:
    """Expire the unused MDF past its expiry. Returns how many lots expired."""
    async with platform.pool.acquire() as conn:
        return await mdf_expiry.expire_due(
            conn, platform.outbox, platform.provisions.get(IncentivePrograms)
        )
