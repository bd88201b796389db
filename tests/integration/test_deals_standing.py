"""On real deals processes, Kafka and Postgres: a partner waits out the re-registration
cooldown after its registration expires (others do not), an expelled partner's registrations
stop protecting their customers (closed, recorded and announced), and a suspended partner
keeps its holds without extending them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from shared.events.partners import PartnerChange, PartnerStatus
from shared.topics import PARTNER_LIFECYCLE
from tests.support.crm import salesforce_cdc
from tests.support.deals import (
    approved,
    crm_deal_projected,
    deliver_salesforce,
    fresh_partners,
    link_crm_deal,
    partner_notifications,
    register,
    registration_announcements,
    registration_request,
    registration_status,
)
from tests.support.factories import partner_state_changed
from tests.support.infra import Infra
from tests.support.kafka import publish
from tests.support.polling import eventually
from tests.support.processes import ADMIN, auth

pytestmark = pytest.mark.integration


def customer(run: str, name: str) -> dict[str, Any]:
    return registration_request(f"{name}{run} Corp", f"{name.lower()}-{run}.example")


async def stored(conn: Any, sql: str, *args: Any) -> Any:
    return await conn.fetchval(sql, *args)


async def partner_becomes(
    infra: Infra, conn: Any, partner: str, status: PartnerStatus, version: int, reason: str = ""
) -> None:
    """Onboarding announces the partner's new status; deals has projected it on return."""
    change = {
        PartnerStatus.EXPELLED: PartnerChange.EXPELLED,
        PartnerStatus.SUSPENDED: PartnerChange.SUSPENDED,
    }.get(status, PartnerChange.REINSTATED)
    event = partner_state_changed(
        partner_id=partner, status=status, version=version, change=change, reason=reason
    )
    await publish(infra, PARTNER_LIFECYCLE, [event], subject=partner, source="onboarding")

    async def projected() -> bool:
        sql = "SELECT version FROM deals.partners WHERE partner_id = $1"
        return bool(await stored(conn, sql, partner) == version)

    await eventually(projected, what=f"deals projects {partner} {status.value}")


