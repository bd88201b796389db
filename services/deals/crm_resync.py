"""Resync: the records a gap or overflow event stands for are fetched from the CRM as they are
now and recorded on crm.deals.v1 as snapshots, which the projection merges with the same rules
as any change (a field changed later than the snapshot keeps its newer value).

The requests wait in `crm_resyncs` (durable: a restart resumes them); each run leases the due
ones, fetches them outside any transaction, and records each record's snapshot and marks its
request done in one transaction. A CRM that is down is retried with backoff; a request limit
pauses every leased request for as long as the CRM asks."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.deals import repository
from services.deals.adapters import AdapterError
from services.deals.adapters.salesforce import deleted_record, from_salesforce_record
from services.deals.crm_clients import CrmUnavailable, RateLimited, SalesforceClient
from services.deals.crm_ingestion import event_id
from shared.clock import now
from shared.db import Pool
from shared.events.crm import CrmDealChanged, CrmSource
from shared.outbox import Outbox, OutgoingEvent
from shared.topics import CRM_DEALS

log = logging.getLogger(__name__)
LEASE = timedelta(minutes=2)
BACKOFF_FIRST, BACKOFF_MAX = timedelta(seconds=5), timedelta(hours=1)
# A window starts a little before the overflow's commit: clocks and commit order are not exact.
WINDOW_MARGIN = timedelta(seconds=1)
SOURCE = CrmSource.SALESFORCE.value


@dataclass
class ResyncRun:
    fetched: int = 0  # snapshots read from the CRM
    recorded: int = 0  # of them, new on crm.deals.v1
    refused: int = 0  # snapshots the adapter could not read (kept in crm_refused)
    retried: int = 0  # requests left for later (the CRM down, or its request limit)

    def __bool__(self) -> bool:
        return bool(self.fetched or self.refused or self.retried)


async def run_resyncs(
    pool: Pool, outbox: Outbox, client: SalesforceClient, limit: int
) -> ResyncRun:
    """Work through the due resync requests (at most `limit`)."""
    started = now()
    async with pool.acquire() as conn, conn.transaction():
        claimed = await repository.claim_resyncs(conn, SOURCE, started, started + LEASE, limit)
    run = ResyncRun()
    for position, request in enumerate(claimed):
        try:
            snapshots = await _fetch(client, request)
        except RateLimited as limited:
            resume = now() + timedelta(seconds=limited.wait_seconds)
            await _retry(pool, claimed[position:], resume, str(limited))
            run.retried += len(claimed) - position
            break
        except CrmUnavailable as error:
            backoff = min(BACKOFF_FIRST * 2 ** (request["attempts"] - 1), BACKOFF_MAX)
            await _retry(pool, [request], now() + backoff, str(error))
            run.retried += 1
            continue
        await _record(pool, outbox, request, snapshots, run)
    return run


async def _fetch(client: SalesforceClient, request: Any) -> list[Any]:
    """The record's current state (or the window's records), as the CRM answered them."""
    if request["record_id"] != "*":
        record = await client.opportunity(request["record_id"])
        return [record if record is not None else request["record_id"]]
    records: list[Any] = []
    async for page in client.changed_since(request["since"] - WINDOW_MARGIN):
        records += page
    return records


async def _record(
    pool: Pool, outbox: Outbox, request: Any, snapshots: list[Any], run: ResyncRun
) -> None:
    at = now()
    changes: list[CrmDealChanged] = []
    refused: list[tuple[int, str, bytes]] = []
    for index, snapshot in enumerate(snapshots):
        try:
            changes.append(
                deleted_record(snapshot, at)
                if isinstance(snapshot, str)
                else from_salesforce_record(snapshot)
            )
        except (AdapterError, ValueError) as error:
            refused.append((index, f"resync: {error}", repr(snapshot)[:10_000].encode()))
    events = [OutgoingEvent(CRM_DEALS, c, c.deal_key, event_id=event_id(c)) for c in changes]
    async with pool.acquire() as conn, conn.transaction():
        recorded = await outbox.publish_many(conn, events)
        if refused:
            await repository.record_refused(conn, SOURCE, at, refused)
        await repository.finish_resync(
            conn, SOURCE, request["record_id"], request["requested_at"], at
        )
    run.fetched += len(snapshots)
    run.recorded += len(recorded)
    run.refused += len(refused)


async def _retry(pool: Pool, requests: list[Any], due_at: datetime, error: str) -> None:
    log.warning("CRM resync postponed: %s", error, extra={"resync_error": error})
    async with pool.acquire() as conn, conn.transaction():
        for request in requests:
            await repository.retry_resync(conn, SOURCE, request["record_id"], due_at, error)
