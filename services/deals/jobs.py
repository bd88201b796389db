"""The deals service's periodic work."""

from __future__ import annotations

from services.deals.expiry import ExpiryRun, run_expiry
from services.deals.policy import PolicyStore
from services.deals.review_sla import ReviewRun, run_review_sla
from shared.clock import now
from shared.service import Platform


async def expire_registrations(platform: Platform) -> tuple[ExpiryRun, ReviewRun] | None:
    """Warn partners whose protection window ends soon and expire the registrations past it;
    remind, escalate and decide reviews by their deadlines (under the policy in force)."""
    store = platform.provisions.get(PolicyStore)
    async with platform.pool.acquire() as conn:
        policy = await store.in_force(conn, now())
    expiry = await run_expiry(platform.pool, platform.outbox, policy, now())
    reviews = await run_review_sla(platform.pool, platform.outbox, policy, now())
    return (expiry, reviews) if expiry or reviews else None
