"""What an outside tester's realistic CRM payloads found, against the running deals processes
on real Kafka and Postgres, each CRM's API played by a local server speaking its documented
shapes: HubSpot changes sharing an `eventId` are each recorded, stages of other pipelines and
custom stages close deals, programme snapshots clear what they stop carrying, and the thin
events EventBridge and Partner Center's webhooks really send are answered 2xx and fetched."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.deals.crm_ingestion import aws_ace_items, microsoft_items, record_items
from services.deals.crm_resync import Resyncer, ace_resyncer, microsoft_resyncer, run_resyncs
from services.deals.partner_program_clients import AceClient, MicrosoftReferralsClient
from shared.db import Pool
from shared.events.crm import CrmSource
from shared.outbox import Outbox
from tests.support.crm import (
    HUBSPOT_PORTAL,
    AcePartnerCentral,
    CrmSenders,
    PartnerCenterReferrals,
    aws_ace_headers,
    aws_ace_opportunity,
    hubspot_headers,
    hubspot_property_change,
    microsoft_event,
    microsoft_referral,
    salesforce_cdc,
    salesforce_delivery,
    sample,
)
from tests.support.deals import admin_fetch, deals_pool, projected_crm_deal
from tests.support.infra import Infra
from tests.support.outbox import event_json
from tests.support.polling import eventually
from tests.support.processes import service_processes

pytestmark = pytest.mark.integration
ACE_KEYS = ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
SECOND_PIPELINE = {"1034567": "open", "1034572": "won"}


async def _post_hubspot(url: str, events: list[dict[str, Any]]) -> list[str]:
    body = json.dumps(events).encode()
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(
            f"{url}/crm/hubspot", content=body, headers=hubspot_headers(body)
        )
    assert answer.status_code == 202, answer.text
    return [item["outcome"] for item in answer.json()["items"]]


async def test_hubspot_changes_sharing_an_event_id_are_each_recorded_and_a_retry_absorbed(
    infra: Infra, deals_instances: list[str]
) -> None:
    """HubSpot documents `eventId` as not guaranteed unique: the tester's batch (deal 1's
    amount, deal 2's amount, deal 1 won, under one eventId) lost the last two as duplicates."""
    first = uuid.uuid4().int % 10**10 + 10**10
    at = datetime.now(UTC) - timedelta(minutes=1)
    shared = uuid.uuid4().int % 10**9

    def batch(attempt: int) -> list[dict[str, Any]]:
        changes = [(first, "amount", "18000"), (first + 1, "amount", "5000")]
        changes.append((first, "dealstage", "closedwon"))
        events = [
            hubspot_property_change(d, name, v, at, event_id=shared) for d, name, v in changes
        ]
        return [{**event, "attemptNumber": attempt} for event in events]

    assert await _post_hubspot(deals_instances[0], batch(0)) == ["accepted"] * 3
    # HubSpot's retry of the same notifications (attemptNumber counts up) records nothing.
    assert await _post_hubspot(deals_instances[1], batch(1)) == ["duplicate"] * 3
    won = await eventually(
        lambda: projected_crm_deal(infra, f"hubspot:{HUBSPOT_PORTAL}:{first}", status="won"),
        what="deal 1 won",
    )
    other = await projected_crm_deal(infra, f"hubspot:{HUBSPOT_PORTAL}:{first + 1}")
    assert other is not None
    assert (str(won["amount"]), str(other["amount"])) == ("18000.0000", "5000.0000")


async def test_a_salesforce_custom_won_stage_closes_the_deal_by_is_won(
    infra: Infra, deals_instances: list[str]
) -> None:
    record = f"006W{uuid.uuid4().hex[:10]}"
    at = datetime.now(UTC) - timedelta(minutes=1)
    opened = {"StageName": "Discovery Call", "IsClosed": False, "IsWon": False, "Amount": 100}
    signed = {"StageName": "Closed Won - Signed", "IsClosed": True, "IsWon": True}
    messages = [
        salesforce_cdc(record, "CREATE", at, opened),
        salesforce_cdc(record, "UPDATE", at + timedelta(seconds=1), signed),
    ]
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(
            f"{deals_instances[0]}/crm/salesforce", **salesforce_delivery(messages)
        )
    assert answer.status_code == 202, answer.text
    assert answer.json()["accepted"] == 2
    row = await eventually(
        lambda: projected_crm_deal(infra, f"salesforce:{record}", status="won"), what="the deal won"
    )
    assert row["stage"] == "closed_won"


