"""The ids deals gives what a CRM delivers (real Postgres): a change's event and its item's raw
copy are named by what the source sent and begin with its source time, so deals' outbox and
inbox keys grow at their right edge; and a change recorded by a version before that (ids named
by the source alone, uuid5) is still a duplicate when it is delivered again after an upgrade."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.deals.crm_at_intake import ProjectionAtIntake
from services.deals.crm_ingestion import (
    CRM_EVENT_IDS,
    Delivery,
    Item,
    Outcome,
    raw_event,
    record_items,
)
from shared.db import Pool
from shared.events.crm import CrmDealChanged, CrmSource
from shared.outbox import OutgoingEvent
from shared.topics import CRM_DEALS
from tests.support.deals import crm_projection, deals_outbox, deals_schema
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DELIVERY = Delivery("http", "/crm/salesforce", None)


def change(source_id: str, seconds: float, amount: str) -> CrmDealChanged:
    return CrmDealChanged(
        source=CrmSource.SALESFORCE,
        source_id=source_id,
        source_event_id=uuid.uuid4().hex,
        source_timestamp=T0 + timedelta(seconds=seconds),
        change_type="updated",
        amount=Decimal(amount),
        currency="USD",
    )


def item_of(index: int, changed: CrmDealChanged) -> Item:
    return Item(index, {"event": changed.source_event_id}, (changed,))


async def deliver(pool: Pool, *changes: CrmDealChanged) -> list[Outcome]:
    """The changes as one webhook delivery, an item each, recorded and projected at intake."""
    intake = ProjectionAtIntake(crm_projection(pool).group_id)
    items = [item_of(index, changed) for index, changed in enumerate(changes)]
    async with pool.acquire() as conn, conn.transaction():
        outcomes = await record_items(
            conn, deals_outbox(), CrmSource.SALESFORCE, items, T0, DELIVERY, intake
        )
    return [outcome.outcome for outcome in outcomes]


async def recorded(pool: Pool, topic: str) -> list[Any]:
    return await pool.fetch(
        "SELECT event_id, value FROM outbox WHERE topic = $1 ORDER BY position", topic
    )


def millis(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


async def test_a_change_and_its_raw_copy_are_named_after_the_changes_source_time(
    infra: Infra,
) -> None:
    run = uuid.uuid4().hex[:8]
    # Out of order, as a CRM may send them: each id begins with its own change's time.
    changes = [change(f"a-{run}", 30.5, "1"), change(f"b-{run}", 10.25, "2")]
    async with deals_schema(infra) as (_, pool):
        assert await deliver(pool, *changes) == [Outcome.ACCEPTED] * 2
        events = await recorded(pool, CRM_DEALS.name)
        raws = await recorded(pool, "crm.raw.salesforce.v1")
    expected = [(8, millis(c.source_timestamp)) for c in changes]
    for rows in (events, raws):
        assert [(r["event_id"].version, r["event_id"].int >> 80) for r in rows] == expected


async def test_a_change_recorded_by_an_earlier_version_is_a_duplicate_after_the_upgrade(
    infra: Infra,
) -> None:
    """Recorded as versions before did (the change and its item named by the source alone),
    then delivered again: a duplicate while the outbox holds it (a day), and while the CRM
    projection's inbox does after that (a week); its item is not kept twice meanwhile."""
    run = uuid.uuid4().hex[:8]
    first = change(f"a-{run}", 10, "10")
    earlier_id = CRM_EVENT_IDS.uuid(f"salesforce/{first.source_event_id}")
    async with deals_schema(infra) as (_, pool):
        outbox = deals_outbox()
        async with pool.acquire() as conn, conn.transaction():
            as_before = OutgoingEvent(CRM_DEALS, first, first.deal_key, event_id=earlier_id)
            earlier = await outbox.publish_many(conn, [as_before])
            await ProjectionAtIntake(crm_projection(pool).group_id).apply(conn, outbox, earlier)
            item = item_of(0, first).raw
            copy = raw_event(
                CrmSource.SALESFORCE, item, 0, ("accepted",), (first.deal_key,), DELIVERY, T0, None
            )
            await outbox.publish_many(conn, [copy])
        while_the_outbox_holds_it = await deliver(pool, first)
        kept = [len(await recorded(pool, t)) for t in (CRM_DEALS.name, "crm.raw.salesforce.v1")]
        await pool.execute("DELETE FROM outbox")  # a day later: only the inbox knows it
        while_the_inbox_holds_it = await deliver(pool, first)
        recorded_again = await recorded(pool, CRM_DEALS.name)
        deal = await pool.fetchrow("SELECT amount::text, revision FROM crm_deals")

    assert while_the_outbox_holds_it == while_the_inbox_holds_it == [Outcome.DUPLICATE]
    assert kept == [1, 1]
    assert recorded_again == []
    assert deal is not None
    assert tuple(deal) == ("10.0000", 1)
