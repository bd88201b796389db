"""CRM merges through the projection's consumer on a scratch schema (real Kafka records, real
Postgres): the registrations of a merged deal follow the survivor, and when the survivor ends
up held by two registrations one keeps it and the other goes to review, both told."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.deals.adapters import from_hubspot
from services.deals.handlers import on_crm_changes
from shared.consumer import EventConsumer
from shared.consumer import Outcome as ConsumerOutcome
from shared.db import Pool
from shared.events import Envelope
from shared.events.crm import CrmDealChanged
from shared.outbox import Outbox
from shared.topics import CRM_DEALS, DEAL_OPPORTUNITIES, DEAL_REGISTRATIONS, PARTNER_NOTIFICATIONS
from tests.support.crm import HUBSPOT_PORTAL, hubspot_property_change
from tests.support.infra import ROOT, Infra, migrated_pool, scratch_schema
from tests.support.kafka import as_records

pytestmark = pytest.mark.integration

DEALS_MIGRATIONS = ROOT / "services" / "deals" / "migrations"


async def _register(
    pool: Pool, registration_id: str, partner: str, at: datetime, deal_key: str, status: str
) -> None:
    await pool.execute(
        """
        INSERT INTO registrations (registration_id, partner_id, customer_name, name_key,
            products, amount, currency, status, reasons, conflicts, policy_version, inputs,
            submitted_at, decided_at, expires_at, crm_deal_key, updated_at)
        VALUES ($1, $2, 'Customer', 'customer', '{data}', 1000, 'USD', $5, '{}',
            '[]', 'p1', '{}', $3, $3, $3::timestamptz + interval '90 days', $4, $3)
        """,
        registration_id,
        partner,
        at,
        deal_key,
        status,
    )


def _merge_events(run: int, at: datetime) -> list[Envelope[CrmDealChanged]]:
    """Deal `run` and deal `run + 1` exist; then `run` is merged into `run + 1`."""
    first = hubspot_property_change(run, "dealstage", "qualifiedtobuy", at, event_id=1)
    second = hubspot_property_change(run + 1, "dealstage", "qualifiedtobuy", at, event_id=2)
    merge = {
        **hubspot_property_change(run + 1, "amount", "1", at + timedelta(seconds=5), event_id=3),
        "subscriptionType": "deal.merge",
        "primaryObjectId": run + 1,
        "mergedObjectIds": [run],
    }
    return [
        Envelope.wrap(change, source="pollinate/deals", subject=change.deal_key)
        for change in from_hubspot([first, second, merge])
    ]


async def _consume(infra: Infra, pool: Pool, envelopes: list[Envelope[CrmDealChanged]]) -> None:
    consumer = EventConsumer(
        name="crm-projection",
        service="deals",
        topics=[CRM_DEALS],
        pool=pool,
        outbox=Outbox("deals", source="pollinate/deals"),
    )
    consumer.handles_batch(CrmDealChanged)(on_crm_changes)
    records = await as_records(infra, envelopes)
    assert await consumer.process_batch(records) == [ConsumerOutcome.PROCESSED] * len(records)


async def _published(pool: Pool, topic: str) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT value FROM outbox WHERE topic = $1 ORDER BY position", topic)
    return [json.loads(row["value"])["data"] for row in rows]


async def test_two_registrations_on_merged_deals_one_keeps_the_survivor_the_other_is_reviewed(
    infra: Infra,
) -> None:
    """Partner A linked deal 1 first, partner B deal 2 later; deal 1 is merged into deal 2.
    A keeps the survivor (registered first); B is unlinked and goes to review with the reason,
    told without naming A; both have a history entry and a message; the survivor's state
    lists A only, so downstream never sees two sourcing partners on one deal."""
    portal, run = HUBSPOT_PORTAL, uuid.uuid4().int % 10**9
    loser, survivor = f"hubspot:{portal}:{run}", f"hubspot:{portal}:{run + 1}"
    at = datetime.now(UTC) - timedelta(minutes=5)
    first, later = f"reg-a-{run}", f"reg-b-{run}"
    async with (
        scratch_schema(infra) as service,
        migrated_pool(service, "deals", DEALS_MIGRATIONS) as pool,
    ):
        await _register(pool, first, "p-a", at, loser, "approved")
        await _register(pool, later, "p-b", at + timedelta(minutes=1), survivor, "approved")
        await _consume(infra, pool, _merge_events(run, at))
        rows = {
            r["registration_id"]: r
            for r in await pool.fetch(
                """SELECT registration_id, status, crm_deal_key, review_due_at, reasons,
                          partner_reasons
                   FROM registrations"""
            )
        }
        history = await pool.fetch(
            """SELECT registration_id, what, previous_status, status, principal, reasons,
                      partner_reasons, evidence
               FROM registration_ledger ORDER BY seq"""
        )
        states = await _published(pool, DEAL_OPPORTUNITIES.name)
        changes = await _published(pool, DEAL_REGISTRATIONS.name)
        messages = await _published(pool, PARTNER_NOTIFICATIONS.name)
    assert (rows[first]["status"], rows[first]["crm_deal_key"]) == ("approved", survivor)
    assert (rows[later]["status"], rows[later]["crm_deal_key"]) == ("pending_review", None)
    assert rows[later]["review_due_at"] is not None
    assert f"registration {first} (partner p-a) holds" in rows[later]["reasons"][0]
    assert "another partner holds" in rows[later]["partner_reasons"][0]
    assert "p-a" not in rows[later]["partner_reasons"][0]
    entries = {(h["registration_id"], h["what"], h["status"]) for h in history}
    assert entries == {(first, "merged", "approved"), (later, "merged", "pending_review")}
    assert all(h["principal"] == loser for h in history)
    assert {json.loads(h["evidence"])["held_by"] for h in history} == {first}
    # The status change is announced without a deal (attribution must not credit B on it).
    [status_change] = changes
    assert (status_change["registration_id"], status_change["status"]) == (
        later,
        "pending_review",
    )
    assert status_change["crm_deal_key"] is None
    told = {(m["partner_id"], m["kind"]) for m in messages if m["recipient"] == m["partner_id"]}
    assert told == {("p-a", "registration_approved"), ("p-b", "pending_review")}
    last = {state["deal_key"]: state for state in states}
    assert [r["registration_id"] for r in last[survivor]["registrations"]] == [first]
    assert last[loser]["registrations"] == []
    assert last[loser]["deleted"] is True


async def test_a_won_registration_keeps_the_survivor_over_an_earlier_live_one(
    infra: Infra,
) -> None:
    """The survivor already closed won with B's registration: B keeps it (its deal closed
    with it), and A's earlier but still live registration goes to review."""
    portal, run = HUBSPOT_PORTAL, uuid.uuid4().int % 10**9
    loser, survivor = f"hubspot:{portal}:{run}", f"hubspot:{portal}:{run + 1}"
    at = datetime.now(UTC) - timedelta(minutes=5)
    first, won = f"reg-a-{run}", f"reg-w-{run}"
    async with (
        scratch_schema(infra) as service,
        migrated_pool(service, "deals", DEALS_MIGRATIONS) as pool,
    ):
        await _register(pool, first, "p-a", at, loser, "pending_review")
        await _register(pool, won, "p-b", at + timedelta(minutes=1), survivor, "won")
        await _consume(infra, pool, _merge_events(run, at))
        rows = {
            r["registration_id"]: (r["status"], r["crm_deal_key"])
            for r in await pool.fetch(
                "SELECT registration_id, status, crm_deal_key FROM registrations"
            )
        }
        what = await pool.fetch(
            "SELECT registration_id, what, status FROM registration_ledger ORDER BY seq"
        )
    assert rows == {first: ("pending_review", None), won: ("won", survivor)}
    assert {(w["registration_id"], w["what"], w["status"]) for w in what} == {
        (first, "merged", "pending_review"),
        (won, "merged", "won"),
    }