async def test_programme_snapshots_clear_what_the_record_no_longer_holds(
    infra: Infra, deals_instances: list[str], crm_senders: CrmSenders
) -> None:
    """An ACE GetOpportunity and a Partner Center referral are whole records: a later one
    without the partner reference, or with spend in two currencies (the amount unknown), or
    without a deal value, leaves neither the old partner nor the old amount behind."""
    run = uuid.uuid4().hex[:10]
    opportunity, referral = f"O{run}", f"ref-{run}"
    at = datetime.now(UTC) - timedelta(minutes=2)
    first = aws_ace_opportunity(opportunity, stage="Launched")
    first["getOpportunity"]["LastModifiedDate"] = at.isoformat()
    later = copy.deepcopy(first)
    later["getOpportunity"]["LastModifiedDate"] = (at + timedelta(minutes=1)).isoformat()
    del later["getOpportunity"]["PartnerOpportunityIdentifier"]
    later["getOpportunity"]["Project"]["ExpectedCustomerSpend"] = [
        {"Amount": "1000", "CurrencyCode": "USD", "Frequency": "Monthly", "TargetCompany": "AWS"},
        {"Amount": "500", "CurrencyCode": "EUR", "Frequency": "Monthly", "TargetCompany": "AWS"},
    ]
    accepted = microsoft_referral(referral)
    accepted["referral"]["ETag"] = "one"
    dropped = copy.deepcopy(accepted)
    dropped["referral"].update(ETag="two", UpdatedDateTime="2026-01-21T10:31:00Z")
    del dropped["referral"]["ExternalReferenceId"], dropped["referral"]["Details"]["DealValue"]
    async with httpx.AsyncClient(timeout=30) as client:
        for payload in (first, later):
            answer = await client.post(
                f"{deals_instances[0]}/crm/aws-ace", json=payload, headers=aws_ace_headers()
            )
            assert answer.json()["accepted"] == 1, answer.text
        for payload in (accepted, dropped):
            body = json.dumps(payload).encode()
            headers = crm_senders.headers("/crm/microsoft", body)
            answer = await client.post(
                f"{deals_instances[1]}/crm/microsoft", content=body, headers=headers
            )
            assert answer.json()["accepted"] == 1, answer.text
    ace = await eventually(
        lambda: projected_crm_deal(infra, f"aws_ace:{opportunity}", partner_ref=None),
        what="ACE cleared",
    )
    assert (ace["amount"], ace["currency"], ace["status"]) == (None, None, "won")
    ms = await eventually(
        lambda: projected_crm_deal(infra, f"microsoft:{referral}", partner_ref=None),
        what="MS cleared",
    )
    assert (ms["amount"], ms["currency"]) == (None, "USD")


def _thin_event(kind: str, opportunity: str) -> dict[str, Any]:
    """A Partner Central event as an EventBridge API destination sends it: no opportunity,
    its identifier only."""
    event: dict[str, Any] = sample("aws_ace_opportunity.json")["event"]
    event.update({"id": str(uuid.uuid4()), "detail-type": kind})
    event["time"] = (datetime.now(UTC) - timedelta(seconds=2)).isoformat()
    event["detail"]["opportunity"]["identifier"] = opportunity
    return event


async def test_a_thin_ace_event_without_credentials_is_queued_and_other_events_ignored(
    infra: Infra, deals_instances: list[str]
) -> None:
    """EventBridge retries no 422: a thin event answered so was lost. It is answered 2xx and
    queued for a GetOpportunity fetch, which waits until ACE credentials are configured."""
    opportunity = f"O{uuid.uuid4().hex[:10]}"
    invitation = _thin_event("Engagement Invitation Created", "unused")
    del invitation["detail"]["opportunity"]
    invitation["detail"]["engagementInvitation"] = {"id": "engi-0123456789abc"}
    async with httpx.AsyncClient(timeout=30) as client:
        answers = [
            await client.post(
                f"{deals_instances[0]}/crm/aws-ace", json=payload, headers=aws_ace_headers()
            )
            for payload in (_thin_event("Opportunity Updated", opportunity), invitation)
        ]
    assert [a.status_code for a in answers] == [202, 202], [a.text for a in answers]
    [queued], [ignored] = (a.json()["items"] for a in answers)
    assert (queued["outcome"], queued["deal_key"]) == ("resync", f"aws_ace:{opportunity}")
    assert "DEALS_ACE_ACCESS_KEY_ID" in queued["reason"]
    assert ignored["outcome"] == "ignored"
    [request] = await admin_fetch(
        infra,
        "SELECT reason FROM deals.crm_resyncs WHERE source = 'aws_ace' AND record_id = $1",
        opportunity,
    )
    assert "waits in crm_resyncs" in request["reason"]


