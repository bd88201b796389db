"""Touchpoints reported by partner apps and CRMs (`POST /touchpoints`): recorded once per
(source, external_id) and at most one per partner, deal and kind, never counted dated before
the deal was created (a partner not linked to the deal is told so by no refusal: its approval
checks it), a campaign one only through a campaign programme announced that its partner ran
then (domain/campaigns.py); on a deal already won they settle its credits at once (a correction inside the lock
period), under the deal's lock so a touchpoint reported while the deal closes is never missed.

A partner's touchpoint counts only on a deal the partner is linked to (an approved registration,
or the CRM names it through a confirmed link); otherwise it waits, taking no credit, until a
channel manager approves it (`approve_touchpoint`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from services.attribution import repository
from services.attribution.crediting import DealBook
from services.attribution.domain.campaigns import check_touch_campaign
from services.attribution.domain.config import AttributionConfig
from services.attribution.domain.corrections import Settlement
from services.attribution.domain.models import CannotAttribute
from services.attribution.domain.touchpoints import (
    ReportedTouchpoint,
    TouchpointAlreadyReported,
    check_not_before_deal,
)
from shared.audit import record_action
from shared.campaigns import known_campaign
from shared.clock import now
from shared.db import Connection, Pool
from shared.errors import Conflict, NotFound
from shared.identity import Caller
from shared.outbox import Outbox


class DealCannotBeAttributed(Conflict):
    def __init__(self, deal_key: str, error: CannotAttribute) -> None:
        super().__init__(f"deal {deal_key} cannot be attributed: {error}")


@dataclass(frozen=True)
class TouchpointReport:
    touchpoint_id: str
    created: bool  # False: the same touchpoint was reported (or approved) before
    counted: bool  # False: it takes no credit (it waits for a channel manager, or is outside
    # its won deal's window: after the win, say)
    settlement: Settlement | None  # None: a repeat, or the deal is not known yet
    # The partners linked to the deal (an approved registration, the CRM's confirmed link):
    # the settlement is theirs to see; to any other partner the deal is as if unknown.
    linked: frozenset[str] = frozenset()


async def report_touchpoint(
    pool: Pool,
    outbox: Outbox,
    config: AttributionConfig,
    touchpoint: ReportedTouchpoint,
    acting: Caller,
) -> TouchpointReport:
    """Record the touchpoint and settle its deal again, in one transaction (a deal that cannot
    be attributed rolls the touchpoint back too)."""
    async with pool.acquire() as conn, conn.transaction():
        # The same external id on two deals at once: the second waits here, then finds the
        # first (409) instead of meeting its row in the index (a 500).
        await repository.lock_touchpoint(conn, touchpoint.touchpoint_id)
        await repository.lock_deal(conn, touchpoint.deal_key)
        stored = await repository.stored_touchpoint(conn, touchpoint.touchpoint_id)
        if stored is not None and touchpoint.repeats(stored):
            book = await DealBook.load(conn, [touchpoint.deal_key])
            counted = book.counts(touchpoint.touchpoint_id)
            return TouchpointReport(touchpoint.touchpoint_id, False, counted, None)
        kind = touchpoint.kind.value
        if await repository.reported_of_kind(
            conn, touchpoint.deal_key, touchpoint.partner_id, kind
        ):
            raise TouchpointAlreadyReported(kind)
        created_at = await repository.deal_created_at(conn, touchpoint.deal_key)
        # When the deal was made is a channel manager's to be told, not a partner's that may
        # know nothing else of it. A partner not linked to the deal is not even refused (the
        # refusal told it the deal existed, and, moving `occurred_at`, when it was made): its
        # touchpoint waits for a manager, whose approval checks it.
        if acting.partner_id is None:
            check_not_before_deal(touchpoint.occurred_at, created_at)
        elif touchpoint.partner_id in await _linked_partners(conn, touchpoint.deal_key):
            check_not_before_deal(touchpoint.occurred_at, created_at, name_it=False)
        if touchpoint.campaign_id is not None:
            named = await known_campaign(conn, touchpoint.campaign_id)
            check_touch_campaign(
                touchpoint.campaign_id, named, touchpoint.partner_id, touchpoint.occurred_at
            )
        await repository.insert_reported_touchpoint(conn, touchpoint)
        await record_action(conn, acting, "touchpoint.report", touchpoint.touchpoint_id)
        return await _settle(
            conn,
            outbox,
            config,
            touchpoint.touchpoint_id,
            touchpoint.deal_key,
            trigger=touchpoint.describe(),
            at=touchpoint.received_at,
        )


async def approve_touchpoint(
    pool: Pool, outbox: Outbox, config: AttributionConfig, touchpoint_id: str, acting: Caller
) -> TouchpointReport:
    """A channel manager approves a reported touchpoint: from now on it counts, and its deal is
    settled again."""
    async with pool.acquire() as conn, conn.transaction():
        deal_key = await _locked_deal_of(conn, touchpoint_id)
        if not await repository.approve_touchpoint(conn, touchpoint_id):
            return TouchpointReport(touchpoint_id, False, True, None)
        # A partner not linked to the deal was not refused a touchpoint before the deal's
        # creation (report_touchpoint): it counts only if it is not.
        stored = await repository.stored_touchpoint(conn, touchpoint_id)
        assert stored is not None  # its deal was read above, under the deal's lock
        check_not_before_deal(stored.occurred_at, await repository.deal_created_at(conn, deal_key))
        await record_action(conn, acting, "touchpoint.approve", touchpoint_id)
        trigger = f"touchpoint {touchpoint_id} approved by a channel manager"
        return await _settle(
            conn, outbox, config, touchpoint_id, deal_key, trigger=trigger, at=now()
        )


async def _linked_partners(conn: Connection, deal_key: str) -> frozenset[str]:
    """The partners linked to the deal (an approved registration, the CRM's confirmed link)."""
    book = await DealBook.load(conn, [deal_key])
    return frozenset(book.linked_partners(deal_key))


async def _locked_deal_of(conn: Connection, touchpoint_id: str) -> str:
    """The deal the reported touchpoint is on, locked: a CRM merge moves touchpoints to the
    surviving deal under both deals' locks, so it is read again once the lock is held (read
    before it, the approval settled the merged deal and left the survivor unsettled)."""
    deal_key = await repository.reported_deal_key(conn, touchpoint_id)
    while deal_key is not None:
        await repository.lock_deal(conn, deal_key)
        on_now = await repository.reported_deal_key(conn, touchpoint_id)
        if on_now == deal_key:
            return deal_key
        deal_key = on_now
    raise NotFound(f"touchpoint {touchpoint_id} not found")


async def _settle(
    conn: Connection,
    outbox: Outbox,
    config: AttributionConfig,
    touchpoint_id: str,
    deal_key: str,
    *,
    trigger: str,
    at: datetime,
) -> TouchpointReport:
    book = await DealBook.load(conn, [deal_key])
    try:
        settlement = book.recalculate(config, deal_key, at=at, trigger=trigger, ingested_at=at)
    except CannotAttribute as error:
        raise DealCannotBeAttributed(deal_key, error) from error
    await book.save(conn)
    await outbox.publish_many(conn, book.events)
    left_out = book.left_out.get(touchpoint_id)
    if left_out is not None and settlement is not None:
        # Linked, but outside the won deal's window (after the win, say): it takes nothing,
        # and the reporter is told why rather than shown an unexplained "credits unchanged".
        explanation = f"{settlement.explanation}; {touchpoint_id} not counted: {left_out}"
        settlement = replace(settlement, explanation=explanation)
    linked = frozenset(book.linked_partners(deal_key))
    reporter = book.touchpoints[touchpoint_id].partner_id
    if settlement is not None and reporter in linked and not book.counts(touchpoint_id):
        # A linked partner's report once the deal was won waits for a manager (it could only
        # move the won deal's credit between its partners).
        explanation = (
            f"{settlement.explanation}; {touchpoint_id} not counted: reported after the deal"
            " was won, it waits for a channel manager's approval"
        )
        settlement = replace(settlement, explanation=explanation)
    counted = book.counts(touchpoint_id) and left_out is None
    return TouchpointReport(touchpoint_id, True, counted, settlement, linked)
