"""Periodic work of programme: KPI snapshots for dashboards."""

from __future__ import annotations

from services.programme import snapshots
from shared.clock import now
from shared.service import Platform


async def publish_snapshot(platform: Platform) -> bool:
    """The current quarter's KPIs on programme.kpis.v1 (and the previous one's early in a
    quarter), if any figure changed."""
    async with platform.pool.acquire() as conn:
        return await snapshots.publish_changed_quarters(conn, platform.outbox, now())