async def test_a_queued_opportunity_is_fetched_and_one_aws_does_not_have_is_kept_refused(
    infra: Infra,
) -> None:
    """The resync queue on a scratch schema against a local Partner Central: a throttled
    fetch waits; the opportunity is then recorded as GetOpportunity answers it, and one AWS
    answers ResourceNotFoundException for is kept in crm_refused, not asked again."""
    run = uuid.uuid4().hex[:8]
    known, unknown = f"O{run}", f"O-gone-{run}"
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    with AcePartnerCentral() as ace:
        ace.put(known, at, Title="Fetched after its event")
        now = datetime.now(UTC)
        events = [_thin_event("Opportunity Updated", o) for o in (known, unknown)]
        items = [item for event in events for item in aws_ace_items(event, now)]
        client = AceClient(ace.url, "us-east-1", "AWS", *ACE_KEYS)
        async with deals_pool(infra) as pool:
            outbox = await queued_then_throttled(
                pool, CrmSource.AWS_ACE, items, now, ace, ace_resyncer(client)
            )
            done = await run_resyncs(pool, outbox, [ace_resyncer(client)], limit=10)
            assert (done.fetched, done.recorded, done.refused) == (1, 1, 1)
            pending, refused, [recorded] = await resync_outcome(pool)
    assert pending == 0
    assert (recorded["source_id"], recorded["name"]) == (known, "Fetched after its event")
    assert [(r["reason"], bytes(r["item"])) for r in refused] == [
        (
            f"resync of {unknown}: AWS Partner Central GetOpportunity answered 404 "
            "ResourceNotFoundException: not found",
            unknown.encode(),
        )
    ]


async def queued_then_throttled(
    pool: Pool,
    source: CrmSource,
    items: list[Any],
    now: datetime,
    crm: AcePartnerCentral | PartnerCenterReferrals,
    resyncer: Resyncer,
) -> Outbox:
    """The thin events' items recorded on a scratch schema (each queued for a fetch); a first
    resync run meets the CRM's throttling (nothing fetched, both requests retried), and every
    request is due again: the outbox to run the next resyncs with."""
    outbox = Outbox("deals", source="pollinate/deals")
    async with pool.acquire() as conn, conn.transaction():
        await record_items(conn, outbox, source, items, now)
    crm.throttled = 1
    throttled = await run_resyncs(pool, outbox, [resyncer], limit=10)
    assert (throttled.fetched, throttled.retried) == (0, 2)
    await all_due_now(pool)
    return outbox


async def all_due_now(pool: Pool) -> None:
    await pool.execute("UPDATE crm_resyncs SET due_at = now() - interval '1 second'")


async def resync_outcome(pool: Pool) -> tuple[int, list[Any], list[Any]]:
    """After a resync run on a scratch schema: the requests still waiting, the records kept in
    crm_refused, and the changes recorded on crm.deals.v1 (their data, in order)."""
    pending = await pool.fetchval("SELECT count(*) FROM crm_resyncs WHERE done_at IS NULL")
    refused = await pool.fetch("SELECT reason, item FROM crm_refused")
    rows = await pool.fetch(
        "SELECT value, value_codec FROM outbox WHERE topic = 'crm.deals.v1' ORDER BY position"
    )
    return pending, refused, [event_json(row)["data"] for row in rows]


async def _post_microsoft(
    url: str, crm_senders: CrmSenders, payload: dict[str, Any]
) -> httpx.Response:
    body = json.dumps(payload).encode()
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(
            f"{url}/crm/microsoft",
            content=body,
            headers=crm_senders.headers("/crm/microsoft", body),
        )


