"""The deals service's periodic work."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.deals import crm_repository
from services.deals.crm_clients import HubSpotClient, SalesforceClient
from services.deals.crm_pulls import PullRun, pull
from services.deals.crm_reconcile import (
    DriftGauge,
    Reconciler,
    Report,
    hubspot_reconciler,
    latest_reports,
    reconcile_due,
    salesforce_reconciler,
)
from services.deals.crm_repository import Purged
from services.deals.crm_resync import (
    ResyncRun,
    ace_resyncer,
    hubspot_resyncer,
    microsoft_resyncer,
    run_resyncs,
    salesforce_resyncer,
)
from services.deals.crm_writeback import WriteBackRun, run_write_backs
from services.deals.expiry import ExpiryRun, run_expiry
from services.deals.partner_program_clients import AceClient, MicrosoftReferralsClient
from services.deals.policy import PolicyStore
from services.deals.review_sla import ReviewRun, run_review_sla
from services.deals.settings import DealsSettings
from shared.clock import now
from shared.db import Pool
from shared.events.crm import CrmSource
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


async def resync_crm_records(platform: Platform) -> ResyncRun:
    """Fetch the records gaps, associations, merges, Partner Central and Partner Center events
    stand for; record their current state."""
    settings = platform.provisions.get(DealsSettings)
    resyncers = []
    if settings.salesforce_rest:
        client = SalesforceClient.from_settings(settings)
        resyncers.append(salesforce_resyncer(client, settings.salesforce_org))
    if settings.hubspot_tokens:
        hubspot = HubSpotClient.from_settings(settings)
        resyncers.append(hubspot_resyncer(hubspot, settings.hubspot_stages))
    if settings.ace_pull:
        resyncers.append(ace_resyncer(AceClient.from_settings(settings)))
    if settings.microsoft_pull:
        resyncers.append(microsoft_resyncer(MicrosoftReferralsClient.from_settings(settings)))
    return await run_resyncs(platform.pool, platform.outbox, resyncers, settings.resync_batch_size)


async def write_back_to_crms(platform: Platform) -> WriteBackRun:
    """Send the due write-backs, each on its own (services/deals/crm_writeback.py)."""
    settings = platform.provisions.get(DealsSettings)
    return await run_write_backs(
        platform.pool, platform.outbox, settings, settings.writeback_batch_size
    )


async def pull_aws_ace(platform: Platform) -> PullRun:
    """List the ACE opportunities changed since the checkpoint and record them."""
    settings = platform.provisions.get(DealsSettings)
    client = AceClient.from_settings(settings)
    return await pull(
        platform.pool, platform.outbox, CrmSource.AWS_ACE, client.page, settings.pull_max_pages
    )


async def pull_microsoft_referrals(platform: Platform) -> PullRun:
    """List the Partner Center referrals updated since the checkpoint and record them."""
    settings = platform.provisions.get(DealsSettings)
    client = MicrosoftReferralsClient.from_settings(settings)
    return await pull(
        platform.pool, platform.outbox, CrmSource.MICROSOFT, client.page, settings.pull_max_pages
    )


def reconcilers(settings: DealsSettings) -> dict[str, Reconciler]:
    """The CRMs whose API is configured, by source name."""
    found = {}
    if settings.salesforce_rest:
        client = SalesforceClient.from_settings(settings)
        found["salesforce"] = salesforce_reconciler(client, settings.salesforce_org)
    if settings.hubspot_tokens:
        hubspot = HubSpotClient.from_settings(settings)
        found["hubspot"] = hubspot_reconciler(hubspot, settings.hubspot_stages)
    return found


async def reconcile_crms(platform: Platform) -> list[Report]:
    """Reconcile each CRM whose latest report is older than DEALS_RECONCILE_EVERY_SECONDS, then
    show every source's latest report on this instance's drift gauge."""
    settings = platform.provisions.get(DealsSettings)
    every = timedelta(seconds=settings.reconcile_every_seconds)
    window = timedelta(hours=settings.reconcile_window_hours)
    found = reconcilers(settings)
    reports = await reconcile_due(platform.pool, list(found.values()), every, window)
    gauge = platform.provisions.get(DriftGauge)
    for source in found:
        for report in await latest_reports(platform.pool, source, 1):
            gauge.show(report)
    return reports


async def purge_crm_bookkeeping(platform: Platform) -> Purged:
    """Delete refused items, finished resyncs and reconciliation reports older than
    DEALS_CRM_RETENTION_DAYS, a batch of each per transaction until none is left."""
    settings = platform.provisions.get(DealsSettings)
    return await purge(
        platform.pool,
        now() - timedelta(days=settings.crm_retention_days),
        settings.crm_retention_batch_size,
    )


async def purge(pool: Pool, before: datetime, batch_size: int) -> Purged:
    total = Purged(0, 0, 0)
    while True:
        async with pool.acquire() as conn, conn.transaction():
            batch = await crm_repository.purge_bookkeeping(conn, before, batch_size)
        total = Purged(
            total.refused + batch.refused,
            total.resyncs + batch.resyncs,
            total.reconciliations + batch.reconciliations,
        )
        if max(batch.refused, batch.resyncs, batch.reconciliations) < batch_size:
            return total
