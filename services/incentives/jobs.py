"""Periodic work of incentives."""

from __future__ import annotations

from services.incentives import mdf_expiry, mdf_preapprovals
from services.incentives.domain.programs import IncentivePrograms
from shared.service import Platform


async def expire_mdf_lots(platform: Platform) -> int:
    """Expire the unused MDF past its expiry. Returns how many lots expired."""
    async with platform.pool.acquire() as conn:
        return await mdf_expiry.expire_due(
            conn, platform.outbox, platform.provisions.get(IncentivePrograms)
        )


async def expire_preapprovals(platform: Platform) -> int:
    """Release what MDF pre-approvals past their claim window still hold. Returns how many
    expired."""
    async with platform.pool.acquire() as conn:
        return await mdf_preapprovals.expire_due(conn, platform.outbox)
