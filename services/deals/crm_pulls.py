"""Pulled sources: AWS Partner Central (ACE) opportunities and Microsoft Partner Center
referrals are listed on a schedule from a checkpoint, so they work without a relay.

A run locks the source's checkpoint (one instance pulls a source at a time), then page by
page: fetches the page (the source's own "changed since" filter from the watermark, or the
continuation of a listing under way), reads each record with the source's adapter and, in one
transaction, records the changes on crm.deals.v1 (a record refused by the adapter is kept in
crm_refused, never blocking the others) and moves the checkpoint. A restart resumes from the
last recorded page. The watermark only ever holds the source's own modification times (AWS's
advice: never our clock), and a listing starts on or after it, so the boundary record comes
again and is absorbed as a duplicate."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.deals import crm_repository
from services.deals.adapters import from_aws_ace, from_microsoft_referral
from services.deals.crm_ingestion import (
    Delivery,
    Item,
    Outcome,
    bounded,
    read_item,
    record_items,
)
from services.deals.partner_program_clients import Page
from shared.clock import now
from shared.db import Pool
from shared.events.crm import CrmDealChanged, CrmSource
from shared.outbox import Outbox

Fetch = Callable[[datetime | None, str | None], Awaitable[Page]]
# Each source's adapter, and the field whose time may not lead our clock.
READERS: dict[CrmSource, tuple[Callable[[Any], list[CrmDealChanged]], str]] = {
    CrmSource.AWS_ACE: (from_aws_ace, "opportunity.LastModifiedDate"),
    CrmSource.MICROSOFT: (from_microsoft_referral, "referral.UpdatedDateTime"),
}
# The API each pulled source's items come from (kept with them on the raw topic; the page's
# continuation is their delivery id).
PULLED_FROM = {
    CrmSource.AWS_ACE: "AWSPartnerCentralSelling.ListOpportunities/GetOpportunity",
    CrmSource.MICROSOFT: "Partner Center referrals (DEALS_MICROSOFT_REFERRALS_URL)",
}


@dataclass
class PullRun:
    pages: int = 0
    accepted: int = 0
    duplicate: int = 0
    refused: int = 0
    finished: bool = False  # the listing reached its end (the watermark moved)

    def __bool__(self) -> bool:
        return bool(self.accepted or self.refused)


async def pull(
    pool: Pool, outbox: Outbox, source: CrmSource, fetch: Fetch, max_pages: int
) -> PullRun:
    """Pull up to `max_pages` pages of `source` from its checkpoint, a transaction each (a
    failure keeps the pages recorded before it). A rate limit or an outage ends the run; the
    next run goes on from the checkpoint."""
    run = PullRun()
    while run.pages < max_pages and not run.finished:
        await _pull_page(pool, outbox, source, fetch, run)
    return run


async def _pull_page(
    pool: Pool, outbox: Outbox, source: CrmSource, fetch: Fetch, run: PullRun
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        # Locked while the page is fetched and recorded: another instance waits, then goes on
        # from the checkpoint this one leaves.
        checkpoint = dict(await crm_repository.lock_checkpoint(conn, source.value, now()))
        start = (
            checkpoint["window_start"] if checkpoint["continuation"] else checkpoint["watermark"]
        )
        page = await fetch(start, checkpoint["continuation"])
        adapter, timed = READERS[source]
        read = bounded(adapter, now(), timed)
        items = [read_item(index, record, read) for index, record in enumerate(page.records)]
        delivery = Delivery("pull", PULLED_FROM[source], checkpoint["continuation"])
        outcomes = await record_items(conn, outbox, source, items, now(), delivery)
        checkpoint = _moved(checkpoint, start, page, items)
        await crm_repository.store_checkpoint(
            conn,
            source.value,
            watermark=checkpoint["watermark"],
            window_start=checkpoint["window_start"],
            continuation=checkpoint["continuation"],
            seen_max=checkpoint["seen_max"],
            at=now(),
        )
    run.pages += 1
    run.accepted += sum(o.outcome is Outcome.ACCEPTED for o in outcomes)
    run.duplicate += sum(o.outcome is Outcome.DUPLICATE for o in outcomes)
    run.refused += sum(o.outcome is Outcome.REFUSED for o in outcomes)
    run.finished = checkpoint["continuation"] is None


def _moved(
    checkpoint: dict[str, Any], start: datetime | None, page: Page, items: list[Item]
) -> dict[str, Any]:
    """The checkpoint after a page: the listing goes on from its continuation, or, at its end,
    the watermark moves to the newest modification time the source reported."""
    times = [change.source_timestamp for item in items for change in item.changes]
    seen = max([t for t in (checkpoint["seen_max"], *times) if t is not None], default=None)
    if page.continuation:
        return {
            **checkpoint,
            "window_start": start,
            "continuation": page.continuation,
            "seen_max": seen,
        }
    watermark = max([t for t in (checkpoint["watermark"], seen) if t is not None], default=None)
    return {
        **checkpoint,
        "watermark": watermark,
        "window_start": None,
        "continuation": None,
        "seen_max": None,
    }
