"""CRM fidelity against the running deals processes on real Kafka and Postgres: a delivery is
answered item by item (a bad or unsupported item never takes a valid neighbour with it, and is
kept with its reason), and what is recorded merges as the CRM meant it."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from services.deals.adapters import from_hubspot
from services.deals.crm_clients import HubSpotClient, RateLimited, SalesforceClient
from services.deals.crm_ingestion import hubspot_items, record_items, salesforce_items
from services.deals.crm_pulls import pull
from services.deals.crm_resync import hubspot_resyncer, run_resyncs, salesforce_resyncer
from services.deals.partner_program_clients import AceClient, MicrosoftReferralsClient
from shared.consumer import Outcome as ConsumerOutcome
from shared.db import Pool
from shared.events import Envelope
from shared.events.crm import CrmDealChanged, CrmSource
from shared.outbox import Outbox
from shared.topics import DEAL_OPPORTUNITIES
from tests.support.crm import (
    HUBSPOT_PORTAL,
    AcePartnerCentral,
    HubSpotCrm,
    PartnerCenterReferrals,
    SalesforceServer,
    hubspot_company_association,
    hubspot_headers,
    hubspot_property_change,
    salesforce_cdc,
    salesforce_delivery,
)
from tests.support.deals import (
    admin_fetch,
    crm_projection,
    deals_pool,
    projected_crm_deal,
    register_on_deal,
)
from tests.support.infra import Infra
from tests.support.kafka import as_records
from tests.support.outbox import event_bytes, event_json
from tests.support.polling import eventually
from tests.support.processes import service_processes

pytestmark = pytest.mark.integration


async def _recorded_events(infra: Infra, deal_key: str) -> list[dict[str, Any]]:
    rows = await admin_fetch(
        infra,
        """SELECT value, value_codec FROM deals.outbox WHERE message_key = $1 AND topic = 'crm.deals.v1'
           ORDER BY position""",
        deal_key,
    )
    return [event_json(row)["data"] for row in rows]


async def test_a_salesforce_batch_records_every_valid_message_and_refuses_the_bad_one_by_index(
    infra: Infra, deals_instances: list[str]
) -> None:
    run = uuid.uuid4().hex[:10]
    now = datetime.now(UTC) - timedelta(seconds=5)
    first, last = f"006F{run}", f"006L{run}"
    account = salesforce_cdc(f"001{run}", "UPDATE", now, {"Name": "Northwind"})
    account["payload"]["ChangeEventHeader"]["entityName"] = "Account"
    batch = [
        salesforce_cdc(first, "CREATE", now, {"StageName": "Prospecting", "Name": "First"}),
        salesforce_cdc(f"006B{run}", "UPDATE", now, {"StageName": "Haggling"}),
        account,
        salesforce_cdc(last, "CREATE", now, {"StageName": "Closed Won", "Amount": 1200.5}),
        # a date past Python's (an Avro date of 5,000,000 days) was a 500 losing the batch
        salesforce_cdc(
            f"006D{run}", "CREATE", now, {"StageName": "Prospecting", "CloseDate": 5_000_000}
        ),
    ]
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(
            f"{deals_instances[0]}/crm/salesforce", **salesforce_delivery(batch)
        )
        again = await client.post(
            f"{deals_instances[1]}/crm/salesforce", **salesforce_delivery(batch)
        )
    assert answer.status_code == 207, answer.text
    body = answer.json()
    assert [(i["index"], i["outcome"], i["deal_key"]) for i in body["items"]] == [
        (0, "accepted", f"salesforce:{first}"),
        (1, "refused", None),
        (2, "ignored", None),
        (3, "accepted", f"salesforce:{last}"),
        (4, "refused", None),
    ]
    assert body["items"][1]["reason"].startswith("[1].payload.StageName: unknown stage 'Haggling'")
    assert body["items"][4]["reason"] == "[4].payload.CloseDate: 5000000 days from 1970 is no date"
    assert (body["accepted"], body["refused"], body["ignored"]) == (2, 2, 1)
    # The relay's redelivery records nothing twice; the bad message is still refused.
    assert [i["outcome"] for i in again.json()["items"]] == [
        "duplicate",
        "refused",
        "ignored",
        "duplicate",
        "refused",
    ]
    for key in (f"salesforce:{first}", f"salesforce:{last}"):
        assert len(await _recorded_events(infra, key)) == 1
    won = await eventually(
        lambda: projected_crm_deal(infra, f"salesforce:{last}", status="won"), what="the won deal"
    )
    assert str(won["amount"]) == "1200.5000"
    refused = await admin_fetch(
        infra,
        "SELECT item_index, reason, item FROM deals.crm_refused WHERE reason LIKE $1",
        "%Haggling%",
    )
    mine = [r for r in refused if f"006B{run}".encode() in bytes(r["item"])]
    assert [r["item_index"] for r in mine] == [1, 1]
    assert json.loads(bytes(mine[0]["item"]))["payload"]["StageName"] == "Haggling"


async def test_a_hubspot_batch_keeps_the_stage_change_beside_unsupported_events(
    infra: Infra, deals_instances: list[str]
) -> None:
    deal = uuid.uuid4().int % 10**12
    now = datetime.now(UTC) - timedelta(seconds=5)
    stage = hubspot_property_change(deal, "dealstage", "contractsent", now)
    association = hubspot_company_association(deal, 5, now, associationRemoved=False)
    bad = hubspot_property_change(deal, "amount", "lots", now)
    foreign = {**hubspot_property_change(deal, "dealname", "Elsewhere", now), "portalId": 1234}
    batch = json.dumps([association, stage, bad, foreign]).encode()
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(
            f"{deals_instances[0]}/crm/hubspot", content=batch, headers=hubspot_headers(batch)
        )
    # HubSpot does not retry a 4xx: 202, each event's outcome in the body.
    assert answer.status_code == 202, answer.text
    key = f"hubspot:{HUBSPOT_PORTAL}:{deal}"
    assert [(i["index"], i["outcome"], i["deal_key"]) for i in answer.json()["items"]] == [
        (0, "resync", key),  # the deal is fetched with its company
        (1, "accepted", key),
        (2, "refused", None),
        (3, "refused", None),
    ]
    assert "[2].propertyValue: 'lots' is not a number" in answer.json()["items"][2]["reason"]
    assert "[3].portalId '1234'" in answer.json()["items"][3]["reason"]
    [recorded] = await _recorded_events(infra, key)
    assert recorded["stage"] == "negotiation"
    await eventually(lambda: projected_crm_deal(infra, key, stage="negotiation"), what="the stage")


ACE_KEYS = ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")


async def test_the_same_changes_delivered_at_once_in_opposite_orders_are_all_recorded(
    deals_instances: list[str],
) -> None:
    """Two deliveries of the same changes, one in reverse, at the same moment on both
    instances: each is answered 202 (they met on the outbox's event ids in opposite orders
    and one in about twelve was a deadlock's 503 before the deals' locks came first)."""
    now = datetime.now(UTC) - timedelta(seconds=5)
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(6):
            events = [
                hubspot_property_change(uuid.uuid4().int % 10**12, "amount", "7", now)
                for _ in range(200)
            ]
            forward, backward = json.dumps(events).encode(), json.dumps(events[::-1]).encode()
            answers = await asyncio.gather(
                *(
                    client.post(f"{url}/crm/hubspot", content=body, headers=hubspot_headers(body))
                    for url in deals_instances
                    for body in (forward, backward)
                )
            )
            assert [a.status_code for a in answers] == [202] * 4, [a.text for a in answers]


async def test_a_hubspot_merge_moves_the_registration_to_the_surviving_deal(
    infra: Infra,
) -> None:
    """Through the projection's consumer on a scratch schema: the merged deal is deleted, the
    registration linked to it now holds the survivor, and the survivor's state lists it."""
    portal, run = HUBSPOT_PORTAL, uuid.uuid4().int % 10**9
    loser, survivor = f"hubspot:{portal}:{run}", f"hubspot:{portal}:{run + 1}"
    at = datetime.now(UTC) - timedelta(minutes=1)
    created = hubspot_property_change(run, "dealstage", "qualifiedtobuy", at, event_id=1)
    merge = {
        **hubspot_property_change(run + 1, "amount", "1", at + timedelta(seconds=5), event_id=2),
        "subscriptionType": "deal.merge",
        "primaryObjectId": run + 1,
        "mergedObjectIds": [run],
    }
    envelopes = [
        Envelope.wrap(change, source="pollinate/deals", subject=change.deal_key)
        for change in from_hubspot([created, merge])
    ]
    async with deals_pool(infra) as pool:
        await register_on_deal(pool, f"reg-{run}", loser, at)
        consumer = crm_projection(pool)
        records = await as_records(infra, envelopes)
        assert await consumer.process_batch(records) == [ConsumerOutcome.PROCESSED] * 3
        linked = await pool.fetchval(
            "SELECT crm_deal_key FROM registrations WHERE registration_id = $1", f"reg-{run}"
        )
        deleted = await pool.fetchval("SELECT deleted FROM crm_deals WHERE deal_key = $1", loser)
        states = [
            event_json(row)["data"]
            for row in await pool.fetch(
                "SELECT value, value_codec FROM outbox WHERE topic = $1 ORDER BY position",
                DEAL_OPPORTUNITIES.name,
            )
        ]
    assert (linked, deleted) == (survivor, True)
    last = {state["deal_key"]: state for state in states}
    assert [r["registration_id"] for r in last[survivor]["registrations"]] == [f"reg-{run}"]
    assert last[loser]["registrations"] == []
    assert last[loser]["deleted"] is True


