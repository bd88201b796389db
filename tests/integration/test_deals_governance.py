"""Deal-registration governance on real processes, Kafka and Postgres: every decision and
status change of a registration is an append-only ledger entry with its principal, read back as
its history (a partner sees what it was told, a channel manager everything), and every change
is told to the partner and the account's direct owner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from shared.business_days import add_business_days
from shared.topics import PARTNER_NOTIFICATIONS
from tests.support.crm import aws_ace_headers, aws_ace_opportunity, salesforce_cdc
from tests.support.deals import (
    approved,
    crm_deal_projected,
    deliver_salesforce,
    fresh_partners,
    link_crm_deal,
    partner_notifications,
    register,
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


def body(run: str, **overrides: Any) -> dict[str, Any]:
    # 900 000 is above the gold auto-approval limit: manual review.
    request = registration_request(
        f"G{run} Governance Works", f"governance-{run}.example", amount="900000.00"
    )
    return request | overrides


def without_country(request: dict[str, Any]) -> dict[str, Any]:
    """The registration request with no customer_country at all."""
    return {k: v for k, v in request.items() if k != "customer_country"}


async def crm_opportunity(
    client: httpx.AsyncClient, deals: str, admin_db: Any, run: str, owner: str, at: datetime
) -> str:
    """An open Salesforce opportunity on the run's customer, owned by `owner`, once projected:
    its deal key."""
    record_id = f"006g{run}"
    fields = {
        "StageName": "Qualification",
        "Amount": 900000.0,
        "CurrencyIsoCode": "USD",
        "OwnerId": owner,
        "Account_Name__c": f"G{run} Governance Works",
        "Account_Website__c": f"https://governance-{run}.example",
    }
    await deliver_salesforce(client, deals, salesforce_cdc(record_id, "CREATE", at, fields))
    deal_key = f"salesforce:{record_id}"
    await crm_deal_projected(admin_db, deal_key, lambda row: row["owner"] is not None)
    return deal_key


async def close_won(client: httpx.AsyncClient, deals: str, deal_key: str, at: datetime) -> None:
    record_id = deal_key.split(":", 1)[1]
    await deliver_salesforce(
        client, deals, salesforce_cdc(record_id, "UPDATE", at, {"StageName": "Closed Won"})
    )


@asynccontextmanager
async def policy_in_force(
    client: httpx.AsyncClient, deals: str, document: dict[str, Any]
) -> AsyncIterator[str]:
    """The policy `document` proposed and activated for the block, the version in force before
    activated again after it (the other tests run under that version): that version."""
    before = (await client.get(f"{deals}/policy", headers=ADMIN)).json()["version"]
    proposed = await client.post(
        f"{deals}/admin/policy/versions", headers=ADMIN, json={"document": document}
    )
    assert proposed.status_code == 201, proposed.text
    try:
        activated = await client.post(
            f"{deals}/admin/policy/versions/{document['version']}/activate", headers=ADMIN
        )
        assert activated.status_code == 200
        yield before
    finally:
        restored = await client.post(
            f"{deals}/admin/policy/versions/{before}/activate", headers=ADMIN
        )
        assert restored.status_code == 200


async def lapsed_in_review(admin_db: Any, registration_id: str) -> None:
    """The registration as if submitted 100 days ago: its 90-day window over ten days ago,
    still awaiting review."""
    await admin_db.execute(
        """UPDATE deals.registrations
           SET submitted_at = now() - interval '100 days', expires_at = now() - interval '10 days'
           WHERE registration_id = $1""",
        registration_id,
    )


async def test_a_registrations_history_reads_back_in_order_with_principals(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    """create -> review -> extension -> win: four entries, in order, each with its principal,
    policy version and reasons; the partner and the direct owner hear of every change."""
    started = datetime.now(UTC)
    run, (partner,) = await fresh_partners(infra, "gov")
    rep = f"rep-gov-{run}"
    deals, other = deals_instances
    async with httpx.AsyncClient(timeout=30) as client:
        deal_key = await crm_opportunity(
            client, other, admin_db, run, rep, started - timedelta(days=1)
        )
        # The rep's opportunity predates the registration: a direct-sales conflict, reviewed.
        created = await register(client, deals, partner, body(run, crm_deal_key=deal_key))
        assert created.status_code == 201, created.text
        registration_id = created.json()["registration_id"]
        assert created.json()["status"] == "pending_review"
        reviewed = await client.post(
            f"{other}/registrations/{registration_id}/review",
            params={"approve": "true", "note": "co-sell agreed with the account team"},
            headers=ADMIN,
        )
        assert reviewed.json()["status"] == "approved"
        url = f"{deals}/registrations/{registration_id}"
        before = (await client.get(url, headers=auth(partner))).json()
        extended = await client.post(f"{url}/extension", headers=auth(partner))
        assert extended.status_code == 200
        after = (await client.get(url, headers=auth(partner))).json()
        # What the policy in force still allows (one extension by default): what the portal's
        # button follows (found in review: it assumed one, whatever the policy said).
        assert (before["extensions_left"], after["extensions_left"]) == (1, 0)
        await close_won(client, other, deal_key, started + timedelta(seconds=1))
        await registration_reaches(admin_db, registration_id, "won")
        url = f"/registrations/{registration_id}/history"
        as_manager = (await client.get(f"{deals}{url}", headers=ADMIN)).json()
        as_partner = (await client.get(f"{other}{url}", headers=auth(partner))).json()
        stranger = await client.get(f"{deals}{url}", headers=auth(f"{partner}-other"))
        view = (
            await client.get(f"{deals}/registrations/{registration_id}", headers=auth(partner))
        ).json()

    assert stranger.status_code == 404
    assert [
        (e["what"], e["previous_status"], e["status"], e["principal_kind"], e["principal"])
        for e in as_manager
    ] == [
        ("decided", None, "pending_review", "partner", partner),
        ("reviewed", "pending_review", "approved", "manager", "channel-manager@tests"),
        ("extended", "approved", "approved", "partner", partner),
        ("closed", "approved", "won", "crm", deal_key),
    ]
    assert [e["seq"] for e in as_manager] == sorted(e["seq"] for e in as_manager)
    assert all(e["policy_version"] == "2026-11-roe-1" for e in as_manager)
    assert as_manager[1]["reasons"] == ["manual review: co-sell agreed with the account team"]
    assert as_manager[3]["reasons"] == [f"linked CRM opportunity {deal_key} closed won"]
    # The manager sees the rep and its opportunity in the evidence; the partner never does.
    assert rep in str(as_manager[0]["reasons"])
    assert deal_key in str(as_manager[0]["evidence"])
    assert [e["principal"] for e in as_partner] == [partner, None, partner, deal_key]
    assert rep not in str(as_partner)
    assert as_partner[0]["evidence"]["conflicts_considered"] == [
        {"kind": "direct_sales", "summary": "direct sales"}
    ]
    # The registration shows its current decision: the close, with its reasons.
    assert view["decision"]["what"] == "closed"
    assert view["reasons"] == [f"linked CRM opportunity {deal_key} closed won"]

    notes = await wait_for_keyed(
        infra.kafka,
        PARTNER_NOTIFICATIONS.name,
        partner,
        lambda events: sum(e["data"]["kind"] == "registration_won" for e in events) == 2,
        since=started,
    )
    told = sorted((e["type"], e["data"]["kind"], e["data"]["recipient"]) for e in notes)
    v1, v2 = "notification.partner.v1", "notification.partner.v2"
    assert told == sorted(
        [
            (v1, "pending_review", partner),
            (v1, "direct_sales_conflict", rep),
            (v1, "registration_approved", partner),
            (v1, "registration_approved", rep),
            (v2, "registration_extended", partner),
            (v2, "registration_extended", rep),
            (v2, "registration_won", partner),
            (v2, "registration_won", rep),
        ]
    )
    approved = next(e for e in notes if e["data"]["kind"] == "registration_approved")
    assert approved["data"]["body"] == "manual review: co-sell agreed with the account team"


async def test_a_registration_awaiting_review_when_its_deal_is_won_is_decided_by_the_review(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    started = datetime.now(UTC)
    run, (partner,) = await fresh_partners(infra, "govw")
    rep = f"rep-govw-{run}"
    deals, other = deals_instances
    async with httpx.AsyncClient(timeout=30) as client:
        deal_key = await crm_opportunity(client, other, admin_db, run, rep, started)
        created = await register(client, deals, partner, body(run, crm_deal_key=deal_key))
        registration_id = created.json()["registration_id"]
        assert created.json()["status"] == "pending_review"
        await close_won(client, other, deal_key, started + timedelta(seconds=1))

        async def told_of_the_close() -> bool:
            return bool(
                await admin_db.fetchval(
                    "SELECT deal_outcome = 'won' FROM deals.registrations"
                    " WHERE registration_id = $1",
                    registration_id,
                )
            )

        await eventually(told_of_the_close)
        waiting = (
            await client.get(f"{deals}/registrations/{registration_id}", headers=auth(partner))
        ).json()
        assert waiting["status"] == "pending_review"
        assert waiting["decision"]["what"] == "closed"
        assert "the review decides it" in waiting["reasons"][0]
        reviewed = await client.post(
            f"{other}/registrations/{registration_id}/review",
            params={"approve": "true"},
            headers=ADMIN,
        )
    assert reviewed.json()["status"] == "won"
    notes = await partner_notifications(infra, partner, "registration_won", since=started)
    kinds = [e["data"]["kind"] for e in notes if e["data"]["recipient"] == partner]
    assert kinds == ["pending_review", "pending_review", "registration_won"]


async def test_a_deal_won_and_reopened_during_the_review_leaves_an_approval_approved(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    """Found in review: the outcome stored when the deal closed outlived its reopening, and
    the approval made the registration won on an open deal (closed lost later, it stayed won)."""
    started = datetime.now(UTC)
    run, (partner,) = await fresh_partners(infra, "govo")
    deals, other = deals_instances
    async with httpx.AsyncClient(timeout=30) as client:
        deal_key = await crm_opportunity(client, other, admin_db, run, f"rep-govo-{run}", started)
        created = await register(client, deals, partner, body(run, crm_deal_key=deal_key))
        registration_id = created.json()["registration_id"]
        assert created.json()["status"] == "pending_review"
        await close_won(client, other, deal_key, started + timedelta(seconds=1))
        record_id = deal_key.split(":", 1)[1]
        reopened = salesforce_cdc(
            record_id, "UPDATE", started + timedelta(seconds=2), {"StageName": "Negotiation/Review"}
        )
        await deliver_salesforce(client, other, reopened)

        async def open_again() -> bool:
            return bool(
                await admin_db.fetchval(
                    "SELECT r.deal_outcome = 'won' AND d.status = 'open'"
                    " FROM deals.registrations r JOIN deals.crm_deals d ON d.deal_key = r.crm_deal_key"
                    " WHERE r.registration_id = $1",
                    registration_id,
                )
            )

        await eventually(open_again, what="the close told, then the deal open again")
        reviewed = await client.post(
            f"{deals}/registrations/{registration_id}/review",
            params={"approve": "true"},
            headers=ADMIN,
        )
    assert reviewed.json()["status"] == "approved", reviewed.text


async def test_a_review_approval_counts_the_protection_window_from_the_approval(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    """Found in review: the window ran from the submission, so a registration reviewed past
    its end was approved only to expire at the next run (its extension refused, its partner
    cooled down, and from the window's end other partners could register the customer)."""
    run, (partner,) = await fresh_partners(infra, "govw")
    deals = deals_instances[0]
    async with httpx.AsyncClient(timeout=30) as client:
        created = await register(client, deals, partner, body(run))
        registration_id = created.json()["registration_id"]
        assert created.json()["status"] == "pending_review"
        await lapsed_in_review(admin_db, registration_id)
        reviewed = await client.post(
            f"{deals}/registrations/{registration_id}/review",
            params={"approve": "true"},
            headers=ADMIN,
        )
        assert reviewed.status_code == 200, reviewed.text
        approved_at = datetime.now(UTC)
    assert reviewed.json()["status"] == "approved"
    ends = await admin_db.fetchval(
        "SELECT expires_at FROM deals.registrations WHERE registration_id = $1", registration_id
    )
    assert approved_at + timedelta(days=89) < ends <= approved_at + timedelta(days=90)


async def test_a_review_does_not_approve_over_a_hold_that_came_in_while_it_waited(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    """Found in review: a registration whose window ran out while it waited for review held
    nothing, another partner's registration was approved on the customer meanwhile, and the
    review's approval then made two exclusive holders of one customer and product."""
    run, (waiting, newcomer) = await fresh_partners(infra, "govl", "govn")
    deals, other = deals_instances
    async with httpx.AsyncClient(timeout=30) as client:
        created = await register(client, deals, waiting, body(run))
        registration_id = created.json()["registration_id"]
        assert created.json()["status"] == "pending_review"
        await lapsed_in_review(admin_db, registration_id)
        held = await approved(client, other, newcomer, body(run, amount="1000.00"))
        review = f"/registrations/{registration_id}/review"
        refused = await client.post(f"{deals}{review}", params={"approve": "true"}, headers=ADMIN)
        assert refused.status_code == 409, refused.text
        assert held["registration_id"] in refused.json()["detail"]
        assert "did not weigh" in refused.json()["detail"]
        assert await registration_status(admin_db, registration_id) == "pending_review"
        rejected = await client.post(
            f"{other}{review}", params={"approve": "false", "note": "lapsed"}, headers=ADMIN
        )
        assert rejected.json()["status"] == "rejected"


async def test_an_approval_after_a_later_return_to_review_keeps_what_was_left_of_the_window(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    """Found in review: an approved registration a later CRM link sent back to review was
    approved with its whole window counted again from the approval, past the extension limit,
    whenever its partner chose to link. It gets back what was left when the review began."""
    started = datetime.now(UTC)
    run, (partner,) = await fresh_partners(infra, "govx")
    rep = f"rep-govx-{run}"
    deals, other = deals_instances
    async with httpx.AsyncClient(timeout=30) as client:
        held = await approved(client, deals, partner, body(run, amount="1000.00"))
        registration_id = held["registration_id"]
        # Submitted 100 days ago and extended: 20 days of protection left.
        await admin_db.execute(
            """UPDATE deals.registrations
               SET submitted_at = now() - interval '100 days', expires_at = now() + interval '20 days'
               WHERE registration_id = $1""",
            registration_id,
        )
        deal_key = await crm_opportunity(client, other, admin_db, run, rep, started)
        linked = await link_crm_deal(client, deals, partner, registration_id, deal_key)
        assert linked.status_code == 200, linked.text
        assert await registration_status(admin_db, registration_id) == "pending_review"
        reviewed = await client.post(
            f"{other}/registrations/{registration_id}/review",
            params={"approve": "true", "note": "amount confirmed"},
            headers=ADMIN,
        )
        assert reviewed.json()["status"] == "approved", reviewed.text
        approved_at = datetime.now(UTC)
    ends = await admin_db.fetchval(
        "SELECT expires_at FROM deals.registrations WHERE registration_id = $1", registration_id
    )
    assert started + timedelta(days=20) <= ends <= approved_at + timedelta(days=20)


async def test_the_decision_ledger_is_append_only(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    run, (partner,) = await fresh_partners(infra, "gova")
    async with httpx.AsyncClient(timeout=30) as client:
        created = await register(client, deals_instances[0], partner, body(run, amount="1000.00"))
    registration_id = created.json()["registration_id"]
    for statement in (
        "UPDATE deals.registration_ledger SET reasons = '{}' WHERE registration_id = $1",
        "DELETE FROM deals.registration_ledger WHERE registration_id = $1",
    ):
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await admin_db.execute(statement, registration_id)
    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await admin_db.execute("TRUNCATE deals.registration_ledger CASCADE")
    entries = await admin_db.fetch(
        "SELECT what, status FROM deals.registration_ledger WHERE registration_id = $1",
        registration_id,
    )
    assert [tuple(e) for e in entries] == [("decided", "approved")]


async def test_a_repeat_registration_is_refused_with_the_live_ones_id_and_no_new_window(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    run, (partner,) = await fresh_partners(infra, "govr")
    deals, other = deals_instances
    async with httpx.AsyncClient(timeout=30) as client:
        first = await approved(client, deals, partner, body(run, amount="1000.00"))
        registration_id = first["registration_id"]
        # Again, by name only (no domain), at the other instance: the same customer.
        again = await register(
            client, other, partner, body(run, amount="1000.00", customer_domain=None)
        )
        dry_run = await client.post(
            f"{other}/registrations/check",
            headers=auth(partner),
            json=body(run, amount="1000.00"),
        )
        # Another product of the same customer is another deal.
        analytics = await register(
            client, deals, partner, body(run, amount="1000.00", products=["ai"])
        )
    assert again.status_code == 409
    assert dry_run.status_code == 409
    assert registration_id in again.json()["detail"]
    assert "a repeat gets no new protection window" in again.json()["detail"]
    assert analytics.status_code == 201
    count = await admin_db.fetchval(
        "SELECT count(*) FROM deals.registrations WHERE partner_id = $1", partner
    )
    assert count == 2


async def test_a_registration_without_a_country_for_a_regional_partner_goes_to_review(
    infra: Infra, deals_instances: list[str]
) -> None:
    run, (partner,) = await fresh_partners(infra, "govc")
    async with httpx.AsyncClient(timeout=30) as client:
        created = await register(
            client,
            deals_instances[0],
            partner,
            without_country(body(run, amount="1000.00")),
        )
    assert created.json()["status"] == "pending_review"
    assert created.json()["reasons"][0].startswith("customer_country is missing")


async def test_co_sell_and_overlap_hints_fire_on_a_name_match_too(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    """The rep's (lost) opportunity and the first partner's registration name the customer
    with other domains or none: alike names are the same customer."""
    started = datetime.now(UTC)
    run, (first, second) = await fresh_partners(infra, "govn1", "govn2")
    rep = f"rep-govn-{run}"
    deals, other = deals_instances
    async with httpx.AsyncClient(timeout=30) as client:
        fields = {
            "StageName": "Closed Lost",
            "OwnerId": rep,
            "Account_Name__c": f"Nameonly {run} Industries, Inc.",
        }
        await deliver_salesforce(
            client, other, salesforce_cdc(f"006n{run}", "CREATE", started, fields)
        )
        await crm_deal_projected(
            admin_db, f"salesforce:006n{run}", lambda row: row["owner"] is not None
        )
        a = await register(
            client,
            deals,
            first,
            body(run, customer_name=f"NAMEONLY {run} INDUSTRIES", amount="1000.00"),
        )
        b = await register(
            client,
            deals,
            second,
            body(
                run,
                customer_name=f"Nameonly {run} Industries Ltd",
                customer_domain=None,
                products=["ai"],
                amount="1000.00",
            ),
        )
    assert (a.json()["status"], b.json()["status"]) == ("approved", "approved")
    first_notes = await partner_notifications(infra, first, "overlap_hint", since=started)
    second_notes = await partner_notifications(infra, second, "co_sell", since=started)
    assert sorted((e["data"]["kind"], e["data"]["recipient"]) for e in first_notes) == [
        ("co_sell", rep),
        ("overlap_hint", first),
        ("registration_approved", first),
    ]
    assert sorted((e["data"]["kind"], e["data"]["recipient"]) for e in second_notes) == [
        ("co_sell", rep),
        ("registration_approved", second),
    ]


async def test_the_policy_is_a_versioned_document_proposed_validated_and_activated(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    run, (partner,) = await fresh_partners(infra, "govp")
    deals, other = deals_instances
    version = f"gov-{run}"
    stricter = {"version": version, "protection_days": 30, "missing_country": "refuse"}
    async with httpx.AsyncClient(timeout=30) as client:
        before = (await client.get(f"{deals}/policy", headers=auth(partner))).json()
        checked = await client.post(
            f"{deals}/admin/policy/validate", headers=ADMIN, json={"document": stricter}
        )
        invalid = await client.post(
            f"{deals}/admin/policy/validate",
            headers=ADMIN,
            json={"document": {"version": "x", "protection_dayz": 3}},
        )
        proposed = await client.post(
            f"{deals}/admin/policy/versions",
            headers=ADMIN,
            json={"document": stricter, "note": "a shorter window"},
        )
        again = await client.post(
            f"{other}/admin/policy/versions",
            headers=ADMIN,
            json={"document": {**stricter, "protection_days": 20}},
        )
        # Proposed is not in force: decisions stay under the version in force.
        assert (await client.get(f"{other}/policy", headers=ADMIN)).json()["version"] == (
            before["version"]
        )
        past = await client.post(
            f"{deals}/admin/policy/versions/{version}/activate",
            params={"at": "2020-01-01T00:00:00Z"},
            headers=ADMIN,
        )
        try:
            activated = await client.post(
                f"{deals}/admin/policy/versions/{version}/activate", headers=ADMIN
            )
            now_in_force = (await client.get(f"{other}/policy", headers=auth(partner))).json()
            decided = (await register(client, other, partner, body(run, amount="1000.00"))).json()
            refused = (
                await register(
                    client,
                    deals,
                    partner,
                    without_country(body(run, amount="1000.00", products=["ai"])),
                )
            ).json()
        finally:  # the other tests run under the version that was in force
            restored = await client.post(
                f"{deals}/admin/policy/versions/{before['version']}/activate", headers=ADMIN
            )
            assert restored.status_code == 200, restored.text
        history = (await client.get(f"{deals}/admin/policy/history", headers=ADMIN)).json()

    assert checked.status_code == 200
    assert checked.json()["changes"] == {
        "protection_days": [90, 30],
        "missing_country": ["review", "refuse"],
    }
    assert invalid.status_code == 422
    assert invalid.json()["detail"] == "unknown rules-of-engagement setting(s): protection_dayz"
    assert proposed.status_code == 201
    assert proposed.json()["document"]["protection_days"] == 30
    assert again.status_code == 409
    assert "never edited" in again.json()["detail"]
    assert past.status_code == 422
    assert activated.json()["version"] == version
    assert now_in_force["version"] == version
    assert decided["policy_version"] == version
    window = datetime.fromisoformat(decided["expires_at"]) - datetime.now(UTC)
    assert timedelta(days=29) < window <= timedelta(days=30)
    assert (refused["status"], refused["policy_version"]) == ("rejected", version)
    ledger = await admin_db.fetchval(
        "SELECT policy_version FROM deals.registration_ledger WHERE registration_id = $1",
        decided["registration_id"],
    )
    assert ledger == version
    mine = [a for a in history["activations"] if a["version"] == version]
    assert [a["activated_by"] for a in mine] == ["channel-manager@tests"]
    assert history["activations"][-1]["version"] == before["version"]
    assert any(
        v["version"] == version and v["note"] == "a shorter window" for v in history["versions"]
    )
    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await admin_db.execute(
            "UPDATE deals.policy_versions SET note = '' WHERE version = $1", version
        )


async def test_an_unreviewed_registration_past_its_deadline_is_escalated_then_decided(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    """Reminded before the deadline, escalated at it (an event, a history entry, reviewers and
    partner told), then decided as the policy in force says, as a system decision."""
    started = datetime.now(UTC)
    run, (partner,) = await fresh_partners(infra, "govs")
    deals, other = deals_instances
    async with httpx.AsyncClient(timeout=30) as client:
        created = (await register(client, deals, partner, body(run))).json()
        registration_id = created["registration_id"]
        view = (await client.get(f"{other}/registrations/{registration_id}", headers=ADMIN)).json()
        assert view["status"] == "pending_review"
        # Three business days (an amount review) on the default Monday-Friday calendar.
        decided_at = datetime.fromisoformat(view["decided_at"])
        assert datetime.fromisoformat(view["review_due_at"]) == add_business_days(
            decided_at, 3, frozenset({1, 2, 3, 4, 5}), frozenset()
        )
        queue = (await client.get(f"{deals}/admin/reviews?limit=500", headers=ADMIN)).json()
        assert registration_id in [r["registration_id"] for r in queue]
        dues = [r["review_due_at"] for r in queue if r["review_due_at"] is not None]
        assert dues == sorted(dues, key=datetime.fromisoformat)

        async def due_in(delta: str) -> None:
            await admin_db.execute(
                f"UPDATE deals.registrations SET review_due_at = now() + interval '{delta}'"
                " WHERE registration_id = $1",
                registration_id,
            )

        await due_in("1 hour")  # inside the 24-hour reminder window
        await partner_notifications(infra, partner, "review_reminder", since=started)
        version = f"gov-sla-{run}"
        lenient = {
            "version": version,
            "review_overdue_outcome": "approve_under_limit",
            "review_auto_approve_limit": "1000000",
        }
        async with policy_in_force(client, deals, lenient):
            await due_in("-1 second")
            await registration_reaches(admin_db, registration_id, "approved")
        history = (
            await client.get(
                f"{other}/registrations/{registration_id}/history", headers=auth(partner)
            )
        ).json()

    assert [(e["what"], e["status"], e["principal_kind"], e["principal"]) for e in history] == [
        ("decided", "pending_review", "partner", partner),
        ("escalated", "pending_review", "system", "review-sla"),
        ("auto_decided", "approved", "system", "review-sla"),
    ]
    assert history[2]["policy_version"] == version
    assert history[2]["reasons"][0].endswith("approved under policy (amount within 1000000)")
    changes = await registration_moved_to(infra, registration_id, "approved", since=started)
    assert [e["type"] for e in changes] == [
        "registration.decided.v1",
        "registration.review_escalated.v1",
        "registration.status_changed.v1",
    ]
    notes = await partner_notifications(infra, partner, "registration_approved", since=started)
    assert [(e["data"]["kind"], e["data"]["recipient"]) for e in notes] == [
        ("pending_review", partner),
        ("review_reminder", "channel-managers"),
        ("review_escalated", partner),
        ("review_escalated", "channel-managers"),
        ("registration_approved", partner),
    ]


async def test_an_overdue_review_for_a_conflict_is_never_approved_unseen(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    """Found in review: `approve_under_limit` approved every small overdue review, those sent
    to review for a conflict with another partner's hold too. In one run of the job, the
    amount review is approved and the conflict review stays for a channel manager."""
    run, (holder, alike, small) = await fresh_partners(infra, "govc", "govd", "gove")
    deals, other = deals_instances
    async with httpx.AsyncClient(timeout=30) as client:
        await approved(client, deals, holder, body(run, amount="1000.00"))
        # The same name on another domain: a possible conflict, reviewed.
        conflicted = await register(
            client,
            other,
            alike,
            body(run, amount="1000.00", customer_domain=f"alike-{run}.example"),
        )
        assert conflicted.json()["status"] == "pending_review", conflicted.text
        amount_review = await register(
            client,
            deals,
            small,
            registration_request(
                f"Govc{run} Elsewhere Ltd", f"elsewhere-{run}.example", amount="900000.00"
            ),
        )
        assert amount_review.json()["status"] == "pending_review", amount_review.text
        ids = [conflicted.json()["registration_id"], amount_review.json()["registration_id"]]
        await admin_db.execute(
            """UPDATE deals.registrations
               SET review_due_at = now() - interval '1 hour', review_escalated_at = now()
               WHERE registration_id = ANY($1::text[])""",
            ids,
        )
        lenient = {
            "version": f"gov-conflict-{run}",
            "review_overdue_outcome": "approve_under_limit",
            "review_auto_approve_limit": "1000000",
        }
        async with policy_in_force(client, deals, lenient):
            await registration_reaches(admin_db, ids[1], "approved")
            assert await registration_status(admin_db, ids[0]) == "pending_review"


async def test_a_backtest_of_a_stricter_window_reports_what_a_hand_calculation_says(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    """A seeded history (as the 90-day policy decided it) replayed under 30 days: the two
    registrations the hand calculation frees change, nothing else; nothing is written."""
    run, onboarded = await fresh_partners(infra, *(f"govb{p}" for p in "ABCDEF"))
    partners = dict(zip("ABCDEF", onboarded, strict=True))
    # A period of its own: 200 days somewhere in 1901-9000, chosen by the run.
    day0 = datetime(1901, 1, 1, 9, tzinfo=UTC) + timedelta(days=200 * (int(run[:6], 16) % 12000))
    customers = {"X": f"Xylo {run} Systems", "Y": f"Yarrow {run} Foods"}
    seeded = [  # (id, partner, customer, day, status as decided under 90 days)
        ("r1", "A", "X", 0, "approved"),
        ("r5", "E", "Y", 10, "approved"),
        ("r2", "B", "X", 20, "rejected"),
        ("r3", "C", "X", 45, "rejected"),
        ("r6", "F", "Y", 50, "rejected"),
        ("r4", "D", "X", 60, "rejected"),
        ("r7", "A", "X", 100, "approved"),
    ]
    held = []  # each registration's status as stored
    for rid, partner, customer, day, status in seeded:
        at = day0 + timedelta(days=day)
        expires = at + timedelta(days=90) if status == "approved" else None
        held.append("expired" if expires and expires <= datetime.now(UTC) else status)
        await admin_db.execute(
            """INSERT INTO deals.registrations (registration_id, partner_id, customer_name,
                   customer_domain, customer_country, name_key, products, amount, currency,
                   status, reasons, conflicts, policy_version, inputs, submitted_at,
                   decided_at, expires_at, updated_at)
               VALUES ($1, $2, $3, $4, 'US', $5, '{data}', 1000, 'USD', $6, $7, '[]',
                   '2026-11-roe-1', '{}', $8, $8, $9, $8)""",
            f"{rid}-{run}",
            partners[partner],
            customers[customer],
            f"{customer.lower()}-{run}.example",
            customers[customer].split()[0].lower(),
            # An approval whose 90 days are over has expired (else the expiry job would expire
            # it now, mid-test); the backtest reads the ledger's first decision, not this.
            held[-1],
            [f"originally {status}"],
            at,
            expires,
        )
        await admin_db.execute(
            """INSERT INTO deals.registration_ledger (registration_id, at, what, status,
                   principal_kind, principal, policy_version, reasons, partner_reasons)
               VALUES ($1, $2, 'decided', $3, 'partner', $4, '2026-11-roe-1', $5, $5)""",
            f"{rid}-{run}",
            at,
            status,
            partners[partner],
            [f"originally {status}"],
        )
    written = "SELECT count(*) FROM deals.registration_ledger WHERE registration_id LIKE $1"
    before = await admin_db.fetchval(written, f"%-{run}")
    period = {
        "since": day0.isoformat(),
        "until": (day0 + timedelta(days=200)).isoformat(),
    }
    async with httpx.AsyncClient(timeout=60) as client:
        same = await client.post(
            f"{deals_instances[0]}/admin/policy/backtest",
            headers=ADMIN,
            json={"document": {"version": f"same-{run}"}, **period},
        )
        stricter = await client.post(
            f"{deals_instances[1]}/admin/policy/backtest",
            headers=ADMIN,
            json={"document": {"version": f"strict-{run}", "protection_days": 30}, **period},
        )
        partner = await client.post(
            f"{deals_instances[1]}/admin/policy/backtest",
            headers=auth(partners["A"]),
            json={"document": {"version": f"strict-{run}"}, **period},
        )
        backwards = await client.post(
            f"{deals_instances[1]}/admin/policy/backtest",
            headers=ADMIN,
            json={"document": {"version": "v"}, "since": period["until"], "until": period["since"]},
        )
    assert same.status_code == 200, same.text
    assert (same.json()["replayed"], same.json()["changed"]) == (7, 0)
    result = stricter.json()
    assert result["replayed"] == 7
    assert [(c["registration_id"], c["before"], c["after"]) for c in result["changes"]] == [
        (f"r3-{run}", "rejected", "approved"),
        (f"r6-{run}", "rejected", "approved"),
    ]
    assert result["changes"][0]["reasons_before"] == ["originally rejected"]
    assert result["kinds"] == {
        "approved": {"before": 3, "after": 5, "changed": 0},
        "rejected": {"before": 4, "after": 2, "changed": 2},
    }
    assert partner.status_code == 403
    assert backwards.status_code == 422
    # It read only.
    assert await admin_db.fetchval(written, f"%-{run}") == before
    statuses = await admin_db.fetch(
        "SELECT status FROM deals.registrations WHERE registration_id LIKE $1 ORDER BY 1",
        f"%-{run}",
    )
    # (a period before today holds its approvals expired, one after today approved)
    assert sorted(s["status"] for s in statuses) == sorted(held)


async def test_an_extended_registration_still_holds_its_customer_after_its_first_window(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    run, (first, second) = await fresh_partners(infra, "gove1", "gove2")
    deals, other = deals_instances
    async with httpx.AsyncClient(timeout=30) as client:
        held = (await register(client, deals, first, body(run, amount="1000.00"))).json()
        # Registered 100 days ago and extended: its protection now ends in 20 days.
        await admin_db.execute(
            """UPDATE deals.registrations SET submitted_at = now() - interval '100 days',
                   expires_at = now() + interval '20 days', extensions_used = 1
               WHERE registration_id = $1""",
            held["registration_id"],
        )
        late = (await register(client, other, second, body(run, amount="1000.00"))).json()
    assert late["status"] == "rejected"
    assert late["reasons"][0].startswith("conflict with another partner")


async def test_a_hyperscaler_referrals_acceptance_deadline_drives_the_review_deadline(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    run, (partner,) = await fresh_partners(infra, "govh")
    deals, other = deals_instances
    now = datetime.now(UTC).replace(microsecond=0)
    referred = now - timedelta(hours=70)  # AWS wants an answer 72 hours after the referral
    opportunity = aws_ace_opportunity(f"O{run}")
    opportunity["getOpportunity"]["Customer"]["Account"].update(
        {"CompanyName": f"Hyper {run} Logistics GmbH", "WebsiteUrl": f"https://hyper-{run}.de"}
    )
    opportunity["getOpportunity"]["CreatedDate"] = referred.isoformat()
    opportunity["getOpportunity"]["LastModifiedDate"] = now.isoformat()
    deal_key = f"aws_ace:O{run}"
    async with httpx.AsyncClient(timeout=30) as client:
        delivered = await client.post(
            f"{other}/crm/aws-ace", json=opportunity, headers=aws_ace_headers()
        )
        assert delivered.status_code == 202, delivered.text

        await crm_deal_projected(admin_db, deal_key, lambda row: row["created_at"] is not None)
        created = await register(
            client,
            deals,
            partner,
            body(
                run,
                customer_name=f"Hyper {run} Logistics GmbH",
                customer_domain=f"hyper-{run}.de",
                customer_country="DE",
                crm_deal_key=deal_key,
            ),
        )
        assert created.json()["status"] == "pending_review", created.text
        view = (
            await client.get(
                f"{deals}/registrations/{created.json()['registration_id']}", headers=ADMIN
            )
        ).json()
    accept_by = referred + timedelta(hours=72)
    assert datetime.fromisoformat(view["acceptance_due_at"]) == accept_by
    assert datetime.fromisoformat(view["review_due_at"]) == accept_by  # sooner than 3 days


async def test_a_referral_linked_to_a_waiting_registration_brings_its_review_forward(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    """Found in review: a registration already pending review (its amount), then linked to an
    AWS referral whose acceptance deadline came sooner, kept its three-day deadline, and the
    referral could lapse unaccepted."""
    run, (partner,) = await fresh_partners(infra, "govk")
    deals, other = deals_instances
    now = datetime.now(UTC).replace(microsecond=0)
    referred = now - timedelta(hours=70)
    opportunity = aws_ace_opportunity(f"K{run}")
    opportunity["getOpportunity"]["Customer"]["Account"].update(
        {"CompanyName": f"Hyper {run} Freight GmbH", "WebsiteUrl": f"https://freight-{run}.de"}
    )
    opportunity["getOpportunity"]["CreatedDate"] = referred.isoformat()
    opportunity["getOpportunity"]["LastModifiedDate"] = now.isoformat()
    deal_key = f"aws_ace:K{run}"
    customer = {
        "customer_name": f"Hyper {run} Freight GmbH",
        "customer_domain": f"freight-{run}.de",
        "customer_country": "DE",
    }
    async with httpx.AsyncClient(timeout=30) as client:
        created = await register(client, deals, partner, body(run, **customer))
        assert created.json()["status"] == "pending_review", created.text
        registration_id = created.json()["registration_id"]
        delivered = await client.post(
            f"{other}/crm/aws-ace", json=opportunity, headers=aws_ace_headers()
        )
        assert delivered.status_code == 202, delivered.text
        await crm_deal_projected(admin_db, deal_key, lambda row: row["created_at"] is not None)
        linked = await link_crm_deal(client, deals, partner, registration_id, deal_key)
        assert linked.status_code == 200, linked.text
        view = (await client.get(f"{deals}/registrations/{registration_id}", headers=ADMIN)).json()
    accept_by = referred + timedelta(hours=72)
    assert datetime.fromisoformat(view["acceptance_due_at"]) == accept_by
    assert datetime.fromisoformat(view["review_due_at"]) == accept_by


async def test_a_crm_close_is_recorded_under_the_policy_version_in_force(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    started = datetime.now(UTC)
    run, (partner,) = await fresh_partners(infra, "govv")
    deals, other = deals_instances
    async with httpx.AsyncClient(timeout=30) as client:
        deal_key = await crm_opportunity(client, other, admin_db, run, f"rep-govv-{run}", started)
        created = (
            await register(
                client, deals, partner, body(run, amount="900000.00", crm_deal_key=deal_key)
            )
        ).json()
        registration_id = created["registration_id"]
        version = f"gov-close-{run}"
        async with policy_in_force(client, deals, {"version": version}) as before:
            await close_won(client, other, deal_key, started + timedelta(seconds=1))

            async def closed() -> bool:
                return bool(
                    await admin_db.fetchval(
                        "SELECT count(*) FROM deals.registration_ledger"
                        " WHERE registration_id = $1 AND what = 'closed'",
                        registration_id,
                    )
                )

            await eventually(closed)
    versions = await admin_db.fetch(
        "SELECT what, policy_version FROM deals.registration_ledger"
        " WHERE registration_id = $1 ORDER BY seq",
        registration_id,
    )
    assert [tuple(v) for v in versions] == [("decided", before), ("closed", version)]
