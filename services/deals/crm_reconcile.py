"""Periodic reconciliation: a window of each CRM's records (those changed since `since`) is
fetched through the CRM's API as it is now, compared with the projection by the merge rules
(services/deals/domain/reconcile.py), and what drifted (missing here, stale here, deleted
upstream) is reported and queued for a resync, which repairs it through the same path as a gap.

One run of a source at a time (a transaction-scoped advisory lock); the report is kept in
`crm_reconciliations` with the run, and each instance's `pollinate_crm_drift_records` gauge
shows the latest report of each source."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from services.deals import crm_repository
from services.deals.adapters import AdapterError
from services.deals.adapters.common import NO_CUSTOM_STAGES
from services.deals.adapters.hubspot import from_hubspot_deal
from services.deals.adapters.salesforce import (
    MULTI_CURRENCY_ORG,
    SalesforceOrg,
    from_salesforce_record,
)
from services.deals.crm_clients import CrmRefused, CrmUnavailable, HubSpotClient, SalesforceClient
from services.deals.domain.reconcile import Drift, DriftKind, Tally, drift_of, tally
from shared.clock import now
from shared.db import Connection, Pool, advisory_key, from_row
from shared.errors import Conflict
from shared.events.crm import CrmDealChanged, CrmSource, DealStage

log = logging.getLogger(__name__)
MAX_RECORDS = 10_000  # a window larger than this is checked in part (the report says so)
MAX_LISTED = 500  # drifted records listed in one report (all are counted and resynced)

SnapshotPage = list[tuple[Any, Callable[[], CrmDealChanged]]]
Snapshots = Callable[[datetime], AsyncIterator[SnapshotPage]]


@dataclass(frozen=True)
class Reconciler:
    """How one CRM's window is fetched: pages of (record as the CRM sent it, how to read it)."""

    source: CrmSource
    window: Snapshots


def salesforce_reconciler(
    client: SalesforceClient, org: SalesforceOrg = MULTI_CURRENCY_ORG
) -> Reconciler:
    async def window(since: datetime) -> AsyncIterator[SnapshotPage]:
        async for page in client.changed_since(since):
            yield [(r, partial(from_salesforce_record, r, org=org)) for r in page]

    return Reconciler(CrmSource.SALESFORCE, window)


def hubspot_reconciler(
    client: HubSpotClient, stages: Mapping[str, DealStage] = NO_CUSTOM_STAGES
) -> Reconciler:
    async def window(since: datetime) -> AsyncIterator[SnapshotPage]:
        for portal in sorted(client.tokens):
            async for page in client.changed_since(portal, since):
                # The search answers deals without associations: their own properties are
                # compared (company and line items come with a resync).
                read = partial(from_hubspot_deal, portal, stages=stages, associations=False)
                yield [(d, partial(read, d, None, [])) for d in page]

    return Reconciler(CrmSource.HUBSPOT, window)


@dataclass(frozen=True)
class Report(Tally):
    """A run's tally, with the run: when, over which window, what it queued and listed."""

    id: int
    source: str
    started_at: datetime
    finished_at: datetime
    since: datetime
    resyncs_queued: int
    drift: list[dict[str, Any]]
    unreadable: list[str]
    error: str | None

    @classmethod
    def of_row(cls, row: Any) -> Report:
        stored = json.loads(row["drift"])  # one JSON column holds both lists
        return from_row(cls, row, drift=stored["records"], unreadable=stored["unreadable"])


async def reconcile(pool: Pool, reconciler: Reconciler, window: timedelta) -> Report:
    """Reconcile the source's records changed in the last `window` now: 409 when a run of
    the source is under way elsewhere."""
    started = now()
    since = started - window
    async with pool.acquire() as conn, conn.transaction():
        source = reconciler.source.value
        if not await conn.fetchval(
            "SELECT pg_try_advisory_xact_lock($1)", advisory_key("deals", "reconcile", source)
        ):
            raise Conflict(f"a reconciliation of {source} is under way")
        snapshots, unreadable, error = await _fetch(reconciler, since)
        drifts = await _compare(conn, snapshots)
        records = sorted({d.deal_key.split(":", 1)[1] for d in drifts})
        if records:
            await crm_repository.schedule_resyncs(
                conn, source, [(r, None) for r in records], "reconciliation found drift", now()
            )
        return await _store(conn, source, started, since, snapshots, drifts, unreadable, error)


