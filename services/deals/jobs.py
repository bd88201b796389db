"""The deals service's periodic work."""

from __future__ import annotations

from services.deals.crm_clients import SalesforceClient
from services.deals.crm_resync import ResyncRun, run_resyncs
from services.deals.domain.rules import RulesOfEngagement
from services.deals.expiry import ExpiryRun, run_expiry
from services.deals.settings import DealsSettings
from shared.clock import now
from shared.service import Platform


async def expire_registrations(platform: Platform) -> ExpiryRun:
    """Warn partners whose protection window ends soon and expire the registrations past it."""
    policy = platform.provisions.get(RulesOfEngagement)
    return await run_expiry(platform.pool, platform.outbox, policy, now())


async def resync_crm_records(platform: Platform) -> ResyncRun:
    """Fetch the records gap and overflow events stand for, and record their current state."""
    settings = platform.provisions.get(DealsSettings)
    client = SalesforceClient.from_settings(settings)
    return await run_resyncs(platform.pool, platform.outbox, client, settings.resync_batch_size)
