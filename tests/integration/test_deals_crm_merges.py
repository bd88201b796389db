"""CRM merges through the projection's consumer on a scratch schema (real Kafka records, real
Postgres): the registrations of a merged deal follow the survivor, and when the survivor ends
up held by two registrations one keeps it and the other goes to review, both told."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from services.deals.adapters import from_hubspot
from shared.consumer import Outcome as ConsumerOutcome
from shared.db import Pool
from shared.events import Envelope
from shared.events.crm import CrmDealChanged
from shared.topics import DEAL_OPPORTUNITIES, DEAL_REGISTRATIONS, PARTNER_NOTIFICATIONS
from tests.support.crm import (
    HUBSPOT_PORTAL,
    SalesforceServer,
    hubspot_property_change,
    salesforce_cdc,
    salesforce_delivery,
)
from tests.support.deals import crm_projection, deals_pool, projected_crm_deal, register_on_deal
from tests.support.infra import Infra
from tests.support.kafka import as_records
from tests.support.outbox import event_json
from tests.support.polling import eventually
from tests.support.processes import service_processes

pytestmark = pytest.mark.integration


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
    consumer = crm_projection(pool)
    records = await as_records(infra, envelopes)
    assert await consumer.process_batch(records) == [ConsumerOutcome.PROCESSED] * len(records)


def _deal_key(run: int) -> str:
    return f"hubspot:{HUBSPOT_PORTAL}:{run}"


async def _registered_then_merged(
    infra: Infra,
    pool: Pool,
    run: int,
    at: datetime,
    on_loser: tuple[str, str],
    on_survivor: tuple[str, str],
) -> None:
    """Partner p-a's registration (id, status) on deal `run` at `at`, p-b's on deal `run + 1` a
    minute later; then `run` is merged into `run + 1`, through the projection's consumer."""
    (first, first_status), (second, second_status) = on_loser, on_survivor
    await register_on_deal(pool, first, _deal_key(run), at, partner="p-a", status=first_status)
    await register_on_deal(
        pool,
        second,
        _deal_key(run + 1),
        at + timedelta(minutes=1),
        partner="p-b",
        status=second_status,
    )
    await _consume(infra, pool, _merge_events(run, at))


async def _published(pool: Pool, topic: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT value, value_codec FROM outbox WHERE topic = $1 ORDER BY position", topic
    )
    return [event_json(row)["data"] for row in rows]


async def test_two_registrations_on_merged_deals_one_keeps_the_survivor_the_other_is_reviewed(
    infra: Infra,
) -> None:
    """Partner A linked deal 1 first, partner B deal 2 later; deal 1 is merged into deal 2.
    A keeps the survivor (registered first); B is unlinked and goes to review with the reason,
    told without naming A; both have a history entry and a message; the survivor's state
    lists A only, so downstream never sees two sourcing partners on one deal."""
    run, at = uuid.uuid4().int % 10**9, datetime.now(UTC) - timedelta(minutes=5)
    loser, survivor = _deal_key(run), _deal_key(run + 1)
    first, later = f"reg-a-{run}", f"reg-b-{run}"
    async with deals_pool(infra) as pool:
        await _registered_then_merged(
            infra, pool, run, at, (first, "approved"), (later, "approved")
        )
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
    # A's link is announced with the survivor (same status); B's change names no deal, so
    # attribution never credits B on the survivor.
    assert [(c["registration_id"], c["status"], c["crm_deal_key"]) for c in changes] == [
        (first, "approved", survivor),
        (later, "pending_review", None),
    ]
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
    run, at = uuid.uuid4().int % 10**9, datetime.now(UTC) - timedelta(minutes=5)
    survivor = _deal_key(run + 1)
    first, won = f"reg-a-{run}", f"reg-w-{run}"
    async with deals_pool(infra) as pool:
        await _registered_then_merged(infra, pool, run, at, (first, "pending_review"), (won, "won"))
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