async def _fetch(
    reconciler: Reconciler, since: datetime
) -> tuple[list[CrmDealChanged], list[str], str | None]:
    """The window's snapshots as far as the CRM answered (an error ends the fetch: what was
    read is still compared, and the report says what stopped it)."""
    snapshots: list[CrmDealChanged] = []
    unreadable: list[str] = []
    try:
        async for page in reconciler.window(since):
            for raw, read in page:
                try:
                    snapshots.append(read())
                except (AdapterError, ValueError) as reason:
                    unreadable.append(f"{str(raw)[:64]}: {str(reason)[:200]}")
            if len(snapshots) >= MAX_RECORDS:
                return snapshots, unreadable, f"window cut at {MAX_RECORDS} records"
    except (CrmUnavailable, CrmRefused) as error:
        log.warning("reconciliation of %s cut short: %s", reconciler.source.value, error)
        return snapshots, unreadable, str(error)[:500]
    return snapshots, unreadable, None


async def _compare(conn: Connection, snapshots: Sequence[CrmDealChanged]) -> list[Drift]:
    # The newest snapshot of a record (a window may list one twice across pages).
    newest = {s.deal_key: s for s in sorted(snapshots, key=lambda s: s.source_timestamp)}
    stored = await crm_repository.projected(conn, sorted(newest))
    drifts = []
    for key, snapshot in sorted(newest.items()):
        row = stored.get(key)
        stamps = json.loads(row["field_timestamps"]) if row else {}
        drift = drift_of(snapshot, dict(row) if row else None, stamps)
        if drift is not None:
            drifts.append(drift)
    return drifts


async def _store(
    conn: Connection,
    source: str,
    started: datetime,
    since: datetime,
    snapshots: Sequence[CrmDealChanged],
    drifts: Sequence[Drift],
    unreadable: list[str],
    error: str | None,
) -> Report:
    counts = tally(len({s.deal_key for s in snapshots}), drifts)
    listed = [
        {"deal_key": d.deal_key, "kind": d.kind.value, "fields": list(d.fields)}
        for d in drifts[:MAX_LISTED]
    ]
    row = await crm_repository.store_reconciliation(
        conn,
        source=source,
        started_at=started,
        finished_at=now(),
        since=since,
        counts=asdict(counts),
        resyncs=len(drifts),
        drift=json.dumps({"records": listed, "unreadable": unreadable[:MAX_LISTED]}),
        error=error,
    )
    return Report.of_row(row)


class DriftGauge:
    """`pollinate_crm_drift_records{source, kind}`: the latest report's counts per source."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.gauge = Gauge(
            "pollinate_crm_drift_records",
            "records the latest reconciliation found drifted from the CRM, by source and kind",
            ["source", "kind"],
            registry=registry,
        )

    def show(self, report: Report) -> None:
        for kind in DriftKind:
            self.gauge.labels(report.source, kind.value).set(getattr(report, kind.value))


async def reconcile_due(
    pool: Pool, reconcilers: Sequence[Reconciler], every: timedelta, window: timedelta
) -> list[Report]:
    """The periodic job: each source whose latest report is older than `every` (whichever
    instance comes first; the others find it under way or done) is reconciled."""
    reports = []
    for reconciler in reconcilers:
        latest = await latest_reports(pool, reconciler.source.value, 1)
        if latest and latest[0].started_at > now() - every:
            continue
        try:
            reports.append(await reconcile(pool, reconciler, window))
        except Conflict:
            continue
    return reports


async def latest_reports(pool: Pool, source: str | None, limit: int) -> list[Report]:
    async with pool.acquire() as conn:
        rows = await crm_repository.reconciliations(conn, source, limit)
    return [Report.of_row(row) for row in rows]