async def test_salesforce_nulled_fields_clear_the_projected_deal(
    infra: Infra, deals_instances: list[str]
) -> None:
    record = f"006N{uuid.uuid4().hex[:10]}"
    key = f"salesforce:{record}"
    at = datetime.now(UTC) - timedelta(seconds=10)
    create = salesforce_cdc(
        record, "CREATE", at, {"StageName": "Prospecting", "Amount": 900, "OwnerId": "005R"}
    )
    clear = salesforce_cdc(record, "UPDATE", at + timedelta(seconds=1), {})
    clear["payload"]["ChangeEventHeader"]["nulledFields"] = ["Amount", "OwnerId"]
    async with httpx.AsyncClient(timeout=30) as client:
        for message in (create, clear):
            answer = await client.post(
                f"{deals_instances[0]}/crm/salesforce", **salesforce_delivery(message)
            )
            assert answer.json()["accepted"] == 1, answer.text
    row = await eventually(
        lambda: projected_crm_deal(infra, key, amount=None, owner=None), what="the cleared fields"
    )
    assert row["stage"] == "prospecting"


async def test_a_resync_fetches_gap_records_and_an_overflow_window_through_rate_limits(
    infra: Infra,
) -> None:
    """The resync queue on a scratch schema against a local Salesforce org: a request limit
    postpones the leased requests (kept: a later run, or a restarted process, resumes them);
    then the named records are fetched (a deleted one as deleted) and the overflow's window
    page by page, each recorded as a snapshot."""
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    run = uuid.uuid4().hex[:8]
    with SalesforceServer(page_size=2) as org:
        # Amounts past a binary float's digits, as the org's JSON carries them: a float read
        # them as ...686.06 and ...876.42.
        record_amount, window_amount = Decimal("82261615611686.07"), Decimal("98765432109876.43")
        org.put(f"006A{run}", at, StageName="Closed Won", Amount=record_amount, Name=None)
        window = [
            org.put(
                f"006W{i}{run}",
                at + timedelta(minutes=1, seconds=i),
                StageName="Prospecting",
                Amount=window_amount,
            )
            for i in range(3)
        ]
        gap = salesforce_cdc(f"006A{run}", "UPDATE", at, {})
        # a record named twice is fetched once (it answered 500: scheduled twice at once)
        gap["payload"]["ChangeEventHeader"].update(
            changeType="GAP_UPDATE", recordIds=[f"006A{run}", f"006D{run}", f"006A{run}"]
        )
        overflow = salesforce_cdc("000000000000000AAA", "UPDATE", at + timedelta(minutes=1), {})
        overflow["payload"]["ChangeEventHeader"]["changeType"] = "GAP_OVERFLOW"
        items = salesforce_items([gap, overflow], datetime.now(UTC))
        client = SalesforceClient(org.url, org.TOKEN)
        async with deals_pool(infra) as pool:
            outbox = Outbox("deals", source="pollinate/deals")
            async with pool.acquire() as conn, conn.transaction():
                outcomes = await record_items(conn, outbox, CrmSource.SALESFORCE, items, at)
            assert [(o.index, o.outcome.value, o.deal_key) for o in outcomes] == [
                (0, "resync", f"salesforce:006A{run}"),
                (0, "resync", f"salesforce:006D{run}"),
                (1, "resync", None),
            ]
            org.limited = 1
            limited = await run_resyncs(pool, outbox, [salesforce_resyncer(client)], limit=10)
            assert (limited.fetched, limited.retried) == (0, 3)
            pending = await pool.fetch(
                "SELECT record_id, last_error FROM crm_resyncs WHERE done_at IS NULL"
            )
            assert {r["record_id"] for r in pending} == {f"006A{run}", f"006D{run}", "*"}
            assert all("REQUEST_LIMIT_EXCEEDED" in r["last_error"] for r in pending)
            # The minute the limit asked for passes.
            await pool.execute("UPDATE crm_resyncs SET due_at = now() - interval '1 second'")
            asked_before = len(org.requests)
            done = await run_resyncs(pool, outbox, [salesforce_resyncer(client)], limit=10)
            assert (done.fetched, done.recorded, done.retried) == (5, 5, 0)
            assert (
                await pool.fetchval("SELECT count(*) FROM crm_resyncs WHERE done_at IS NULL") == 0
            )
            recorded = {
                data["source_id"]: data
                for data in (
                    event_json(row)["data"]
                    for row in await pool.fetch(
                        "SELECT value, value_codec FROM outbox WHERE topic = 'crm.deals.v1' ORDER BY position"
                    )
                )
            }
            # What the org answered is kept as it was sent, record by record, on the raw topic.
            raw = [
                event_json(row)["data"]
                for row in await pool.fetch(
                    "SELECT value, value_codec FROM outbox WHERE topic = 'crm.raw.salesforce.v1'"
                )
            ]
    assert recorded[f"006A{run}"]["stage"] == "closed_won"
    assert recorded[f"006A{run}"]["amount"] == str(record_amount)
    assert {recorded[r["Id"]]["amount"] for r in window} == {str(window_amount)}
    raw_record = next(r["item"] for r in raw if r["delivery_id"] == f"006A{run}")
    assert f'"Amount":{record_amount}' in raw_record  # the record as the org sent it
    assert "name" in recorded[f"006A{run}"]["cleared"]  # a snapshot's empty field is cleared
    assert recorded[f"006D{run}"]["change_type"] == "deleted"
    assert sorted(r["delivery_id"] for r in raw) == sorted(
        [f"006A{run}", f"006D{run}", "*", "*", "*"]
    )
    assert {(r["transport"], r["outcomes"][0]) for r in raw} == {("resync", "accepted")}
    assert json.loads(next(r["item"] for r in raw if r["delivery_id"] == f"006D{run}")) == (
        f"006D{run}"
    )
    assert {r["Id"] for r in window} <= set(recorded)
    asked = [path.split("?")[0] for path in org.requests[asked_before:]]
    # Each record once, the window's first page and then the next, by nextRecordsUrl.
    assert sorted(path.rsplit("/", 2)[-2] for path in asked) == [
        "Opportunity",
        "Opportunity",
        "query",
        "v61.0",
    ]
    assert next(path.rsplit("/", 1)[-1] for path in asked if "query" in path) == "queryAll"


