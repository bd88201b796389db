"""Deals lifecycle on real processes, Kafka and Postgres: a registration follows its CRM
opportunity to won or lost, expires automatically, is extended under policy, and announces all
of it to partners; a poison CRM event is dead-lettered with its reason while the stream goes on."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from shared.events import Envelope
from shared.events.crm import CrmDealChanged, CrmSource, DealStage
from shared.outbox import make_producer
from shared.topics import (
    CRM_DEALS,
    DEAL_OPPORTUNITIES,
    PARTNER_NOTIFICATIONS,
    dead_letter_topic,
)
from tests.support.crm import salesforce_cdc
from tests.support.deals import (
    crm_deal_projected,
    deliver_salesforce,
    fresh_partners,
    partner_notifications,
    register,
    registration_announcements,
    registration_moved_to,
    registration_reaches,
    registration_request,
    registration_status,
)
from tests.support.infra import Infra
from tests.support.kafka import wait_for_keyed
from tests.support.polling import eventually
from tests.support.processes import ADMIN, auth

pytestmark = pytest.mark.integration


def registration_body(run: str, **overrides: Any) -> dict[str, Any]:
    request = registration_request(f"Q{run} Lifecycle Industries", f"lifecycle-{run}.example")
    return request | overrides


async def registered(
    client: httpx.AsyncClient, deals: str, partner: str, run: str, **overrides: Any
) -> Any:
    """`partner` registers this run's deal at the deals instance `deals`: the decision."""
    return (await register(client, deals, partner, registration_body(run, **overrides))).json()


async def onboarded_and_registered(infra: Infra, deals: str, name: str) -> tuple[str, Any]:
    """A new partner (`p-{name}-<run>`), once deals knows it, registers its run's deal at the
    deals instance `deals`: the partner and the decision."""
    run, (partner,) = await fresh_partners(infra, name)
    async with httpx.AsyncClient(timeout=30) as client:
        return partner, await registered(client, deals, partner, run)


async def opened(
    client: httpx.AsyncClient, deals: str, admin_db: Any, run: str, record_id: str, at: datetime
) -> str:
    """This run's customer's opportunity `record_id` opened in Salesforce at `at` (12 000 USD,
    qualifying), delivered to the deals instance `deals` and projected: its deal key (a
    registration links only to an opportunity the CRM projection knows)."""
    account = {
        "Account_Name__c": f"Q{run} Lifecycle Industries",
        "Account_Website__c": f"https://lifecycle-{run}.example",
    }
    opening = salesforce_cdc(
        record_id,
        "CREATE",
        at,
        {"StageName": "Qualification", "Amount": 12000.0, "CurrencyIsoCode": "USD"} | account,
    )
    await deliver_salesforce(client, deals, opening)
    deal_key = f"salesforce:{record_id}"
    await crm_deal_projected(admin_db, deal_key, lambda row: row["amount"] is not None)
    return deal_key


@pytest.mark.parametrize(
    ("stage", "amount", "decided", "outcome", "reason"),
    [
        ("Closed Won", "12000.00", "approved", "won", "closed won"),
        ("Closed Lost", "12000.00", "approved", "lost", "closed lost"),
        # Above the gold auto-approval limit, still awaiting review: a lost deal leaves nothing
        # to protect (a won one waits for the review: tests/integration/test_deals_governance.py).
        (
            "Closed Lost",
            "900000.00",
            "pending_review",
            "lost",
            "closed lost while the registration awaited review",
        ),
    ],
)
async def test_a_registration_closes_with_its_crm_opportunity(
    infra: Infra,
    deals_instances: list[str],
    admin_db: Any,
    stage: str,
    amount: str,
    decided: str,
    outcome: str,
    reason: str,
) -> None:
    started = datetime.now(UTC)
    run, (partner,) = await fresh_partners(infra, "close")
    record_id = f"006{run}"
    closed = started + timedelta(seconds=2)
    async with httpx.AsyncClient(timeout=30) as client:
        at = started - timedelta(seconds=2)
        deal_key = await opened(client, deals_instances[1], admin_db, run, record_id, at)
        created = await registered(
            client, deals_instances[0], partner, run, crm_deal_key=deal_key, amount=amount
        )
        assert created["status"] == decided
        registration_id = created["registration_id"]
        # Delivered newest first: the stale "open" must not reopen the closed deal.
        await deliver_salesforce(
            client,
            deals_instances[1],
            salesforce_cdc(record_id, "UPDATE", closed, {"StageName": stage, "Amount": 13000.0}),
            salesforce_cdc(
                record_id, "UPDATE", started + timedelta(seconds=1), {"StageName": "Qualification"}
            ),
        )

    await registration_reaches(admin_db, registration_id, outcome)
    changes = await registration_moved_to(infra, registration_id, outcome, since=started)
    closing = next(e for e in changes if e["type"] == "registration.status_changed.v1")
    assert closing["data"]["previous_status"] == decided
    assert closing["data"]["reason"] == f"linked CRM opportunity {deal_key} {reason}"

    states = await wait_for_keyed(
        infra.kafka,
        DEAL_OPPORTUNITIES.name,
        deal_key,
        lambda events: any(e["data"]["status"] in ("won", "lost") for e in events),
        since=started,
    )
    final = states[-1]["data"]
    won = stage == "Closed Won"
    assert (final["status"], final["amount"], final["stage"]) == (
        "won" if won else "lost",
        "13000.0000",
        DealStage.CLOSED_WON.value if won else DealStage.CLOSED_LOST.value,
    )
    assert [(r["registration_id"], r["status"]) for r in final["registrations"]] == [
        (registration_id, outcome)
    ]
    assert [s["data"]["revision"] for s in states] == sorted(
        {s["data"]["revision"] for s in states}
    )


