"""Resync: the records a gap or overflow event (Salesforce), an association change or a merge
(HubSpot), a Partner Central event naming an opportunity (AWS ACE) or a Partner Center event
naming a referral (Microsoft) stands for are fetched from the CRM as they are now and recorded
on crm.deals.v1 as snapshots, which the projection merges with the same rules as any change (a
field changed later than the snapshot keeps its newer value).

The requests wait in `crm_resyncs` (durable: a restart resumes them); each run leases the due
ones, fetches them outside any transaction, and records each record's snapshot and marks its
request done in one transaction. A CRM that is down is retried with backoff; a request limit
pauses every leased request for as long as the CRM asks; a request the CRM refuses for good
(no such record) is kept in crm_refused with its answer and not asked again."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.deals import crm_repository
from services.deals.adapters import AdapterError, from_aws_ace, from_microsoft_referral
from services.deals.adapters.common import NO_CUSTOM_STAGES
from services.deals.adapters.hubspot import archived_deal, from_hubspot_deal
from services.deals.adapters.salesforce import (
    ACCOUNT_RECORD,
    MULTI_CURRENCY_ORG,
    SalesforceOrg,
    deleted_record,
    from_salesforce_record,
)
from services.deals.crm_clients import (
    CrmRefused,
    CrmUnavailable,
    HubSpotClient,
    RateLimited,
    SalesforceClient,
    backoff,
    outlasts_a_call,
)
from services.deals.crm_ingestion import (
    Delivery,
    bounded,
    event_id,
    not_ahead,
    not_recorded_earlier,
    raw_event,
)
from services.deals.partner_program_clients import AceClient, MicrosoftReferralsClient
from shared.clock import now
from shared.db import Pool
from shared.errors import Unprocessable
from shared.events.crm import CrmDealChanged, CrmSource, DealStage
from shared.outbox import Outbox, OutgoingEvent
from shared.topics import CRM_DEALS

log = logging.getLogger(__name__)
LEASE = timedelta(minutes=2)
# Where a resync's records come from (kept with them on the source's raw topic).
RESYNC_API = {
    CrmSource.SALESFORCE: "Salesforce REST (sobjects, queryAll)",
    CrmSource.HUBSPOT: "HubSpot CRM API (deals with companies and line items)",
    CrmSource.AWS_ACE: "AWSPartnerCentralSelling.GetOpportunity",
    CrmSource.MICROSOFT: "Partner Center Referrals API (GET engagements/referrals/<id>)",
}
# A window starts a little before the overflow's commit: clocks and commit order are not exact.
WINDOW_MARGIN = timedelta(seconds=1)


@dataclass(frozen=True)
class Resyncer:
    """How one CRM's records are fetched (a request row -> what the CRM answered, one item per
    record) and read (request, answer, now -> a snapshot)."""

    source: CrmSource
    fetch: Callable[[Any], Awaitable[list[Any]]]
    read: Callable[[Any, Any, datetime], CrmDealChanged]


@dataclass
class ResyncRun:
    fetched: int = 0  # snapshots read from the CRM
    recorded: int = 0  # of them, new on crm.deals.v1
    refused: int = 0  # snapshots the adapter could not read (kept in crm_refused)
    retried: int = 0  # requests left for later (the CRM down, or its request limit)

    def __bool__(self) -> bool:
        return bool(self.fetched or self.refused or self.retried)


async def run_resyncs(
    pool: Pool,
    outbox: Outbox,
    resyncers: Sequence[Resyncer],
    limit: int,
    lease: timedelta = LEASE,
) -> ResyncRun:
    """Work through the due resync requests of each configured CRM (at most `limit` each)."""
    run = ResyncRun()
    for resyncer in resyncers:
        await _run(pool, outbox, resyncer, limit, run, lease)
    return run


async def _run(
    pool: Pool, outbox: Outbox, resyncer: Resyncer, limit: int, run: ResyncRun, lease: timedelta
) -> None:
    """A fetch after the first is begun only while the lease outlasts the slowest one
    (SLOWEST_CRM_CALLS); the rest are given back, due at once: begun later, the lease could
    lapse mid-batch and another instance fetch and record them too (found in review)."""
    started, source = now(), resyncer.source.value
    async with pool.acquire() as conn, conn.transaction():
        claimed = await crm_repository.claim_resyncs(conn, source, started, started + lease, limit)
    for position, request in enumerate(claimed):
        if position and not outlasts_a_call(started + lease):
            async with pool.acquire() as conn:
                await crm_repository.give_back_resyncs(
                    conn, source, claimed[position:], started + lease
                )
            return
        try:
            answers = await resyncer.fetch(request)
        except RateLimited as limited:
            resume = now() + timedelta(seconds=limited.wait_seconds)
            await _retry(pool, source, claimed[position:], resume, str(limited))
            run.retried += len(claimed) - position
            return
        except CrmUnavailable as error:
            wait = backoff(request["attempts"])
            await _retry(pool, source, [request], now() + wait, str(error))
            run.retried += 1
            continue
        except CrmRefused as error:
            await _refused(pool, source, request, str(error))
            run.refused += 1
            continue
        await _record(pool, outbox, resyncer, request, answers, run)


def salesforce_resyncer(
    client: SalesforceClient, org: SalesforceOrg = MULTI_CURRENCY_ORG
) -> Resyncer:
    async def fetch(request: Any) -> list[Any]:
        """The record's current state (its id alone: gone), the window's records, or for a
        deleted Account that was merged, the surviving Account's Opportunities (its own and
        those the merge re-parented); nothing for one deleted without a merge."""
        record_id: str = request["record_id"]
        records: list[Any] = []
        if record_id.startswith(ACCOUNT_RECORD):
            try:
                master = await client.master_of(record_id.removeprefix(ACCOUNT_RECORD))
            except CrmRefused as error:
                log.warning("Account resync refused: %s", error)
                return []
            if master is not None:
                async for page in client.account_opportunities(master):
                    records += page
            return records
        if record_id != "*":
            record = await client.opportunity(record_id)
            return [record if record is not None else record_id]
        async for page in client.changed_since(request["since"] - WINDOW_MARGIN):
            records += page
        return records

    def read(request: Any, answer: Any, at: datetime) -> CrmDealChanged:
        if isinstance(answer, str):
            return deleted_record(answer, at)
        if request["record_id"].startswith(ACCOUNT_RECORD):
            return from_salesforce_record(answer, at_least=request["since"], org=org)
        return from_salesforce_record(answer, org=org)

    return Resyncer(CrmSource.SALESFORCE, fetch, read)


def hubspot_resyncer(
    client: HubSpotClient, stages: Mapping[str, DealStage] = NO_CUSTOM_STAGES
) -> Resyncer:
    async def fetch(request: Any) -> list[Any]:
        """The deal with its company and line items (None: gone)."""
        portal, _, deal = request["record_id"].partition(":")
        try:
            return [await client.deal(portal, deal)]
        except CrmRefused as error:  # no token for the portal: wait for one to be configured
            raise CrmUnavailable(str(error)) from error

    def read(request: Any, answer: Any, at: datetime) -> CrmDealChanged:
        portal, _, deal = request["record_id"].partition(":")
        if answer is None:
            return archived_deal(portal, deal, at)
        found, company, items = answer
        return from_hubspot_deal(
            portal, found, company, items, at_least=request["since"], stages=stages
        )

    return Resyncer(CrmSource.HUBSPOT, fetch, read)


def ace_resyncer(client: AceClient) -> Resyncer:
    """An opportunity a Partner Central event named, as GetOpportunity answers it now (one AWS
    does not have is refused for good, CrmRefused)."""

    async def fetch(request: Any) -> list[Any]:
        return [await client.opportunity(request["record_id"])]

    def read(request: Any, answer: Any, at: datetime) -> CrmDealChanged:
        [change] = from_aws_ace(answer)
        return asked_for(request, change, "GetOpportunity")

    return Resyncer(CrmSource.AWS_ACE, fetch, read)


def asked_for(request: Any, change: CrmDealChanged, api: str) -> CrmDealChanged:
    """The record a fetch answered is the one it asked for: another (a proxy's cache, an API
    answering a redirect's target) recorded under its own id would change a deal no event
    named, and leave the one asked for unfetched, marked done."""
    if change.source_id != request["record_id"]:
        raise AdapterError(
            f"{api} answered {change.source_id!r} when asked for {request['record_id']!r}"
        )
    return change


def microsoft_resyncer(client: MicrosoftReferralsClient) -> Resyncer:
    """A referral a Partner Center event named, as the Referrals API answers it now, read as a
    delivered referral is (the same adapter, its `UpdatedDateTime` bounded alike); one Partner
    Center does not have is refused for good (CrmRefused)."""

    async def fetch(request: Any) -> list[Any]:
        return [await client.referral(request["record_id"])]

    def read(request: Any, answer: Any, at: datetime) -> CrmDealChanged:
        [change] = bounded(from_microsoft_referral, at, "referral.UpdatedDateTime")(answer)
        return asked_for(request, change, "the Referrals API")

    return Resyncer(CrmSource.MICROSOFT, fetch, read)


async def _record(
    pool: Pool,
    outbox: Outbox,
    resyncer: Resyncer,
    request: Any,
    answers: list[Any],
    run: ResyncRun,
) -> None:
    at, source = now(), resyncer.source.value
    changes: list[CrmDealChanged] = []
    read: list[tuple[int, Any, CrmDealChanged]] = []  # what each readable answer became
    refused: list[tuple[int, str, bytes]] = []
    for index, answer in enumerate(answers):
        try:
            change = resyncer.read(request, answer, at)
            # Held to the bound on a source's time as a delivered change is (found in review:
            # a fetched record stamped 2100 made every later change of its deal stale).
            not_ahead(change.source_timestamp, at, "the fetched record's modification time")
            changes.append(change)
            read.append((index, answer, change))
        except (AdapterError, ValueError, Unprocessable) as error:  # Unprocessable: out of bounds
            refused.append((index, f"resync: {error}", repr(answer)[:10_000].encode()))
    events = [OutgoingEvent(CRM_DEALS, c, c.deal_key, event_id=event_id(c)) for c in changes]
    async with pool.acquire() as conn, conn.transaction():
        events = await not_recorded_earlier(conn, outbox, events)
        recorded = await outbox.publish_many(conn, events)
        raws = _raw(resyncer, request, read, recorded, at)
        await outbox.publish_many(conn, await not_recorded_earlier(conn, outbox, raws))
        if refused:
            await crm_repository.record_refused(conn, source, at, refused)
        await crm_repository.finish_resync(
            conn, source, request["record_id"], request["requested_at"], at
        )
    run.fetched += len(answers)
    run.recorded += len(recorded)
    run.refused += len(refused)


def _raw(
    resyncer: Resyncer,
    request: Any,
    read: list[tuple[int, Any, CrmDealChanged]],
    recorded: list[Any],
    at: datetime,
) -> list[OutgoingEvent]:
    """What the CRM's API answered, record by record, for the source's raw topic (a record
    it no longer has is named by its id alone; one that could not be read is in
    crm_refused)."""
    fresh = {envelope.id for envelope in recorded}
    delivery = Delivery("resync", RESYNC_API[resyncer.source], request["record_id"])
    return [
        raw_event(
            resyncer.source,
            list(answer) if isinstance(answer, tuple) else answer,
            index,
            ("accepted" if event_id(change) in fresh else "duplicate",),
            (change.deal_key,),
            delivery,
            at,
            change.source_timestamp,
        )
        for index, answer, change in read
    ]


async def _refused(pool: Pool, source: str, request: Any, error: str) -> None:
    """The CRM refused the request for good: kept with its answer for operators, and done."""
    log.warning("CRM resync refused: %s", error, extra={"resync_error": error})
    record_id = request["record_id"]
    async with pool.acquire() as conn, conn.transaction():
        at = now()
        reason = f"resync of {record_id}: {error}"
        await crm_repository.record_refused(conn, source, at, [(0, reason, record_id.encode())])
        await crm_repository.finish_resync(conn, source, record_id, request["requested_at"], at)


async def _retry(
    pool: Pool, source: str, requests: list[Any], due_at: datetime, error: str
) -> None:
    log.warning("CRM resync postponed: %s", error, extra={"resync_error": error})
    async with pool.acquire() as conn, conn.transaction():
        for request in requests:
            await crm_repository.retry_resync(conn, source, request["record_id"], due_at, error)