async def gap_recorded(pool: Pool, records: list[str], at: datetime) -> Outbox:
    """A Salesforce gap event naming `records`, delivered at `at` to deals' scratch schema:
    their resyncs queued; deals' outbox, for the resync runs to record through."""
    gap = salesforce_cdc(records[0], "UPDATE", at, {})
    gap["payload"]["ChangeEventHeader"].update(changeType="GAP_UPDATE", recordIds=records)
    outbox = Outbox("deals", source="pollinate/deals")
    async with pool.acquire() as conn, conn.transaction():
        items = salesforce_items([gap], datetime.now(UTC))
        await record_items(conn, outbox, CrmSource.SALESFORCE, items, at)
    return outbox


async def test_resyncs_not_begun_within_the_lease_are_given_back(infra: Infra) -> None:
    """A run begins a fetch after its first only while its lease outlasts the slowest one:
    begun later, the lease could lapse mid-batch and another instance fetch and record them
    too (found in review). With a lease of a second, one record is fetched and the others are
    due again at once, their attempt not counted."""
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    run = uuid.uuid4().hex[:8]
    records = [f"006R{n}{run}" for n in range(3)]
    with SalesforceServer() as org:
        for record in records:
            org.put(record, at, StageName="Prospecting")
        resyncer = salesforce_resyncer(SalesforceClient(org.url, org.TOKEN))
        async with deals_pool(infra) as pool:
            outbox = await gap_recorded(pool, records, at)
            first = await run_resyncs(pool, outbox, [resyncer], 10, timedelta(seconds=1))
            assert first.fetched == 1
            given_back = await pool.fetch(
                "SELECT attempts, due_at <= now() AS due FROM crm_resyncs WHERE done_at IS NULL"
            )
            assert [tuple(r) for r in given_back] == [(0, True), (0, True)]
            rest = await run_resyncs(pool, outbox, [resyncer], 10)
            assert rest.fetched == 2