@pytest.mark.parametrize(
    ("window_ends", "outcome"),
    [
        # Closed inside the window, heard after the expiry job ran: won, as it was approved
        # then (found in review: it stayed expired and its partner lost the sourced credit).
        (timedelta(seconds=30), "won"),
        # Closed after the window ended, heard before the expiry job ran: not won (left to the
        # expiry job, which may have run meanwhile).
        (timedelta(seconds=-30), "not won"),
    ],
)
async def test_a_close_inside_the_protection_window_counts_whenever_it_is_heard(
    infra: Infra,
    deals_instances: list[str],
    admin_db: Any,
    window_ends: timedelta,
    outcome: str,
) -> None:
    started = datetime.now(UTC)
    run, (partner,) = await fresh_partners(infra, "late-close")
    record_id = f"006L{run}"
    closed = started - timedelta(minutes=1)
    async with httpx.AsyncClient(timeout=30) as client:
        at = started - timedelta(minutes=5)
        deal_key = await opened(client, deals_instances[1], admin_db, run, record_id, at)
        created = await registered(client, deals_instances[0], partner, run, crm_deal_key=deal_key)
        assert created["status"] == "approved"
        registration_id = created["registration_id"]
        # Its window ends `window_ends` after the close; inside it, the expiry job has run
        # (played here: the status it writes), before the close is heard.
        ends = closed + window_ends
        expired = "expired" if ends < datetime.now(UTC) and window_ends > timedelta(0) else None
        await admin_db.execute(
            """UPDATE deals.registrations SET expires_at = $2, status = coalesce($3, status)
               WHERE registration_id = $1""",
            registration_id,
            ends,
            expired,
        )
        await deliver_salesforce(
            client,
            deals_instances[1],
            salesforce_cdc(record_id, "UPDATE", closed, {"StageName": "Closed Won"}),
        )
    await crm_deal_projected(admin_db, deal_key, lambda row: row["status"] == "won")
    if outcome == "won":
        await registration_reaches(admin_db, registration_id, "won")
        changes = await registration_moved_to(infra, registration_id, "won", since=started)
        closing = next(e for e in changes if e["type"] == "registration.status_changed.v1")
        assert closing["data"]["previous_status"] == "expired"
        assert closing["data"]["reason"] == (
            f"linked CRM opportunity {deal_key} closed won inside its protection window (the "
            "close was heard after the window's end)"
        )
    else:
        assert await registration_status(admin_db, registration_id) in ("approved", "expired")


