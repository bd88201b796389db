"""Deals' trust boundary on real processes: a CRM link is verified against the CRM projection
(customer, holder, amount) and only the registration's own partner may make it; a conflict
answer tells a partner only the kind of conflict, never who or what it is with, while channel
managers see the whole evidence."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.crm import salesforce_cdc
from tests.support.deals import (
    approved,
    crm_deal_projected,
    deliver_salesforce,
    fresh_partners,
    link_crm_deal,
    register,
    registration_request,
)
from tests.support.infra import Infra
from tests.support.outbox import event_bytes, event_json
from tests.support.processes import ADMIN, auth

pytestmark = pytest.mark.integration


def customer_name(run: str, name: str) -> str:
    """A customer name no other customer of the run resembles (the check also matches names)."""
    return f"{name} {uuid.uuid5(uuid.NAMESPACE_URL, name + run).hex[:12]}"


def body(run: str, name: str, **overrides: Any) -> dict[str, Any]:
    request = registration_request(customer_name(run, name), f"{name.lower()}-{run}.example")
    return request | overrides


async def crm_deal(
    client: httpx.AsyncClient,
    deals: str,
    admin_db: Any,
    run: str,
    name: str,
    *,
    amount: float = 12000.0,
    owner: str | None = None,
) -> str:
    """A Salesforce opportunity on this run's `name` customer, in the CRM projection: its key."""
    record_id = f"006{name[:3]}{run}"
    fields: dict[str, Any] = {
        "StageName": "Qualification",
        "Amount": amount,
        "CurrencyIsoCode": "USD",
        "Account_Name__c": customer_name(run, name),
        "Account_Website__c": f"https://{name.lower()}-{run}.example",
    }
    if owner is not None:
        fields["OwnerId"] = owner
    event = salesforce_cdc(record_id, "CREATE", datetime.now(UTC) - timedelta(days=1), fields)
    await deliver_salesforce(client, deals, event)
    deal_key = f"salesforce:{record_id}"
    await crm_deal_projected(admin_db, deal_key, lambda row: row["amount"] is not None)
    return deal_key