async def test_a_fetched_record_stamped_far_ahead_is_refused_not_recorded(infra: Infra) -> None:
    """Found in review: a resync recorded a record whose modification time the org gave as
    2100, and its snapshot made every later change of the deal stale. It is refused, with the
    reason, as a delivered change so stamped is."""
    run = uuid.uuid4().hex[:8]
    record = f"006F{run}"
    at = datetime.now(UTC) - timedelta(minutes=5)
    with SalesforceServer() as org:
        org.put(record, datetime(2100, 1, 1, tzinfo=UTC), StageName="Closed Won")
        resyncer = salesforce_resyncer(SalesforceClient(org.url, org.TOKEN))
        async with deals_pool(infra) as pool:
            outbox = await gap_recorded(pool, [record], at)
            done = await run_resyncs(pool, outbox, [resyncer], 10)
            assert (done.fetched, done.recorded, done.refused) == (1, 0, 1)
            reason = await pool.fetchval("SELECT reason FROM crm_refused")
    assert (
        reason
        == "resync: the fetched record's modification time is more than 5 minutes in the future"
    )


async def test_a_gap_event_leads_to_a_fetch_and_the_fetched_state_is_projected(
    infra: Infra, deals_crm_env: dict[str, str]
) -> None:
    record = f"006G{uuid.uuid4().hex[:10]}"
    at = datetime.now(UTC) - timedelta(seconds=30)
    with SalesforceServer() as org:
        org.put(record, at, StageName="Closed Won", Amount=7300, Account_Name__c="Gap Co")
        gap = salesforce_cdc(record, "UPDATE", at, {})
        gap["payload"]["ChangeEventHeader"]["changeType"] = "GAP_UPDATE"
        async with service_processes(infra, "deals", env={**deals_crm_env, **org.env()}) as [url]:
            async with httpx.AsyncClient(timeout=30) as client:
                answer = await client.post(f"{url}/crm/salesforce", **salesforce_delivery(gap))
            assert answer.status_code == 202, answer.text
            assert [(i["outcome"], i["deal_key"]) for i in answer.json()["items"]] == [
                ("resync", f"salesforce:{record}")
            ]
            row = await eventually(
                lambda: projected_crm_deal(infra, f"salesforce:{record}", status="won"),
                what="the fetched state projected",
            )
    assert (str(row["amount"]), row["customer_name"]) == ("7300.0000", "Gap Co")
    assert any(record in path for path in org.requests)