async def test_registrations_warn_then_expire_automatically_and_tell_the_partner(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    started = datetime.now(UTC)
    partner, created = await onboarded_and_registered(infra, deals_instances[0], "exp")
    registration_id = created["registration_id"]
    assert created["status"] == "approved"
    # The protection window is 90 days; bring its end within the 7-day warning horizon...
    await admin_db.execute(
        "UPDATE deals.registrations SET expires_at = now() + interval '2 days' "
        "WHERE registration_id = $1",
        registration_id,
    )
    await partner_notifications(infra, partner, "expiring_soon", since=started)
    # ...then into the past.
    await admin_db.execute(
        "UPDATE deals.registrations SET expires_at = now() - interval '1 second' "
        "WHERE registration_id = $1",
        registration_id,
    )

    await registration_reaches(admin_db, registration_id, "expired")
    notes = await partner_notifications(infra, partner, "expired", since=started)
    # Warned once (the expiry job ran many times in between), then expired once.
    assert [e["data"]["kind"] for e in notes] == [
        "registration_approved",
        "expiring_soon",
        "expired",
    ]
    assert all(e["data"]["registration_id"] == registration_id for e in notes)
    # Expiry ran on two instances; it happened (and was announced) exactly once.
    events = await registration_announcements(infra, registration_id, 2, since=started)
    assert [e["data"]["status"] for e in events] == ["approved", "expired"]


async def test_extension_follows_policy(deals_instances: list[str], infra: Infra) -> None:
    partner, created = await onboarded_and_registered(infra, deals_instances[0], "ext")
    async with httpx.AsyncClient(timeout=30) as client:
        url = f"{deals_instances[1]}/registrations/{created['registration_id']}/extension"
        assert (await client.post(url, headers=auth(f"{partner}-other"))).status_code == 404
        # Asked as read: the window's end the caller saw. Another end (extended since: a form
        # sent twice) is a 409 that changes nothing, so one request extends once.
        naive = {"read_until": "2026-12-20T10:00:00"}  # a moment without its offset names none
        assert (await client.post(url, params=naive, headers=auth(partner))).status_code == 422
        stale = {"read_until": "2020-01-01T00:00:00+00:00"}
        not_as_read = await client.post(url, params=stale, headers=auth(partner))
        assert not_as_read.status_code == 409, not_as_read.text
        assert "it was extended (or ended) since; nothing changed" in not_as_read.text
        as_read = {"read_until": created["expires_at"]}
        extended = await client.post(url, params=as_read, headers=auth(partner))
        assert extended.status_code == 200, extended.text
        again = await client.post(url, params=as_read, headers=auth(partner))
        assert again.status_code == 409  # the double click: extended once
        assert "as read: it was extended" in again.text
        before = datetime.fromisoformat(created["expires_at"])
        assert datetime.fromisoformat(extended.json()["expires_at"]) - before == timedelta(days=30)
        refused = await client.post(url, headers=auth(partner))
        assert refused.status_code == 409
        assert refused.json()["detail"] == "the policy allows 1 extension(s) and none are left"


async def notifications_for(infra: Infra, partner: str, count: int, since: datetime) -> list[Any]:
    events = await wait_for_keyed(
        infra.kafka,
        PARTNER_NOTIFICATIONS.name,
        partner,
        lambda events: len(events) >= count,
        since=since,
    )
    return sorted((e["data"]["kind"], e["data"]["recipient"]) for e in events)


async def test_co_sell_notifications_reach_partners_account_owners_and_overlapping_partners(
    infra: Infra, deals_instances: list[str]
) -> None:
    started = datetime.now(UTC)
    run, (first, second, third, fourth) = await fresh_partners(infra, "n1", "n2", "n3", "n4")
    rep_b, rep_c = f"rep-b-{run}", f"rep-c-{run}"

    names = {"a": "Alderwood", "b": "Birchfield", "c": "Cedarbrook"}  # not similar names

    def account(letter: str) -> dict[str, Any]:
        return {
            "customer_name": f"{names[letter]} {run} Holdings",
            "customer_domain": f"account-{letter}-{run}.example",
        }

    async with httpx.AsyncClient(timeout=30) as client:

        async def register_for(partner: str, letter: str, product: str) -> Any:
            return await registered(
                client, deals_instances[0], partner, run, products=[product], **account(letter)
            )

        async def check(partner: str, letter: str) -> Any:
            """What deals would decide now if `partner` registered account `letter`."""
            response = await client.post(
                f"{deals_instances[1]}/registrations/check",
                headers=auth(partner),
                json=registration_body(run, **account(letter)),
            )
            return response.json()

        async def rep_opportunity(letter: str, owner: str, stage: str) -> None:
            fields = {
                "StageName": stage,
                "OwnerId": owner,
                "Account_Name__c": account(letter)["customer_name"],
                "Account_Website__c": f"https://www.{account(letter)['customer_domain']}",
            }
            change = salesforce_cdc(f"006{letter}{run}", "CREATE", started, fields)
            await deliver_salesforce(client, deals_instances[1], change)

        # Account A: two partners on different products; the first hears of the overlap.
        assert (await register_for(first, "a", "data"))["status"] == "approved"
        assert (await register_for(second, "a", "ai"))["status"] == "approved"

        # Account B: a direct rep's open opportunity came first.
        await rep_opportunity("b", rep_b, "Qualification")

        async def conflict_visible() -> Any:
            return (await check(third, "b"))["conflicts"]

        assert [c["kind"] for c in await eventually(conflict_visible)] == ["direct_sales"]
        third_decision = await register_for(third, "b", "data")
        assert third_decision["status"] == "pending_review"
        # The partner hears "direct sales", never the rep or the rep's opportunity.
        assert any("direct sales" in reason for reason in third_decision["reasons"])
        assert rep_b not in json.dumps(third_decision)
        assert f"006b{run}" not in json.dumps(third_decision)

        # Account C: the rep owns the account (a lost deal, nothing open): co-sell, not conflict.
        await rep_opportunity("c", rep_c, "Closed Lost")

        async def account_known() -> bool:
            return (await check(fourth, "c"))["would_be"] == "approved" and bool(
                await _owner_projected(infra, account("c")["customer_domain"])
            )

        await eventually(account_known)
        assert (await register_for(fourth, "c", "data"))["status"] == "approved"

    assert await notifications_for(infra, first, 2, started) == [
        ("overlap_hint", first),
        ("registration_approved", first),
    ]
    assert await notifications_for(infra, second, 1, started) == [("registration_approved", second)]
    assert await notifications_for(infra, third, 2, started) == [
        ("direct_sales_conflict", rep_b),
        ("pending_review", third),
    ]
    assert await notifications_for(infra, fourth, 2, started) == [
        ("co_sell", rep_c),
        ("registration_approved", fourth),
    ]


async def _owner_projected(infra: Infra, domain: str) -> bool:
    conn = await asyncpg.connect(infra.admin_dsn)
    try:
        owner = await conn.fetchval(
            "SELECT owner FROM deals.crm_deals WHERE customer_domain = $1", domain
        )
    finally:
        await conn.close()
    return owner is not None


async def test_a_poison_crm_event_is_dead_lettered_and_the_stream_goes_on(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    started = datetime.now(UTC)
    run = uuid.uuid4().hex[:8]
    poison_key, good_key = f"salesforce:poison-{run}", f"salesforce:good-{run}"
    poison = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "pollinate/deals",
        "type": CrmDealChanged.event_type,
        "subject": poison_key,
        "time": started.isoformat(),
        "data": {"source": "salesforce", "source_id": f"poison-{run}", "stage": "haggling"},
    }
    good = Envelope.wrap(
        CrmDealChanged(
            source=CrmSource.SALESFORCE,
            source_id=f"good-{run}",
            source_event_id=f"good-{run}",
            source_timestamp=started,
            change_type="created",
            stage=DealStage.PROSPECTING,
        ),
        source="pollinate/deals",
        subject=good_key,
    )
    producer = make_producer(infra.kafka, "test-crm")
    await producer.start()
    try:
        await producer.send_and_wait(
            CRM_DEALS.name, json.dumps(poison).encode(), key=poison_key.encode()
        )
        await producer.send_and_wait(CRM_DEALS.name, good.to_bytes(), key=good_key.encode())
    finally:
        await producer.stop()

    await crm_deal_projected(admin_db, good_key, lambda row: row["stage"] == "prospecting")
    dead = await wait_for_keyed(
        infra.kafka,
        dead_letter_topic("deals").name,
        poison_key,
        lambda events: len(events) >= 1,
        since=started,
    )
    assert dead[0]["id"] == poison["id"]
    reason = await admin_db.fetchval(
        """SELECT headers->>'dlq.reason' FROM deals.outbox
           WHERE topic = 'deals.dlq.v1' AND message_key = $1""",
        poison_key,
    )
    assert "invalid crm.deal.changed.v1 payload" in reason
    assert "source_event_id: Field required" in reason
    assert "stage: Input should be" in reason


async def test_channel_managers_can_run_expiry_as_of_a_moment(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    partner, created = await onboarded_and_registered(infra, deals_instances[0], "asof")
    registration_id = created["registration_id"]
    async with httpx.AsyncClient(timeout=30) as client:
        url = f"{deals_instances[1]}/admin/expiry/run"
        assert (await client.post(url, headers=auth(partner))).status_code == 403
        naive = await client.post(url, headers=ADMIN, params={"as_of": "2030-01-01T00:00:00"})
        assert naive.status_code == 422
        later = datetime.fromisoformat(created["expires_at"]) + timedelta(seconds=1)
        ran = await client.post(url, headers=ADMIN, params={"as_of": later.isoformat()})
    assert ran.status_code == 200
    assert ran.json()["expired"] >= 1
    assert await registration_status(admin_db, registration_id) == "expired"
