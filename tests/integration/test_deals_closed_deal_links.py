"""A CRM link to a deal that has already closed, on real processes: a registration submitted
after the close may not source the deal (found from outside: a partner named a deal a direct
rep had won and took 100% sourcing credit); one submitted before the close takes the outcome
at once when linked (found from outside: it stayed approved, expired, and attribution clawed
back an honest partner's credit)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from shared.topics import DEAL_OPPORTUNITIES
from tests.support.crm import salesforce_cdc
from tests.support.deals import (
    crm_deal_projected,
    deliver_salesforce,
    fresh_partners,
    link_crm_deal,
    partner_notifications,
    register,
    registration_moved_to,
    registration_request,
)
from tests.support.infra import Infra
from tests.support.kafka import wait_for_keyed
from tests.support.polling import eventually
from tests.support.processes import ADMIN

pytestmark = pytest.mark.integration


def account(run: str) -> dict[str, str]:
    return {
        "customer_name": f"Q{run} Closedwell Pharma",
        "customer_domain": f"closedwell-{run}.example",
    }


def registration(run: str, **overrides: Any) -> dict[str, Any]:
    """A registration of the run's customer, for the CRM deal's amount."""
    return registration_request(**account(run), amount="20000.00", **overrides)


async def closed_deal(
    client: httpx.AsyncClient,
    deals: str,
    admin_db: Any,
    run: str,
    *,
    closed_at: datetime,
    stage: str = "Closed Won",
    owner: str | None = None,
) -> str:
    """A Salesforce opportunity on the run's customer, opened a week ago and closed at
    `closed_at` (the CRM's clock), once the projection holds it closed: its key."""
    record_id = f"006CL{run}"
    deal_key = f"salesforce:{record_id}"
    fields: dict[str, Any] = {
        "StageName": "Qualification",
        "Amount": 20000.0,
        "CurrencyIsoCode": "USD",
        "Account_Name__c": account(run)["customer_name"],
        "Account_Website__c": f"https://{account(run)['customer_domain']}",
    }
    if owner is not None:
        fields["OwnerId"] = owner
    await deliver_salesforce(
        client,
        deals,
        salesforce_cdc(record_id, "CREATE", closed_at - timedelta(days=7), fields),
        salesforce_cdc(record_id, "UPDATE", closed_at, {"StageName": stage}),
    )
    await crm_deal_projected(
        admin_db, deal_key, lambda row: row["status"] in ("won", "lost"), "closed"
    )
    return deal_key


async def test_a_deal_closed_before_the_registration_cannot_be_linked_to_it(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    run, (partner,) = await fresh_partners(infra, "late")
    deals = deals_instances[0]
    async with httpx.AsyncClient(timeout=30) as client:
        closed_at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
        deal_key = await closed_deal(
            client, deals, admin_db, run, closed_at=closed_at, owner=f"rep-{run}"
        )
        at_creation = await register(
            client, deals, partner, registration(run, crm_deal_key=deal_key)
        )
        assert at_creation.status_code == 409, at_creation.text
        # The partner meets the one refusal for every link it may not make (found in review:
        # the rep's outcome and close time told it what the vendor's deal had become).
        assert at_creation.json()["detail"] == (
            f"no CRM deal {deal_key} this registration may link to (it is unknown, another"
            " customer's, linked to another registration, or closed before this registration"
            " was submitted)"
        )
        # Registered without the key, then linked: the registration still came after the close.
        own = await register(client, deals, partner, registration(run))
        assert own.status_code == 201, own.text
        later = await link_crm_deal(client, deals, partner, own.json()["registration_id"], deal_key)
        assert later.status_code == 409, later.text
        assert later.json()["detail"] == at_creation.json()["detail"]
        # A channel manager is told precisely why.
        told = await client.post(
            f"{deals}/registrations/{own.json()['registration_id']}/crm-link",
            headers=ADMIN,
            json={"crm_deal_key": deal_key},
        )
        assert told.status_code == 409, told.text
        assert told.json()["detail"] == (
            f"CRM deal {deal_key} closed won at {closed_at.isoformat()}, before this"
            " registration was submitted: a registration submitted after its deal closed"
            " cannot source it"
        )
    linked = await admin_db.fetchval(
        "SELECT count(*) FROM deals.registrations WHERE crm_deal_key = $1", deal_key
    )
    assert linked == 0


@pytest.mark.parametrize(("stage", "outcome"), [("Closed Won", "won"), ("Closed Lost", "lost")])
async def test_a_registration_linked_after_its_deal_closed_takes_the_outcome_at_once(
    infra: Infra, deals_instances: list[str], admin_db: Any, stage: str, outcome: str
) -> None:
    started = datetime.now(UTC)
    run, (partner,) = await fresh_partners(infra, "tardy")
    deals = deals_instances[0]
    async with httpx.AsyncClient(timeout=30) as client:
        created = await register(client, deals, partner, registration(run))
        assert created.json()["status"] == "approved", created.text
        registration_id = created.json()["registration_id"]
        deal_key = await closed_deal(
            client, deals, admin_db, run, closed_at=datetime.now(UTC), stage=stage
        )
        linked = await link_crm_deal(client, deals, partner, registration_id, deal_key)
    assert linked.status_code == 200, linked.text
    assert linked.json()["status"] == outcome
    assert linked.json()["reason"] == (
        f"linked to CRM deal {deal_key}; linked CRM opportunity {deal_key} closed {outcome}"
    )
    stored = await admin_db.fetchrow(
        "SELECT status, crm_deal_key FROM deals.registrations WHERE registration_id = $1",
        registration_id,
    )
    assert (stored["status"], stored["crm_deal_key"]) == (outcome, deal_key)
    history = await admin_db.fetch(
        """SELECT what, status, principal_kind, evidence FROM deals.registration_ledger
           WHERE registration_id = $1 ORDER BY seq""",
        registration_id,
    )
    assert [(h["what"], h["status"], h["principal_kind"]) for h in history] == [
        ("decided", "approved", "partner"),
        ("linked", "approved", "partner"),
        ("closed", outcome, "crm"),
    ]
    # Downstream hears the close as from a CRM close: the status change, the opportunity's
    # state naming the registration with its outcome, and the partner's notification.
    changes = await registration_moved_to(infra, registration_id, outcome, since=started)
    closing = changes[-1]["data"]
    assert (closing["previous_status"], closing["crm_deal_key"]) == ("approved", deal_key)
    await wait_for_keyed(
        infra.kafka,
        DEAL_OPPORTUNITIES.name,
        deal_key,
        lambda events: any(
            (r["registration_id"], r["status"]) == (registration_id, outcome)
            for e in events
            for r in e["data"]["registrations"]
        ),
        since=started,
    )
    await partner_notifications(infra, partner, f"registration_{outcome}", since=started)


async def test_a_link_made_while_the_deal_closes_waits_for_the_close_and_takes_it(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    """Found in review: a link read the deal beside a projection closing it, saw it open, and
    the projection did not see the link yet: the registration stayed approved on a closed deal
    (then expired, and attribution clawed its credit back). The close is played here by its
    row update held open; the link waits for it and takes the outcome."""
    run, (partner,) = await fresh_partners(infra, "race")
    deals = deals_instances[0]
    record_id = f"006RC{run}"
    deal_key = f"salesforce:{record_id}"
    fields = {
        "StageName": "Qualification",
        "Amount": 20000.0,
        "CurrencyIsoCode": "USD",
        "Account_Name__c": account(run)["customer_name"],
        "Account_Website__c": f"https://{account(run)['customer_domain']}",
    }
    async with httpx.AsyncClient(timeout=60) as client:
        created = await register(client, deals, partner, registration(run))
        assert created.json()["status"] == "approved", created.text
        opened = datetime.now(UTC) - timedelta(days=7)
        await deliver_salesforce(client, deals, salesforce_cdc(record_id, "CREATE", opened, fields))
        await crm_deal_projected(admin_db, deal_key, lambda row: row["status"] == "open", "open")
        async with admin_db.transaction():
            await admin_db.execute(
                "UPDATE deals.crm_deals SET status = 'won', closed_at = now() WHERE deal_key = $1",
                deal_key,
            )
            link = asyncio.create_task(
                link_crm_deal(client, deals, partner, created.json()["registration_id"], deal_key)
            )

            me = await admin_db.fetchval("SELECT pg_backend_pid()")

            async def waiting_for_the_close() -> bool:
                blocked = (
                    "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))"
                )
                return bool(await admin_db.fetchval(blocked, me))

            await eventually(waiting_for_the_close, what="the link to wait for the close")
        linked = await link
    assert linked.status_code == 200, linked.text
    assert linked.json()["status"] == "won"