async def test_a_partner_center_event_without_a_token_is_queued_others_ignored_or_refused(
    infra: Infra, deals_instances: list[str], crm_senders: CrmSenders
) -> None:
    """A Partner Center webhook carries the event's name and the referral's URI only: it was
    refused (422, `referral.Id is required`). A referral event is answered 2xx and queued for a
    fetch that waits until a Partner Center token is configured; Partner Center's test event is
    ignored; a URI that does not name a referral of the Referrals API is refused, saying why."""
    referral = str(uuid.uuid4())
    at = datetime.now(UTC) - timedelta(seconds=2)
    updated = microsoft_event("referral-updated", referral, at)
    test = microsoft_event("test-created", "unused", at)
    test["ResourceUri"] = (
        "https://api.partnercenter.microsoft.com/webhooks/v1/registration/validationEvents/c0ffee"
    )
    elsewhere = microsoft_event("referral-created", referral, at)
    elsewhere["ResourceUri"] = f"https://partner-center.example/engagements/v1/referrals/{referral}"
    answers = [
        await _post_microsoft(deals_instances[0], crm_senders, payload)
        for payload in (updated, test, elsewhere)
    ]
    assert [a.status_code for a in answers] == [202, 202, 422], [a.text for a in answers]
    [queued], [ignored] = (a.json()["items"] for a in answers[:2])
    assert (queued["outcome"], queued["deal_key"]) == ("resync", f"microsoft:{referral}")
    assert "DEALS_MICROSOFT_ACCESS_TOKEN" in queued["reason"]
    assert ignored["outcome"] == "ignored"
    assert (
        answers[2]
        .json()["detail"]
        .startswith(
            "event.ResourceUri does not name a referral of the Partner Center Referrals API"
        )
    )
    [request] = await admin_fetch(
        infra,
        "SELECT reason, since, done_at FROM deals.crm_resyncs"
        " WHERE source = 'microsoft' AND record_id = $1",
        referral,
    )
    assert "waits in crm_resyncs" in request["reason"]
    assert (request["since"], request["done_at"]) == (at, None)


async def test_a_queued_referral_is_fetched_and_one_partner_center_does_not_have_is_refused(
    infra: Infra,
) -> None:
    """The resync queue on a scratch schema against a local Referrals API: a throttled fetch and
    an outage wait; the referral is then recorded as `GET .../referrals/<id>` answers it (the
    same adapter as a delivered referral), and one it answers 404 for is kept in crm_refused,
    not asked again."""
    known, unknown = str(uuid.uuid4()), str(uuid.uuid4())
    with PartnerCenterReferrals() as center:
        center.put(known, datetime.now(UTC) - timedelta(minutes=5), substatus="Won")
        center.referrals[known]["name"] = "Fetched after its event"
        now = datetime.now(UTC)
        events = [microsoft_event("referral-updated", r, now) for r in (known, unknown)]
        items = [item for event in events for item in microsoft_items(event, now)]
        client = MicrosoftReferralsClient(center.url + center.PATH, center.TOKEN)
        async with deals_pool(infra) as pool:
            outbox = await queued_then_throttled(
                pool, CrmSource.MICROSOFT, items, now, center, microsoft_resyncer(client)
            )
            center.down = True
            down = await run_resyncs(pool, outbox, [microsoft_resyncer(client)], limit=10)
            assert (down.fetched, down.retried) == (0, 2)
            errors = await pool.fetch("SELECT last_error FROM crm_resyncs")
            await all_due_now(pool)
            center.down = False
            done = await run_resyncs(pool, outbox, [microsoft_resyncer(client)], limit=10)
            assert (done.fetched, done.recorded, done.refused) == (1, 1, 1)
            pending, refused, [recorded] = await resync_outcome(pool)
    assert {row["last_error"] for row in errors} == {
        "Partner Center answered 503 ServiceUnavailable"
    }
    assert pending == 0
    assert (recorded["source_id"], recorded["name"]) == (known, "Fetched after its event")
    assert (recorded["stage"], recorded["customer"]["name"]) == ("closed_won", "Fabrikam Inc")
    assert [(r["reason"], bytes(r["item"])) for r in refused] == [
        (f"resync of {unknown}: Partner Center answered 404 NotFound", unknown.encode())
    ]
    fetches = [r for r in center.requests if r["path"] != center.PATH]
    assert {(r["method"], r["path"]) for r in fetches} == {
        ("GET", f"{center.PATH}/{referral}") for referral in (known, unknown)
    }


@pytest.fixture(scope="module")
async def ace_center() -> AsyncIterator[AcePartnerCentral]:
    with AcePartnerCentral() as center:
        yield center


@pytest.fixture(scope="module")
async def partner_center() -> AsyncIterator[PartnerCenterReferrals]:
    with PartnerCenterReferrals() as center:
        yield center


@pytest.fixture(scope="module")
async def configured_deals(
    infra: Infra,
    deals_crm_env: dict[str, str],
    ace_center: AcePartnerCentral,
    partner_center: PartnerCenterReferrals,
) -> AsyncIterator[str]:
    """A deals process as a channel team configures one: ACE credentials and a Partner Center
    token (so events are fetched), the stages of its second HubSpot pipeline, resyncs checked
    often. The pulls run once, at the start (before any record exists): what the tests see
    fetched is fetched because an event named it."""
    env = {
        **deals_crm_env,
        **ace_center.env(),
        **partner_center.env(),
        "DEALS_RESYNC_EVERY_SECONDS": "0.2",
        "DEALS_PULL_EVERY_SECONDS": "3600",
        "DEALS_HUBSPOT_STAGES": json.dumps(SECOND_PIPELINE),
    }
    async with service_processes(infra, "deals", env=env) as [url]:
        yield url