async def test_a_partner_waits_out_the_cooldown_after_its_registration_expires(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    run, (holder, other) = await fresh_partners(infra, "cool-a", "cool-b")
    body = customer(run, "Fourthcoffee")
    deals = deals_instances[0]
    async with httpx.AsyncClient(timeout=30) as client:
        first = await approved(client, deals, holder, body)
        await admin_db.execute(
            "UPDATE deals.registrations SET expires_at = now() - interval '1 second'"
            " WHERE registration_id = $1",
            first["registration_id"],
        )
        expired_sql = (
            "SELECT expires_at FROM deals.registrations WHERE registration_id = $1"
            " AND status = 'expired'"
        )
        ended: datetime = await eventually(
            lambda: stored(admin_db, expired_sql, first["registration_id"]), what="expiry"
        )
        again = ended.astimezone(UTC) + timedelta(days=30)
        expected = (
            f"this partner's registration {first['registration_id']} on this customer expired"
            f" at {ended.astimezone(UTC).isoformat()}: under the re-registration cooldown (30"
            f" days, policy 2026-11-roe-1) this partner may register this customer again from"
            f" {again.isoformat()}"
        )
        # The holder, at once: refused with the date, on the dry run too; nothing stored.
        for path in ("/registrations", "/registrations/check"):
            refused = await client.post(f"{deals}{path}", headers=auth(holder), json=body)
            assert refused.status_code == 409, refused.text
            assert refused.json()["detail"] == expected
        count_sql = "SELECT count(*) FROM deals.registrations WHERE partner_id = $1"
        assert await stored(admin_db, count_sql, holder) == 1
        # Another partner is not held back: the customer is free for it at once.
        await approved(client, deals, other, body)
        # Another product of the customer is another deal.
        ai = body | {"products": ["ai"]}
        assert (await register(client, deals, holder, ai)).status_code == 201
        # Once the cooldown is over the holder registers again, decided as anyone would be
        # (here: the other partner now holds the customer).
        await admin_db.execute(
            "UPDATE deals.registrations SET expires_at = now() - interval '30 days 1 second'"
            " WHERE registration_id = $1",
            first["registration_id"],
        )
        later = await register(client, deals, holder, body)
        assert later.status_code == 201, later.text
        assert later.json()["status"] == "rejected"


async def test_an_expelled_partners_registrations_stop_protecting_their_customers(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    run, (expelled, other) = await fresh_partners(infra, "expel", "next")
    body = customer(run, "Woodgrove")
    deals = deals_instances[0]
    started = datetime.now(UTC)
    async with httpx.AsyncClient(timeout=30) as client:
        held = await approved(client, deals, expelled, body)
        registration_id = held["registration_id"]
        check = f"{deals}/registrations/check"

        async def would_be() -> str:
            answer = await client.post(check, headers=auth(other), json=body)
            return str(answer.json()["would_be"])

        assert await would_be() == "rejected"  # an active partner's hold turns others away
        # A partner the projection already says is expelled, its registration still approved
        # (expelled before deals closed them): its hold turns no one away.
        await admin_db.execute(
            "UPDATE deals.partners SET status = 'expelled' WHERE partner_id = $1", expelled
        )
        assert await would_be() == "approved"
        await admin_db.execute(
            "UPDATE deals.partners SET status = 'active' WHERE partner_id = $1", expelled
        )
        assert await would_be() == "rejected"

        await partner_becomes(infra, admin_db, expelled, PartnerStatus.EXPELLED, 2, "fraud")
        assert await registration_status(admin_db, registration_id) == "expired"
        history = await client.get(
            f"{deals}/registrations/{registration_id}/history", headers=ADMIN
        )
        entry = history.json()[-1]
        told = (
            f"partner {expelled} is expelled: its registrations no longer protect their customers"
        )
        assert (entry["what"], entry["previous_status"], entry["status"]) == (
            "expired",
            "approved",
            "expired",
        )
        assert (entry["principal_kind"], entry["principal"]) == ("system", "partner-lifecycle")
        assert entry["reasons"] == [f"{told} (fraud)"]
        assert entry["evidence"]["partner_status"] == "expelled"
        # What the partner is told (it reads no more: its access is revoked, shared/access.py).
        told_sql = (
            "SELECT partner_reasons FROM deals.registration_ledger WHERE registration_id = $1"
            " ORDER BY seq DESC LIMIT 1"
        )
        assert await stored(admin_db, told_sql, registration_id) == [told]
        await approved(client, deals, other, body)
    events = await registration_announcements(infra, registration_id, 2, since=started)
    assert [e["data"]["status"] for e in events] == ["approved", "expired"]
    assert events[1]["data"]["reason"] == f"{told} (fraud)"
    notes = await partner_notifications(infra, expelled, "expired", since=started)
    assert [e["data"]["body"] for e in notes if e["data"]["kind"] == "expired"] == [told]


async def test_a_registration_never_approved_stays_expired_when_a_close_before_it_is_heard(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    """Found in review: a registration awaiting review, closed as expired when its partner was
    expelled, became `won` on a close the CRM made before the expulsion and deals heard after:
    the rule for an approved registration expired before its close was heard took it for one."""
    run, (partner,) = await fresh_partners(infra, "latex")
    body = customer(run, "Tailspin") | {"amount": "900000.00"}  # above the limit: review
    deals = deals_instances[0]
    record_id = f"006LX{run}"
    deal_key = f"salesforce:{record_id}"
    fields = {
        "StageName": "Qualification",
        "Amount": 900000.0,
        "CurrencyIsoCode": "USD",
        "Account_Name__c": body["customer_name"],
        "Account_Website__c": f"https://{body['customer_domain']}",
    }
    async with httpx.AsyncClient(timeout=30) as client:
        created = await register(client, deals, partner, body)
        assert created.json()["status"] == "pending_review", created.text
        registration_id = created.json()["registration_id"]
        opened = datetime.now(UTC) - timedelta(days=7)
        await deliver_salesforce(client, deals, salesforce_cdc(record_id, "CREATE", opened, fields))
        await crm_deal_projected(admin_db, deal_key, lambda row: row["status"] == "open", "open")
        linked = await link_crm_deal(client, deals, partner, registration_id, deal_key)
        assert linked.status_code == 200, linked.text
        closed_at = datetime.now(UTC) - timedelta(minutes=1)
        await partner_becomes(infra, admin_db, partner, PartnerStatus.EXPELLED, 2, "fraud")
        assert await registration_status(admin_db, registration_id) == "expired"
        won = salesforce_cdc(record_id, "UPDATE", closed_at, {"StageName": "Closed Won"})
        await deliver_salesforce(client, deals, won)
        await crm_deal_projected(admin_db, deal_key, lambda row: row["status"] == "won", "won")
    assert await registration_status(admin_db, registration_id) == "expired"


async def test_a_suspended_partners_registration_is_not_approved_by_a_review(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    """Found in review: a review approved a suspended partner's pending registration with a
    fresh window, which an extension, the lesser grant, is refused."""
    run, (partner,) = await fresh_partners(infra, "susr")
    body = customer(run, "Litware") | {"amount": "900000.00"}  # above the auto-approval limit
    deals = deals_instances[0]
    async with httpx.AsyncClient(timeout=30) as client:
        created = await register(client, deals, partner, body)
        assert created.json()["status"] == "pending_review", created.text
        review = f"{deals}/registrations/{created.json()['registration_id']}/review"
        await partner_becomes(infra, admin_db, partner, PartnerStatus.SUSPENDED, 2, "audit")
        refused = await client.post(review, params={"approve": "true"}, headers=ADMIN)
        assert refused.status_code == 409
        assert refused.json()["detail"].startswith("partner is suspended: none of its")
        await partner_becomes(infra, admin_db, partner, PartnerStatus.ACTIVE, 3)
        reviewed = await client.post(review, params={"approve": "true"}, headers=ADMIN)
        assert reviewed.json()["status"] == "approved", reviewed.text


async def test_a_suspended_partner_keeps_its_holds_but_extends_none(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    run, (suspended, other) = await fresh_partners(infra, "susp", "wait")
    body = customer(run, "Adatum")
    deals = deals_instances[0]
    async with httpx.AsyncClient(timeout=30) as client:
        held = await approved(client, deals, suspended, body)
        extension = f"{deals}/registrations/{held['registration_id']}/extension"
        await partner_becomes(infra, admin_db, suspended, PartnerStatus.SUSPENDED, 2, "audit")
        check = await client.post(f"{deals}/registrations/check", headers=auth(other), json=body)
        assert check.json()["would_be"] == "rejected"  # a suspension may be lifted: it holds
        # The partner's own token is refused at the edge (403, shared/access.py) once its
        # access view refreshes; a channel manager, or the partner before that, meets the rule.
        refused = await client.post(extension, headers=ADMIN)
        assert refused.status_code == 409
        assert refused.json()["detail"] == (
            "partner is suspended: its registrations keep their protection until their window"
            " ends, but none is extended until it may register again"
        )
        await partner_becomes(infra, admin_db, suspended, PartnerStatus.ACTIVE, 3)
        assert (await client.post(extension, headers=ADMIN)).status_code == 200


async def test_a_registration_its_partner_may_no_longer_hold_is_neither_approved_nor_extended(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    """Found in review: a partner whose certified person left (onboarding withdrew the product)
    had its registration waiting for review approved, and extended one it held, where the same
    registration submitted then was refused."""
    run, (partner,) = await fresh_partners(infra, "auth")
    deals = deals_instances[0]
    async with httpx.AsyncClient(timeout=30) as client:
        held = await approved(client, deals, partner, customer(run, "Wingtip"))
        waiting = customer(run, "Proseware") | {"amount": "900000.00"}  # above the limit
        created = await register(client, deals, partner, waiting)
        assert created.json()["status"] == "pending_review", created.text
        withdrawn = partner_state_changed(
            partner_id=partner,
            version=2,
            change=PartnerChange.AUTHORISATIONS_CHANGED,
            products=("ai",),
        )
        await publish(infra, PARTNER_LIFECYCLE, [withdrawn], subject=partner, source="onboarding")

        async def projected() -> bool:
            sql = "SELECT version FROM deals.partners WHERE partner_id = $1"
            return bool(await stored(admin_db, sql, partner) == 2)

        await eventually(projected, what="deals projects the withdrawn product")
        review = f"{deals}/registrations/{created.json()['registration_id']}/review"
        refused = await client.post(review, params={"approve": "true"}, headers=ADMIN)
        assert refused.status_code == 409, refused.text
        assert refused.json()["detail"].startswith(
            "partner is not authorised for product(s) data now"
        )
        extension = f"{deals}/registrations/{held['registration_id']}/extension"
        not_extended = await client.post(extension, headers=auth(partner))
        assert not_extended.status_code == 409, not_extended.text
        assert "not authorised for product(s) data now" in not_extended.json()["detail"]
        assert await registration_status(admin_db, created.json()["registration_id"]) == (
            "pending_review"
        )


async def test_a_partner_reinstated_on_appeal_registers_its_former_customers_at_once(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    """Found in review: the registrations an expulsion closed counted for the re-registration
    cooldown, so a partner whose expulsion was reversed on appeal waited 30 days for its own
    customers while every other partner could register them at once. The partner did not let
    them run out: its expulsion ended them."""
    run, (partner,) = await fresh_partners(infra, "appeal")
    body = customer(run, "Tailspin")
    deals = deals_instances[0]
    async with httpx.AsyncClient(timeout=30) as client:
        held = await approved(client, deals, partner, body)
        await partner_becomes(infra, admin_db, partner, PartnerStatus.EXPELLED, 2, "review")
        assert await registration_status(admin_db, held["registration_id"]) == "expired"
        await partner_becomes(infra, admin_db, partner, PartnerStatus.ACTIVE, 3, "appeal upheld")

        async def registered() -> httpx.Response | None:
            # The partner's access comes back once the instance's access view refreshes (a
            # 403 until then); the cooldown would answer 409.
            answer = await register(client, deals, partner, body)
            return None if answer.status_code == 403 else answer

        again = await eventually(registered, what="the reinstated partner's access back")
        assert again.status_code == 201, again.text
        assert again.json()["status"] == "approved", again.text