async def test_a_single_currency_org_is_read_in_its_currency(
    infra: Infra, deals_crm_env: dict[str, str]
) -> None:
    """Multiple currencies are off in a Salesforce org by default: it has no CurrencyIsoCode.
    Found in review: every REST read asked for it (and was refused), and every won deal
    reached attribution without a currency."""
    record = f"006C{uuid.uuid4().hex[:10]}"
    at = datetime.now(UTC) - timedelta(seconds=30)
    with SalesforceServer(multi_currency=False) as org:
        org.put(record, at, StageName="Closed Won", Amount=7300, Account_Name__c="Euro Co")
        gap = salesforce_cdc(record, "UPDATE", at, {})
        gap["payload"]["ChangeEventHeader"]["changeType"] = "GAP_UPDATE"
        env = {**deals_crm_env, **org.env(), "DEALS_SALESFORCE_CURRENCY": "EUR"}
        async with service_processes(infra, "deals", env=env) as [url]:
            async with httpx.AsyncClient(timeout=30) as client:
                answer = await client.post(f"{url}/crm/salesforce", **salesforce_delivery(gap))
            assert answer.status_code == 202, answer.text
            row = await eventually(
                lambda: projected_crm_deal(infra, f"salesforce:{record}", status="won"),
                what="the fetched state projected",
            )
    assert (str(row["amount"]), row["currency"]) == ("7300.0000", "EUR")


