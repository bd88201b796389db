"""The deals service's periodic work."""

from __future__ import annotations

from services.deals.expiry import ExpiryRun, run_expiry
from services.deals.policy import PolicyStore
from shared.clock import now
from shared.service import Platform


async def expire_registrations(platform: Platform) -> ExpiryRun:
    """Warn partners whose protection window ends soon and expire the registrations past it."""
    store = platform.provisions.get(PolicyStore)
    async with platform.pool.acquire() as conn:
        policy = await store.in_force(conn, now())
    return await run_expiry(platform.pool, platform.outbox, policy, now())