async def test_a_partner_cannot_take_another_customers_crm_deal(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    """The attack: a partner links its own registration (on another customer) to a CRM deal it
    found, to become the deal's sourcing partner. Refused at creation and through the link."""
    run, (_victim, attacker) = await fresh_partners(infra, "vic", "att")
    deals = deals_instances[0]
    async with httpx.AsyncClient(timeout=30) as client:
        deal_key = await crm_deal(client, deals, admin_db, run, "Victim")
        at_creation = await register(
            client, deals, attacker, body(run, "Other", crm_deal_key=deal_key)
        )
        assert at_creation.status_code == 409, at_creation.text
        assert "no CRM deal" in at_creation.json()["detail"]
        own = (await register(client, deals, attacker, body(run, "Other"))).json()
        later = await link_crm_deal(client, deals, attacker, own["registration_id"], deal_key)
        assert later.status_code == 409, later.text
        # An unknown deal key answers exactly as another customer's deal does.
        unknown = await link_crm_deal(
            client, deals, attacker, own["registration_id"], f"salesforce:006none{run}"
        )
        assert unknown.status_code == 409
        assert unknown.json()["detail"].replace(f"salesforce:006none{run}", "KEY") == (
            later.json()["detail"].replace(deal_key, "KEY")
        )
    linked = await admin_db.fetchval(
        "SELECT count(*) FROM deals.registrations WHERE crm_deal_key = $1", deal_key
    )
    assert linked == 0


async def test_a_held_crm_deal_cannot_be_linked_again_nor_another_partners_registration(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    run, (holder, second) = await fresh_partners(infra, "hold", "sec")
    deals = deals_instances[0]
    async with httpx.AsyncClient(timeout=30) as client:
        deal_key = await crm_deal(client, deals, admin_db, run, "Held")
        created = await register(client, deals, holder, body(run, "Held"))
        registration_id = created.json()["registration_id"]
        # Another partner may not link the holder's registration (it is not found for them).
        foreign = await link_crm_deal(client, deals, second, registration_id, deal_key)
        assert foreign.status_code == 404
        linked = await link_crm_deal(client, deals, holder, registration_id, deal_key)
        assert linked.status_code == 200, linked.text
        assert (linked.json()["status"], linked.json()["reason"]) == (
            "approved",
            f"linked to CRM deal {deal_key}",
        )
        # The same customer, another product: no conflict, but the deal is held.
        taken = await register(
            client, deals, second, body(run, "Held", products=["ai"], crm_deal_key=deal_key)
        )
        assert taken.status_code == 409
        assert "linked to another registration" in taken.json()["detail"]
        assert taken.json()["detail"].startswith(f"no CRM deal {deal_key} this registration")
        assert leaks(taken.text, holder, registration_id) == []
    holders = await admin_db.fetch(
        "SELECT registration_id FROM deals.registrations WHERE crm_deal_key = $1", deal_key
    )
    assert [r["registration_id"] for r in holders] == [registration_id]


async def test_an_amount_the_crm_disagrees_with_sends_the_link_to_review(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    run, (partner,) = await fresh_partners(infra, "amt")
    deals = deals_instances[0]
    async with httpx.AsyncClient(timeout=30) as client:
        deal_key = await crm_deal(client, deals, admin_db, run, "Amount", amount=3000.0)
        created = await register(client, deals, partner, body(run, "Amount", crm_deal_key=deal_key))
        assert created.status_code == 201
        decision = created.json()
        assert decision["status"] == "pending_review"
        # The partner hears that its registration differs, not the CRM's amount (found in
        # review: the vendor's figure was in the partner's reasons, even on a rejection).
        assert (
            decision["reasons"][-1] == "the registration differs from the CRM deal it names: review"
        )
        assert "3000" not in created.text
        # Within the tolerance the link is trusted.
        close = await crm_deal(client, deals, admin_db, run, "Close", amount=12100.0)
        await approved(client, deals, partner, body(run, "Close", crm_deal_key=close))
        # Linked later, an approved registration goes to review with the reason.
        later_key = await crm_deal(client, deals, admin_db, run, "Later", amount=90000.0)
        later = await approved(client, deals, partner, body(run, "Later"))
        linked = await link_crm_deal(client, deals, partner, later["registration_id"], later_key)
        assert linked.status_code == 200
        assert linked.json()["status"] == "pending_review"
        assert "90000" not in linked.text
        url = f"{deals}/registrations/{later['registration_id']}"
        as_partner = (await client.get(url, headers=auth(partner))).json()
        as_manager = (await client.get(url, headers=ADMIN)).json()
        assert "90000" not in str(as_partner)
        assert "differs from CRM deal" in as_manager["reasons"][-1]
    stored = await admin_db.fetchrow(
        "SELECT status, crm_deal_key FROM deals.registrations WHERE registration_id = $1",
        later["registration_id"],
    )
    assert (stored["status"], stored["crm_deal_key"]) == ("pending_review", later_key)


def leaks(answer: str, *secrets: str) -> list[str]:
    return [secret for secret in secrets if secret in answer]


async def test_a_partner_probing_a_competitors_customer_learns_nothing_identifying(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    """The probe attack: a partner dry-runs (and then registers) customers another partner and a
    direct rep work; every answer names the kind of conflict only. Channel managers see all."""
    run, (incumbent, prober) = await fresh_partners(infra, "inc", "probe")
    rep = f"005rep{run}"
    deals = deals_instances[0]
    async with httpx.AsyncClient(timeout=30) as client:
        held = await approved(client, deals, incumbent, body(run, "Target"))
        secrets = (incumbent, held["registration_id"], rep)
        dry = await client.post(
            f"{deals}/registrations/check", headers=auth(prober), json=body(run, "Target")
        )
        assert dry.status_code == 200
        assert dry.json()["would_be"] == "rejected"
        assert dry.json()["conflicts"] == [
            {
                "kind": "partner",
                "summary": "conflict with another partner",
                "matched_on": "domain",
                "reference": None,
                "party": None,
                "similarity": None,
                "registered_at": None,
            }
        ]
        assert "conflict with another partner" in dry.json()["reasons"][0]
        decided = await register(client, deals, prober, body(run, "Target"))
        assert decided.json()["status"] == "rejected"
        mine = await client.get(
            f"{deals}/registrations/{decided.json()['registration_id']}", headers=auth(prober)
        )
        listed = await client.get(f"{deals}/registrations", headers=auth(prober))

        deal_key = await crm_deal(client, deals, admin_db, run, "Direct", owner=rep)
        direct = await client.post(
            f"{deals}/registrations/check", headers=auth(prober), json=body(run, "Direct")
        )
        assert direct.json()["would_be"] == "pending_review"
        assert [c["summary"] for c in direct.json()["conflicts"]] == ["direct sales"]
        for answer in (dry, decided, mine, listed, direct):
            assert answer.status_code in (200, 201)
            assert leaks(answer.text, *secrets, deal_key, str(held["registration_id"])) == []

        # Channel managers see the whole evidence on the same routes.
        seen = await client.post(
            f"{deals}/registrations/check?partner_id={prober}",
            headers=ADMIN,
            json=body(run, "Target"),
        )
        conflict = seen.json()["conflicts"][0]
        assert (conflict["reference"], conflict["party"]) == (held["registration_id"], incumbent)
        assert conflict["registered_at"] is not None
        assert held["registration_id"] in seen.json()["reasons"][0]
        stored = await client.get(
            f"{deals}/registrations/{decided.json()['registration_id']}", headers=ADMIN
        )
        assert stored.json()["conflicts"][0]["party"] == incumbent
        direct_seen = await client.post(
            f"{deals}/registrations/check?partner_id={prober}",
            headers=ADMIN,
            json=body(run, "Direct"),
        )
        assert (direct_seen.json()["conflicts"][0]["party"], deal_key) == (
            rep,
            direct_seen.json()["conflicts"][0]["reference"],
        )

    # The partner's decision notification says no more than its answer did.
    notes = await admin_db.fetch(
        """SELECT value, value_codec FROM deals.outbox
           WHERE topic = 'notifications.partner.v1'"""
    )
    told = [
        event["data"]
        for event in map(event_json, notes)
        if decided.json()["registration_id"] in json.dumps(event)
    ]
    assert [n["kind"] for n in told] == ["conflict"]
    assert leaks(json.dumps(told), *secrets) == []


async def test_the_overlap_hint_to_another_partner_names_neither_partner_nor_registration(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    run, (working, newcomer) = await fresh_partners(infra, "work", "new")
    deals = deals_instances[0]
    async with httpx.AsyncClient(timeout=30) as client:
        await approved(client, deals, working, body(run, "Shared"))
        second = await approved(client, deals, newcomer, body(run, "Shared", products=["ai"]))
    notes = await admin_db.fetch(
        """SELECT value, value_codec FROM deals.outbox
           WHERE topic = 'notifications.partner.v1' AND message_key = $1""",
        working,
    )
    hints = [text for text in (event_bytes(n).decode() for n in notes) if "overlap_hint" in text]
    assert len(hints) == 1
    hint = hints[0]
    assert leaks(hint, newcomer, second["registration_id"]) == []