async def test_an_ace_opportunity_gone_between_listing_and_reading_is_refused_not_a_wall(
    infra: Infra,
) -> None:
    """Found in review: GetOpportunity refusing one listed opportunity (gone since the listing)
    failed its whole page, and every later run stopped at that page for good."""
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    async with deals_pool(infra) as pool:
        outbox = Outbox("deals", source="pollinate/deals")
        with AcePartnerCentral(page_size=2) as ace:
            for i in range(3):
                ace.put(f"V{i}", base + timedelta(minutes=i), Title=f"Deal {i}")
            ace.vanished.add("V1")
            client = AceClient(ace.url, "us-east-1", "AWS", *ACE_KEYS)
            run = await pull(pool, outbox, CrmSource.AWS_ACE, client.page, max_pages=10)
        assert (run.accepted, run.refused, run.finished) == (2, 1, True)
        [reason] = [r["reason"] for r in await pool.fetch("SELECT reason FROM crm_refused")]
    assert reason.startswith("GetOpportunity of 'V1' was refused: ")
    assert "ResourceNotFoundException" in reason


async def test_ace_pulls_resume_from_their_checkpoint_after_a_restart(infra: Infra) -> None:
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    async with deals_pool(infra) as pool:
        outbox = Outbox("deals", source="pollinate/deals")
        with AcePartnerCentral(page_size=2) as ace:
            for i in range(5):
                ace.put(f"O{i}", base + timedelta(minutes=i), Title=f"Deal {i}")
            client = AceClient(ace.url, "us-east-1", "AWS", *ACE_KEYS)
            first = await pull(pool, outbox, CrmSource.AWS_ACE, client.page, max_pages=1)
            assert (first.pages, first.accepted, first.finished) == (1, 2, False)
            held = await pool.fetchrow("SELECT * FROM crm_pull_checkpoints")
            assert (held["continuation"], held["watermark"]) == ("2", None)
            # A restart: a new client, nothing in memory; the checkpoint goes on.
            ace.throttled = 1
            restarted = AceClient(ace.url, "us-east-1", "AWS", *ACE_KEYS)
            with pytest.raises(RateLimited):
                await pull(pool, outbox, CrmSource.AWS_ACE, restarted.page, max_pages=10)
            rest = await pull(pool, outbox, CrmSource.AWS_ACE, restarted.page, max_pages=10)
            assert (rest.pages, rest.accepted, rest.finished) == (2, 3, True)
            listings = [r["body"] for r in ace.requests if "ListOpportunities" in str(r["headers"])]
            assert [b.get("NextToken") for b in listings] == [None, "2", "2", "4"]
            held = await pool.fetchrow("SELECT * FROM crm_pull_checkpoints")
            assert held["watermark"] == base + timedelta(minutes=4)
            assert held["continuation"] is None
            # A change after the watermark: only it (and the boundary, a duplicate) again.
            ace.put("O1", base + timedelta(minutes=9), Title="Deal 1, revised")
            again = await pull(pool, outbox, CrmSource.AWS_ACE, restarted.page, max_pages=10)
            assert (again.accepted, again.duplicate) == (1, 1)
            last_listing = [
                r["body"] for r in ace.requests if "ListOpportunities" in str(r["headers"])
            ][-1]
            assert last_listing["LastModifiedDate"] == {
                "AfterLastModifiedDate": (base + timedelta(minutes=4)).strftime(
                    "%Y-%m-%dT%H:%M:%S.%fZ"
                )
            }
        titles = [
            event_json(r)["data"]["name"]
            for r in await pool.fetch(
                "SELECT value, value_codec FROM outbox WHERE topic = 'crm.deals.v1' ORDER BY position"
            )
        ]
    assert titles == [f"Deal {i}" for i in range(5)] + ["Deal 1, revised"]


