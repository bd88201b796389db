"""The deals service's periodic work."""

from __future__ import annotations

from services.deals.domain.rules import RulesOfEngagement
from services.deals.expiry import ExpiryRun, run_expiry
from shared.clock import now
from shared.service import Platform


async def expire_registrations(platform: Platform) -> ExpiryRun:
    """Warn partners whose protection window ends soon and expire the registrations past it."""
    policy = platform.provisions.get(RulesOfEngagement)
    return await run_expiry(platform.pool, platform.outbox, policy, now())