async def test_a_registration_moved_onto_a_survivor_that_closed_takes_its_outcome(
    infra: Infra,
) -> None:
    """Found in review: a registration whose deal was merged into one already won stayed
    approved on it, expired at its window's end, and attribution took its credit back. It
    takes the outcome at the merge, as a link to a closed deal does."""
    run, at = uuid.uuid4().int % 10**9, datetime.now(UTC) - timedelta(minutes=10)
    survivor = _deal_key(run + 1)
    moved = f"reg-m-{run}"
    changes = [
        hubspot_property_change(run, "dealstage", "qualifiedtobuy", at, event_id=1),
        hubspot_property_change(
            run + 1, "dealstage", "closedwon", at + timedelta(minutes=2), event_id=2
        ),
        {
            **hubspot_property_change(
                run + 1, "amount", "1", at + timedelta(minutes=3), event_id=3
            ),
            "subscriptionType": "deal.merge",
            "primaryObjectId": run + 1,
            "mergedObjectIds": [run],
        },
    ]
    envelopes = [
        Envelope.wrap(change, source="pollinate/deals", subject=change.deal_key)
        for change in from_hubspot(changes)
    ]
    async with deals_pool(infra) as pool:
        await register_on_deal(pool, moved, _deal_key(run), at, partner="p-m")
        await _consume(infra, pool, envelopes)
        row = await pool.fetchrow(
            "SELECT status, crm_deal_key FROM registrations WHERE registration_id = $1", moved
        )
        what = await pool.fetch(
            "SELECT what, status FROM registration_ledger WHERE registration_id = $1 ORDER BY seq",
            moved,
        )
    assert (row["status"], row["crm_deal_key"]) == ("won", survivor)
    assert [(w["what"], w["status"]) for w in what] == [("merged", "approved"), ("closed", "won")]


def _account_change(account: str, change: str, at: datetime) -> dict[str, Any]:
    """An AccountChangeEvent as Salesforce delivers a merge's halves: the losers' DELETE with
    no field values, the master's UPDATE."""
    message = salesforce_cdc(account, change, at, {})
    message["payload"]["ChangeEventHeader"]["entityName"] = "Account"
    return message


async def test_a_salesforce_account_merge_brings_the_surviving_account_to_its_opportunities(
    infra: Infra, deals_crm_env: dict[str, str]
) -> None:
    """Salesforce merges Accounts, not Opportunities: the loser arrives as an Account DELETE
    that says nothing of a merge, and the Opportunities it re-parents send no change at all.
    Deals asks the org for the deleted Account's MasterRecordId and fetches the master's
    Opportunities, so the re-parented one (and the registration linked to it) now stands on
    the surviving customer; a plain Account deletion fetches nothing more."""
    run = uuid.uuid4().hex[:8]
    master, loser, deleted = f"001M{run}000000", f"001L{run}000000", f"001D{run}000000"
    opportunity = f"006R{run}000000"
    key = f"salesforce:{opportunity}"
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    old_customer = {"Account_Name__c": "Nortwind Old", "Account_Website__c": "nortwind-old.com"}
    with SalesforceServer() as org:
        org.put(opportunity, at, StageName="Prospecting", AccountId=loser, **old_customer)
        org.accounts[deleted] = {"attributes": {"type": "Account"}, "Id": deleted}
        created = salesforce_cdc(
            opportunity, "CREATE", at, {"StageName": "Prospecting", **old_customer}
        )
        org.merge_accounts(master, [loser])
        # The org's formula fields now read the master Account; the stamps did not move.
        org.records[opportunity].update(
            Account_Name__c="Northwind Traders", Account_Website__c="https://northwind.com"
        )
        merge_at = at + timedelta(minutes=1)
        batch = [
            created,
            _account_change(loser, "DELETE", merge_at),
            _account_change(master, "UPDATE", merge_at),
            _account_change(deleted, "DELETE", merge_at),
        ]
        async with service_processes(infra, "deals", env={**deals_crm_env, **org.env()}) as [url]:
            async with httpx.AsyncClient(timeout=30) as client:
                answer = await client.post(f"{url}/crm/salesforce", **salesforce_delivery(batch))
            assert answer.status_code == 202, answer.text
            assert [(i["outcome"], i["deal_key"]) for i in answer.json()["items"]] == [
                ("accepted", key),
                ("resync", None),
                ("ignored", None),
                ("resync", None),
            ]
            assert "MasterRecordId" in answer.json()["items"][1]["reason"]
            row = await eventually(
                lambda: projected_crm_deal(infra, key, customer_name="Northwind Traders"),
                what="the surviving Account on the re-parented Opportunity",
            )
    assert (row["customer_domain"], row["stage"], row["deleted"]) == (
        "northwind.com",
        "prospecting",
        False,
    )
    queries = [parse_qs(urlsplit(p).query).get("q", [""])[0] for p in org.requests]
    assert sum(f"WHERE Id = '{loser}'" in q for q in queries) == 1
    assert sum(f"WHERE Id = '{deleted}'" in q for q in queries) == 1
    # Only the merge's master is asked for its Opportunities; the plain deletion is not.
    assert [q.split("AccountId = ")[1] for q in queries if "AccountId" in q] == [
        f"'{master}' ORDER BY Id"
    ]