@pytest.mark.parametrize("use_tokens", [False, True], ids=["next-link", "continuation-token"])
async def test_microsoft_referral_pulls_resume_from_their_checkpoint_after_a_restart(
    infra: Infra, use_tokens: bool
) -> None:
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    async with deals_pool(infra) as pool:
        outbox = Outbox("deals", source="pollinate/deals")
        with PartnerCenterReferrals(page_size=2, use_tokens=use_tokens) as center:
            for i in range(3):
                center.put(f"r{i}", base + timedelta(minutes=i))
            url = center.url + center.PATH
            first = MicrosoftReferralsClient(url, center.TOKEN)
            one = await pull(pool, outbox, CrmSource.MICROSOFT, first.page, max_pages=1)
            assert (one.accepted, one.finished) == (2, False)
            restarted = MicrosoftReferralsClient(url, center.TOKEN)
            rest = await pull(pool, outbox, CrmSource.MICROSOFT, restarted.page, max_pages=5)
            assert (rest.accepted, rest.finished) == (1, True)
            continued = center.requests[1]
            if use_tokens:
                assert continued["headers"].get("MS-ContinuationToken") == "2"
            else:
                assert "cursor=2" in continued["path"]
            center.put("r0", base + timedelta(minutes=5), substatus="Won")
            again = await pull(pool, outbox, CrmSource.MICROSOFT, restarted.page, max_pages=5)
            assert (again.accepted, again.duplicate) == (1, 1)
            # Listed again from the watermark: the newest updatedDateTime Microsoft reported.
            watermark = (base + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            query = parse_qs(urlsplit(center.requests[-1]["path"]).query)
            assert query["$filter"] == [f"updatedDateTime ge {watermark}"]
        states = [
            (data["source_id"], data["stage"])
            for data in (
                event_json(r)["data"]
                for r in await pool.fetch(
                    "SELECT value, value_codec FROM outbox WHERE topic = 'crm.deals.v1' ORDER BY position"
                )
            )
        ]
    assert states == [
        ("r0", "qualification"),
        ("r1", "qualification"),
        ("r2", "qualification"),
        ("r0", "closed_won"),
    ]


async def test_a_hubspot_association_brings_the_deals_company_and_products_into_the_projection(
    infra: Infra,
) -> None:
    """An association change asks for the deal; the resync fetches it with its company and
    line items through HubSpot's CRM API, and the projection then holds its customer (name,
    domain, country) and products, so the deal meets conflict checks like the others."""
    deal = str(uuid.uuid4().int % 10**9)
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    association = hubspot_company_association(
        int(deal), 77, at, eventId=1, associationRemoved=False
    )
    with HubSpotCrm() as crm:
        crm.deals[deal] = {
            "dealname": "Fabrikam rollout",
            "amount": "48000",
            "dealstage": "contractsent",
            "closedate": "2026-06-30T00:00:00Z",
            "hubspot_owner_id": "",
        }
        crm.companies["77"] = {"name": "Fabrikam Inc", "domain": "fabrikam.com", "country": "US"}
        crm.line_items.update({"9001": {"hs_sku": "security-suite"}, "9002": {"name": "support"}})
        crm.associations[deal] = {"companies": ["77"], "line items": ["9001", "9002"]}
        client = HubSpotClient(crm.url, {str(HUBSPOT_PORTAL): crm.TOKEN})
        async with deals_pool(infra) as pool:
            outbox = Outbox("deals", source="pollinate/deals")
            items = hubspot_items([association], datetime.now(UTC))
            async with pool.acquire() as conn, conn.transaction():
                [asked] = await record_items(conn, outbox, CrmSource.HUBSPOT, items, at)
            key = f"hubspot:{HUBSPOT_PORTAL}:{deal}"
            assert (asked.outcome.value, asked.deal_key) == ("resync", key)
            run = await run_resyncs(pool, outbox, [hubspot_resyncer(client)], limit=10)
            assert (run.fetched, run.recorded) == (1, 1)
            [value] = [
                event_bytes(r)
                for r in await pool.fetch(
                    "SELECT value, value_codec FROM outbox WHERE topic = 'crm.deals.v1'"
                )
            ]
            snapshot = Envelope[CrmDealChanged].model_validate_json(value)
            consumer = crm_projection(pool)
            records = await as_records(infra, [snapshot])
            assert await consumer.process_batch(records) == [ConsumerOutcome.PROCESSED]
            row = await pool.fetchrow("SELECT * FROM crm_deals WHERE deal_key = $1", key)

            # The company and line items removed: the deal has none now (they stayed, and the
            # removed company kept counting in conflict checks).
            crm.associations[deal] = {}
            removed = hubspot_company_association(
                int(deal), 77, at + timedelta(minutes=1), eventId=2, associationRemoved=True
            )
            items = hubspot_items([removed], datetime.now(UTC))
            async with pool.acquire() as conn, conn.transaction():
                await record_items(conn, outbox, CrmSource.HUBSPOT, items, at)
            again = await run_resyncs(pool, outbox, [hubspot_resyncer(client)], limit=10)
            assert (again.fetched, again.recorded) == (1, 1)
            newest = event_bytes(
                await pool.fetchrow(
                    "SELECT value, value_codec FROM outbox WHERE topic = 'crm.deals.v1' "
                    "ORDER BY position DESC LIMIT 1"
                )
            )
            cleared = Envelope[CrmDealChanged].model_validate_json(newest)
            records = await as_records(infra, [cleared])
            assert await consumer.process_batch(records) == [ConsumerOutcome.PROCESSED]
            bare = await pool.fetchrow("SELECT * FROM crm_deals WHERE deal_key = $1", key)
    assert bare is not None
    assert (bare["customer_name"], bare["customer_domain"], bare["products"]) == (None, None, None)
    assert row is not None
    assert (row["customer_name"], row["customer_domain"], row["customer_country"]) == (
        "Fabrikam Inc",
        "fabrikam.com",
        "US",
    )
    assert (row["products"], str(row["amount"]), row["stage"]) == (
        ["security-suite", "support"],
        "48000.0000",
        "negotiation",
    )
    assert row["owner"] is None  # empty in HubSpot: cleared
    assert snapshot.data.source_timestamp == at  # the association's moment (after updatedAt)
    paths = [r["path"].split("?")[0] for r in crm.requests]
    assert paths == [
        f"/crm/v3/objects/deals/{deal}",
        "/crm/v3/objects/companies/77",
        "/crm/v3/objects/line_items/batch/read",
        f"/crm/v3/objects/deals/{deal}",  # again, with nothing associated now
    ]