async def test_a_thin_ace_event_is_fetched_and_projected(
    infra: Infra, configured_deals: str, ace_center: AcePartnerCentral
) -> None:
    opportunity = f"O{uuid.uuid4().hex[:10]}"
    ace_center.put(opportunity, datetime.now(UTC) - timedelta(minutes=1), Title="Thin event")
    event = _thin_event("Opportunity Created", opportunity)
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(
            f"{configured_deals}/crm/aws-ace", json=event, headers=aws_ace_headers()
        )
    assert answer.status_code == 202, answer.text
    [item] = answer.json()["items"]
    assert (item["outcome"], item["reason"]) == (
        "resync",
        f"event.detail-type 'Opportunity Created' names opportunity {opportunity} without its "
        "fields: it is fetched (GetOpportunity)",
    )
    row = await eventually(
        lambda: projected_crm_deal(infra, f"aws_ace:{opportunity}", name="Thin event"),
        what="the fetched opportunity projected",
    )
    assert (row["customer_name"], row["stage"]) == ("Contoso Logistics GmbH", "validation")
    [request] = await admin_fetch(
        infra,
        "SELECT done_at FROM deals.crm_resyncs WHERE source = 'aws_ace' AND record_id = $1",
        opportunity,
    )
    assert request["done_at"] is not None


async def test_a_deal_in_a_configured_second_pipeline_is_won(
    infra: Infra, configured_deals: str
) -> None:
    deal = uuid.uuid4().int % 10**9 + 4 * 10**10
    at = datetime.now(UTC) - timedelta(minutes=1)
    events = [
        hubspot_property_change(deal, "amount", "18000", at),
        hubspot_property_change(deal, "dealstage", "1034567", at),
        hubspot_property_change(deal, "dealstage", "1034572", at + timedelta(seconds=30)),
        hubspot_property_change(deal + 1, "dealstage", "1034599", at),
    ]
    body = json.dumps(events).encode()
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(
            f"{configured_deals}/crm/hubspot", content=body, headers=hubspot_headers(body)
        )
    assert answer.status_code == 202, answer.text
    items = answer.json()["items"]
    assert [i["outcome"] for i in items] == ["accepted", "accepted", "accepted", "refused"]
    assert items[3]["reason"].startswith("[3].propertyValue: unknown stage '1034599'")
    assert items[3]["reason"].endswith("map it to open, won or lost in DEALS_HUBSPOT_STAGES)")
    row = await eventually(
        lambda: projected_crm_deal(infra, f"hubspot:{HUBSPOT_PORTAL}:{deal}", status="won"),
        what="the deal won in its pipeline",
    )
    assert (row["stage"], str(row["amount"])) == ("closed_won", "18000.0000")


async def test_a_partner_center_event_is_fetched_and_projected(
    infra: Infra,
    configured_deals: str,
    partner_center: PartnerCenterReferrals,
    crm_senders: CrmSenders,
) -> None:
    referral = str(uuid.uuid4())
    partner_center.put(referral, datetime.now(UTC) - timedelta(minutes=1))
    partner_center.referrals[referral]["name"] = "Named by its event"
    event = microsoft_event("referral-created", referral, datetime.now(UTC))
    answer = await _post_microsoft(configured_deals, crm_senders, event)
    assert answer.status_code == 202, answer.text
    [item] = answer.json()["items"]
    assert (item["outcome"], item["deal_key"], item["reason"]) == (
        "resync",
        f"microsoft:{referral}",
        f"event.EventName 'referral-created' names referral {referral} without its fields: it "
        "is fetched (GET engagements/referrals/<id>)",
    )
    row = await eventually(
        lambda: projected_crm_deal(infra, f"microsoft:{referral}", name="Named by its event"),
        what="the fetched referral projected",
    )
    assert (row["customer_name"], row["stage"], row["customer_domain"]) == (
        "Fabrikam Inc",
        "qualification",
        "fabrikam.com",
    )
    [request] = await admin_fetch(
        infra,
        "SELECT done_at FROM deals.crm_resyncs WHERE source = 'microsoft' AND record_id = $1",
        referral,
    )
    assert request["done_at"] is not None
    assert any(r["path"] == f"{partner_center.PATH}/{referral}" for r in partner_center.requests)
