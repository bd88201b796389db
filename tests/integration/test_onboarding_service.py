"""Onboarding as a real process on real Kafka + Postgres: application -> qualification ->
checklist -> active; certifications -> competencies and authorisations; attribution credits on
Kafka -> tier changes; a reversal -> grace -> requalification demotion; bad input refused."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from shared.business_days import MONDAY_TO_FRIDAY, add_business_days
from shared.events import Envelope, EventPayload
from shared.events.attribution import CreditIssued
from shared.events.notifications import PartnerNotification
from shared.topics import ATTRIBUTION_CREDITS, PARTNER_NOTIFICATIONS
from tests.support import kafka
from tests.support.factories import credit_issued, credit_reversed
from tests.support.infra import Infra
from tests.support.kafka import send_envelopes
from tests.support.onboarding import (
    MIDDLING,
    SMALL_PROGRAM,
    PartnerSites,
    active_partner,
    admitted_partner,
    applications,
    certify,
    lifecycle_changes,
    onboarding_outbox,
    onboarding_proving_domains_fixtures,
    partner_view,
    strong_application,
    weak_application,
)
from tests.support.polling import eventually
from tests.support.processes import ADMIN
from tests.support.tokens import ENABLEMENT_SYSTEM

pytestmark = pytest.mark.integration


sites, onboarding = onboarding_proving_domains_fixtures("onboarding")


async def publish(infra: Infra, payload: EventPayload, key: str) -> Envelope[Any]:
    """The event as attribution publishes it, keyed by its deal."""
    (envelope,) = await kafka.publish(
        infra, ATTRIBUTION_CREDITS, [payload], subject=key, source="attribution"
    )
    return envelope


def credit(partner_id: str, deal_key: str, amount: str, currency: str = "USD") -> CreditIssued:
    at = datetime.now(UTC)
    return credit_issued(
        credit_id=f"cr_{uuid.uuid4().hex[:12]}",
        deal_key=deal_key,
        partner_id=partner_id,
        amount=amount,
        currency=currency,
        close_date=at.date(),
        issued_at=at,
        ingested_at=at - timedelta(milliseconds=250),
    )


async def admitted(client: httpx.AsyncClient, url: str, domain: str) -> str:
    return await admitted_partner(client, url, domain, ADMIN)


async def token_for(client: httpx.AsyncClient, url: str, partner_id: str) -> str:
    issued = await client.post(f"{url}/admin/partner-tokens/{partner_id}", headers=ADMIN)
    assert issued.status_code == 200, issued.text
    token: str = issued.json()["token"]
    return token


def auth_for(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def requalify(
    client: httpx.AsyncClient, url: str, partner_id: str, days: int
) -> dict[str, Any]:
    as_of = (datetime.now(UTC) + timedelta(days=days)).isoformat()
    response = await client.post(
        f"{url}/admin/requalification/run",
        json={"as_of": as_of, "partner_ids": [partner_id]},
        headers=ADMIN,
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_application_to_active_to_tier_changes_to_requalification_demotion(
    infra: Infra,
    onboarding: str,
    sites: PartnerSites,
    admin_db: asyncpg.Connection[asyncpg.Record],
) -> None:
    run = uuid.uuid4().hex[:10]
    domain = f"contoso-{run}.example"
    async with httpx.AsyncClient(timeout=30) as client:
        # Intake: a strong application is recommended for approval; a manager approves it.
        created = await client.post(f"{onboarding}/applications", json=strong_application(domain))
        assert created.status_code == 201, created.text
        applied = created.json()
        pid = applied["partner_id"]
        assert pid.startswith("ptn_")
        assert (applied["status"], applied["duplicate"]) == ("applied", False)
        assert applied["qualification"]["outcome"] == "approve"
        assert {c["criterion"] for c in applied["qualification"]["criteria"]} == {
            "strategic_fit",
            "icp_overlap",
            "technical_capability",
            "geographic_reach",
            "financial_standing",
            "cultural_fit",
        }

        decided = await client.post(
            f"{onboarding}/applications/{pid}/decision", headers=ADMIN, json={"approve": True}
        )
        assert decided.json()["status"] == "onboarding"
        token = (
            await client.post(f"{onboarding}/admin/partner-tokens/{pid}", headers=ADMIN)
        ).json()["token"]
        me = {"Authorization": f"Bearer {token}"}
        # The partner proves its domain: its site publishes the token, the platform checks.
        assert applied["domain_verification"]["state"] == "claimed"
        sites.publish(domain, applied["domain_verification"]["record"] + "\n")
        verified = await client.post(f"{onboarding}/partners/{pid}/domain-verification", headers=me)
        assert verified.status_code == 200, verified.text
        assert verified.json()["domain_verification"]["state"] == "held"
        # The held domain again (written differently) is refused, not a second partner.
        again = await client.post(
            f"{onboarding}/applications",
            json=strong_application(
                f"https://www.{domain.upper()}/partners",
                contacts=[{"name": "Bob", "email": f"bob@{domain}"}],
            ),
        )
        assert again.status_code == 409
        assert again.json()["detail"] == (
            f"domain {domain} is already held by a partner; contact your channel manager"
        )
        assert pid not in again.text
        assert (
            await admin_db.fetchval(
                "SELECT count(*) FROM onboarding.partners WHERE domain = $1", domain
            )
            == 1
        )
        other = await admitted(client, onboarding, f"other-{run}.example")
        other_token = (
            await client.post(f"{onboarding}/admin/partner-tokens/{other}", headers=ADMIN)
        ).json()["token"]
        hidden = await client.get(
            f"{onboarding}/partners/{pid}", headers={"Authorization": f"Bearer {other_token}"}
        )
        assert hidden.status_code == 404
        mine = await client.get(f"{onboarding}/partners", headers=me)
        assert [p["partner_id"] for p in mine.json()] == [pid]
        # Found in review: the filter was named `status_filter` where every other list says
        # `status`, and an unknown parameter is ignored: every status came back.
        waiting = await client.post(
            f"{onboarding}/applications",
            json=strong_application(f"waiting-{run}.example", **MIDDLING),
        )
        applied = await client.get(
            f"{onboarding}/partners", params={"status": "applied", "limit": 500}, headers=ADMIN
        )
        assert {p["status"] for p in applied.json()} == {"applied"}
        assert waiting.json()["partner_id"] in {p["partner_id"] for p in applied.json()}

        # Checklist: the partner completes its profile and submits evidence for the agreement
        # and the enablement; a channel manager and the enablement system confirm them, the
        # last one activating the partner in the base tier.
        profile = await client.post(
            f"{onboarding}/partners/{pid}/checklist/profile_complete", headers=me
        )
        assert (profile.status_code, profile.json()["status"]) == (200, "onboarding")
        for item, reference in (
            ("agreement_signed", f"docusign:{run}"),
            ("first_enablement_done", f"lms:{run}"),
        ):
            submitted = await client.post(
                f"{onboarding}/partners/{pid}/checklist/{item}",
                headers=me,
                json={"evidence": reference},
            )
            assert submitted.status_code == 202, submitted.text
            assert submitted.json()["checklist_evidence"][item]["reference"] == reference
            assert item not in submitted.json()["checklist"]
        signed = await client.post(
            f"{onboarding}/partners/{pid}/checklist/agreement_signed", headers=ADMIN
        )
        assert (signed.status_code, signed.json()["status"]) == (200, "onboarding"), signed.text
        assert signed.json()["checklist_evidence"]["agreement_signed"]["confirmed_by"] == (
            "channel-manager@tests"
        )
        done = await client.post(
            f"{onboarding}/partners/{pid}/checklist/first_enablement_done",
            headers=ENABLEMENT_SYSTEM,
        )
        assert done.status_code == 200, done.text
        assert (done.json()["status"], done.json()["tier"]) == ("active", "registered")
        # ai is gated behind the ai competency: not yet authorised.
        assert done.json()["products"] == ["data"]

        # Certifications (expiring in 60 days) -> competencies -> authorisations.
        issued = datetime.now(UTC) - timedelta(days=1)
        expires = datetime.now(UTC) + timedelta(days=60)
        for track in ("data", "ai"):
            for role, person in (("sales", "sam"), ("technical", "tess")):
                await certify(
                    client, onboarding, pid, f"{person}@{domain}", role, track, issued, expires
                )
        state = await partner_view(client, onboarding, pid)
        assert (state["competencies"], state["products"], state["tier"]) == (
            ["ai", "data"],
            ["ai", "data"],
            "registered",
        )

        # Attribution credits on Kafka: 3 000 -> silver, + 2 500 -> gold.
        deal = f"hubspot:{run}"
        first, second = credit(pid, deal, "3000.00"), credit(pid, deal, "2500.00")
        first_sent = await publish(infra, first, deal)
        await publish(infra, second, deal)

        async def tier_is(tier: str) -> bool:
            return (await partner_view(client, onboarding, pid))["tier"] == tier

        await eventually(lambda: tier_is("gold"))

        # Redelivery (same event id) and a re-sent credit (new event id, same credit id) count
        # once; then a reversal of the second credit drops revenue below gold: grace.
        await send_envelopes(infra, ATTRIBUTION_CREDITS.name, first_sent.subject, first_sent)
        await publish(infra, first, deal)
        reversal = credit_reversed(
            second,
            reversal_id=f"rv_{run}",
            reason="deal amount corrected",
            reversed_at=datetime.now(UTC),
            ingested_at=None,
        )
        await publish(infra, reversal, deal)

        async def in_grace() -> dict[str, Any] | None:
            state = await partner_view(client, onboarding, pid)
            return state if state["status"] == "grace" else None

        graced = await eventually(in_grace)
        assert graced["tier"] == "gold"  # nothing lost before the deadline
        assert Decimal(graced["attributed_revenue"]) == Decimal("3000")
        assert "attributed revenue 3000.0000 is below the gold minimum 5000" in graced["reason"]
        deadline = datetime.fromisoformat(graced["grace_until"])
        assert timedelta(days=9) < deadline - datetime.now(UTC) <= timedelta(days=10)

        # Requalification, driven in time: nothing before the deadline, demotion after it.
        assert (await requalify(client, onboarding, pid, days=5))["changes"] == {}
        assert (await requalify(client, onboarding, pid, days=11))["changes"] == {pid: ["demoted"]}
        state = await partner_view(client, onboarding, pid)
        assert (state["status"], state["tier"], state["grace_until"]) == ("active", "silver", None)

        # Certifications expire (day 60): competencies and ai authorisation go, silver is no
        # longer met -> grace; ten days later -> demoted to the base tier.
        assert (await requalify(client, onboarding, pid, days=70))["changes"] == {
            pid: ["authorisations_changed", "grace_started"]
        }
        assert (await requalify(client, onboarding, pid, days=81))["changes"] == {pid: ["demoted"]}
        state = await partner_view(client, onboarding, pid)
        assert (state["status"], state["tier"], state["products"], state["competencies"]) == (
            "active",
            "registered",
            ["data"],
            [],
        )

        # Every change names who made it, to channel managers; the partner is not told.
        history = (await partner_view(client, onboarding, pid))["history"]
        assert {
            ("applied", "applicant (unauthenticated)"),
            ("qualified", "channel-manager@tests"),
            ("updated", f"{pid}/app ({pid})"),
            ("activated", "enablement-system"),
            ("tier_changed", "onboarding"),
        } <= {(h["change"], h["acted_by"]) for h in history}
        own = (await client.get(f"{onboarding}/partners/{pid}", headers=me)).json()["history"]
        assert len(own) == len(history)
        assert all("acted_by" not in h for h in own)
        assert "confirmed_by" not in json.dumps(
            (await client.get(f"{onboarding}/partners/{pid}", headers=me)).json()
        )
    issued_by = await admin_db.fetch(
        "SELECT subject, role, issued_by FROM onboarding.token_grants WHERE partner_id = $1", pid
    )
    assert [tuple(r) for r in issued_by] == [
        (f"{pid}/app", "partner_user", "channel-manager@tests")
    ]

    # Every change was published as a full snapshot with a version that only grows.
    events = await lifecycle_changes(admin_db, pid)
    assert [e.version for e in events] == list(range(1, len(events) + 1))
    assert [e.change for e in events] == [
        "applied",
        "updated",  # the manager's decision recorded
        "qualified",
        "onboarding",
        "updated",  # domain verified: held
        "updated",  # profile complete
        "updated",  # agreement evidence submitted
        "updated",  # enablement evidence submitted
        "updated",  # agreement signed (confirmed)
        "activated",  # enablement confirmed
        "updated",  # data competency (data needs no gate)
        "authorisations_changed",  # ai competency: ai authorised
        "tier_changed",
        "tier_changed",
        "grace_started",
        "demoted",
        "authorisations_changed",
        "grace_started",
        "demoted",
    ]
    silver, gold = events[12], events[13]
    assert (silver.previous_tier, silver.tier, gold.previous_tier, gold.tier) == (
        "registered",
        "silver",
        "silver",
        "gold",
    )
    # The tier change carries the credit's ingestion time (end-to-end latency is measured on it).
    assert silver.ingested_at == first.ingested_at
    assert gold.ingested_at == second.ingested_at
    assert events[14].change == "grace_started"
    assert events[14].ingested_at is not None
    # The domain is the partner's to the other services only once held.
    assert all(e.domain is None for e in events[:4])
    assert all(
        e.domain == domain and e.policy_version == SMALL_PROGRAM["version"] for e in events[4:]
    )
    assert events[-1].products == ("data",)

    notes = await onboarding_outbox(admin_db, PARTNER_NOTIFICATIONS, pid)
    kinds = [Envelope[PartnerNotification].model_validate_json(n).data.kind for n in notes]
    assert kinds.count("tier_changed") == 2
    assert kinds.count("requalification") == 4
    assert "partner_status" in kinds

    async def all_published() -> bool:
        return bool(
            await admin_db.fetchval(
                "SELECT bool_and(published_at IS NOT NULL) FROM onboarding.outbox WHERE message_key = $1",
                pid,
            )
        )

    await eventually(all_published)


async def test_rejection_review_queue_and_manager_decision(
    onboarding: str, admin_db: asyncpg.Connection[asyncpg.Record]
) -> None:
    run = uuid.uuid4().hex[:10]
    async with httpx.AsyncClient(timeout=30) as client:
        weak = await client.post(
            f"{onboarding}/applications", json=weak_application(f"weak-{run}.example")
        )
        assert weak.status_code == 201
        assert (weak.json()["status"], weak.json()["qualification"]["outcome"]) == (
            "rejected",
            "reject",
        )

        middling = await client.post(
            f"{onboarding}/applications",
            json=strong_application(f"mid-{run}.example", **MIDDLING),
        )
        pid = middling.json()["partner_id"]
        assert (middling.json()["status"], middling.json()["qualification"]["total"]) == (
            "applied",
            "50.7",
        )
        queue = await applications(client, onboarding)
        assert pid in [a["partner_id"] for a in queue]

        partner_token = await client.post(f"{onboarding}/admin/partner-tokens/{pid}", headers=ADMIN)
        assert partner_token.status_code == 409  # not admitted yet

        decided = await client.post(
            f"{onboarding}/applications/{pid}/decision",
            headers=ADMIN,
            json={"approve": True, "note": "strong retail references", "cultural_fit": 100},
        )
        assert decided.status_code == 200, decided.text
        body = decided.json()
        assert body["status"] == "onboarding"
        assert body["qualification"]["total"] == "55.7"
        assert body["decision_note"] == "strong retail references"
        granted = await client.post(f"{onboarding}/admin/partner-tokens/{pid}", headers=ADMIN)
        as_partner = await client.get(
            f"{onboarding}/partners/{pid}",
            headers={"Authorization": f"Bearer {granted.json()['token']}"},
        )
        reasons = [version["reason"] for version in as_partner.json()["history"]]
        assert "manual review: application approved (score 55.7)" in reasons
        assert "strong retail references" not in as_partner.text
        assert "decision_note" not in as_partner.json()
        queue = await applications(client, onboarding)
        assert pid not in [a["partner_id"] for a in queue]

        twice = await client.post(
            f"{onboarding}/applications/{pid}/decision", headers=ADMIN, json={"approve": False}
        )
        assert twice.status_code == 409
        assert "is not waiting for review (status onboarding" in twice.json()["detail"]

    events = await lifecycle_changes(admin_db, pid)
    assert [e.change for e in events] == ["applied", "updated", "qualified", "onboarding"]


async def test_an_application_awaiting_review_has_a_deadline_and_is_escalated_once_past_it(
    infra: Infra, onboarding: str
) -> None:
    started = datetime.now(UTC)
    run = uuid.uuid4().hex[:10]
    async with httpx.AsyncClient(timeout=30) as client:
        applied = await client.post(
            f"{onboarding}/applications",
            json=strong_application(f"sla-{run}.example", **MIDDLING),
        )
        pid = applied.json()["partner_id"]
        queue = await applications(client, onboarding)
        mine = next(a for a in queue if a["partner_id"] == pid)
        applied_at = datetime.fromisoformat(mine["applied_at"])
        due = add_business_days(applied_at, 3, MONDAY_TO_FRIDAY, frozenset())
        assert datetime.fromisoformat(mine["review_due_at"]) == due

        async def run_as_of(moment: datetime) -> list[str]:
            response = await client.post(
                f"{onboarding}/admin/reviews/run",
                params={"as_of": moment.isoformat()},
                headers=ADMIN,
            )
            assert response.status_code == 200, response.text
            return list(response.json()["escalated"])

        assert pid not in await run_as_of(due - timedelta(seconds=1))
        assert pid in await run_as_of(due)
        assert pid not in await run_as_of(due + timedelta(days=1))  # once
    notes = await kafka.wait_for_keyed(
        infra.kafka,
        PARTNER_NOTIFICATIONS.name,
        pid,
        lambda events: any(e["data"]["kind"] == "review_escalated" for e in events),
        since=started,
    )
    escalations = [e for e in notes if e["data"]["kind"] == "review_escalated"]
    assert [(e["type"], e["data"]["recipient"]) for e in escalations] == [
        ("notification.partner.v2", "channel-managers")
    ]


async def test_illegal_transitions_and_bad_events_change_nothing(
    infra: Infra, onboarding: str, admin_db: asyncpg.Connection[asyncpg.Record]
) -> None:
    run = uuid.uuid4().hex[:10]
    async with httpx.AsyncClient(timeout=30) as client:
        pid = await admitted(client, onboarding, f"ill-{run}.example")
        before = await partner_view(client, onboarding, pid)

        async def set_status(status: str, reason: str) -> httpx.Response:
            """A channel manager sets the partner's status."""
            return await client.post(
                f"{onboarding}/admin/partners/{pid}/status",
                headers=ADMIN,
                json={"status": status, "reason": reason},
            )

        illegal = await set_status("active", "skip the checklist")
        assert illegal.status_code == 409
        assert illegal.json()["detail"] == (
            f"partner {pid} becomes active when its checklist is complete; missing: "
            "agreement_signed, profile_complete, first_enablement_done"
        )
        suspended = await set_status("suspended", "no reason")
        assert suspended.status_code == 409
        assert suspended.json()["detail"] == (
            f"partner {pid} cannot go from onboarding to suspended; allowed next: active, expelled"
        )
        assert (await partner_view(client, onboarding, pid))["version"] == before["version"]

        expelled = await set_status("expelled", "fraudulent references")
        assert expelled.json()["status"] == "expelled"
        item = await client.post(
            f"{onboarding}/partners/{pid}/checklist/profile_complete", headers=ADMIN
        )
        assert item.status_code == 409
        assert "is expelled" in item.json()["detail"]

        # A credit in a currency the tier thresholds are not in: dead-lettered with the reason.
        deal = f"sf:{run}"
        bad = credit(pid, deal, "100.00", currency="EUR")
        await publish(infra, bad, deal)

        async def dead_letter() -> Any:
            return await admin_db.fetchrow(
                "SELECT headers FROM onboarding.outbox WHERE topic = 'onboarding.dlq.v1' AND message_key = $1",
                deal,
            )

        row = await eventually(dead_letter)
        reason = json.loads(row["headers"])["dlq.reason"]
        assert f"credit {bad.credit_id} is in EUR" in reason
        assert (
            await admin_db.fetchval(
                "SELECT count(*) FROM onboarding.credits WHERE credit_id = $1", bad.credit_id
            )
            == 0
        )


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "detail"),
    [
        ("/applications", {"contacts": []}, {}, 422, "contacts"),
        ("/applications", {"contacts": [{"name": "A", "email": "nope"}]}, {}, 422, "email"),
        ("/applications", {"domain": "not a domain"}, {}, 422, "is not a company domain"),
        ("/applications", {"partner_type": "wizard"}, {}, 422, "partner_type"),
        ("/applications", {"regions": ["usa"]}, {}, 422, "regions"),
        ("/applications", {"annual_revenue": "-1"}, {}, 422, "annual_revenue"),
        ("/applications", {"shoe_size": 9}, {}, 422, "Extra inputs are not permitted"),
        ("/admin/requalification/run", {}, {}, 401, "missing bearer token"),
        ("/admin/requalification/run", {"as_of": "2030-01-01T00:00:00"}, ADMIN, 422, "time zone"),
        (
            "/admin/requalification/run",
            {"as_of": "9999-12-31T00:00:00Z"},
            ADMIN,
            422,
            "within a hundred years of now",
        ),
        ("/admin/reviews/run?as_of=9999-12-31T00:00:00Z", {}, ADMIN, 422, "hundred years"),
        ("/partners/ptn_missing/checklist/agreement_signed", {}, ADMIN, 404, "not found"),
        ("/partners/ptn_missing/checklist/teleport", {}, ADMIN, 422, "unknown checklist item"),
        ("/applications/ptn_missing/decision", {"approve": True}, ADMIN, 404, "not found"),
    ],
)
async def test_bad_input_gets_a_precise_4xx(
    onboarding: str,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
    status: int,
    detail: str,
) -> None:
    if path == "/applications":
        body = {**strong_application(f"bad-{uuid.uuid4().hex[:8]}.example"), **body}
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(f"{onboarding}{path}", json=body, headers=headers)
    assert response.status_code == status, response.text
    assert detail in json.dumps(response.json())


async def test_lapsed_agreement_suspends_then_renewal_reinstates_or_time_expels(
    onboarding: str, admin_db: asyncpg.Connection[asyncpg.Record]
) -> None:
    run = uuid.uuid4().hex[:10]
    async with httpx.AsyncClient(timeout=30) as client:
        renews = await active_partner(client, onboarding, f"renews-{run}.example", ADMIN)
        lapses = await active_partner(client, onboarding, f"lapses-{run}.example", ADMIN)
        both = [renews, lapses]

        async def run_at(days: int, ids: list[str] = both) -> dict[str, list[str]]:
            as_of = (datetime.now(UTC) + timedelta(days=days)).isoformat()
            response = await client.post(
                f"{onboarding}/admin/requalification/run",
                json={"as_of": as_of, "partner_ids": ids},
                headers=ADMIN,
            )
            assert response.status_code == 200, response.text
            changes: dict[str, list[str]] = response.json()["changes"]
            return changes

        # Default program: agreements run 365 days, 10 days of grace (test program).
        assert await run_at(364) == {}
        assert await run_at(366) == {renews: ["grace_started"], lapses: ["grace_started"]}
        assert await run_at(377) == {renews: ["suspended"], lapses: ["suspended"]}
        state = await partner_view(client, onboarding, lapses)
        assert state["status"] == "suspended"
        assert "partner agreement expired on" in state["reason"]

        # Signing again lifts a requalification suspension at once.
        signed = await client.post(
            f"{onboarding}/partners/{renews}/checklist/agreement_signed",
            headers=ADMIN,
            json={"evidence": f"docusign:renewal-{run}"},
        )
        assert signed.status_code == 200, signed.text
        assert signed.json()["status"] == "active"
        # The other stays suspended until the expulsion deadline (90 days by default).
        assert await run_at(377 + 89, [lapses]) == {}
        assert await run_at(377 + 91, [lapses]) == {lapses: ["expelled"]}

    changes = [e.change for e in await lifecycle_changes(admin_db, renews)][-4:]
    assert changes == ["grace_started", "suspended", "updated", "reinstated"]
    expelled = (await lifecycle_changes(admin_db, lapses))[-1]
    assert (expelled.change, expelled.status.value, expelled.previous_status) == (
        "expelled",
        "expelled",
        "suspended",
    )


async def test_concurrent_claims_of_one_domain_and_only_one_holds_it(
    onboarding: str, sites: PartnerSites, admin_db: asyncpg.Connection[asyncpg.Record]
) -> None:
    """Claims block no one: concurrent applications for one domain are all taken; when every
    one of them publishes its token and asks at once, exactly one holds the domain."""
    domain = f"race-{uuid.uuid4().hex[:10]}.example"
    async with httpx.AsyncClient(timeout=30) as client:
        responses = await asyncio.gather(
            *[
                client.post(f"{onboarding}/applications", json=strong_application(domain))
                for _ in range(6)
            ]
        )
        assert [r.status_code for r in responses] == [201] * 6
        sites.publish(
            domain, "\n".join(r.json()["domain_verification"]["record"] for r in responses)
        )
        checks = await asyncio.gather(
            *[
                client.post(
                    f"{onboarding}/partners/{r.json()['partner_id']}/domain-verification",
                    headers=ADMIN,
                )
                for r in responses
            ]
        )
    assert sorted(c.status_code for c in checks) == [200, 409, 409, 409, 409, 409]
    refused = next(c for c in checks if c.status_code == 409).json()["detail"]
    assert refused == (
        f"domain {domain} is already held by another partner; contact your channel manager"
    )
    assert (
        await admin_db.fetchval(
            """SELECT count(*) FROM onboarding.partners
               WHERE domain = $1 AND domain_verified_at IS NOT NULL""",
            domain,
        )
        == 1
    )


async def test_an_application_for_a_domain_another_partner_now_holds_is_not_admitted(
    onboarding: str, sites: PartnerSites
) -> None:
    """Found in review: a claim waiting for review while the domain's real owner applied and
    verified it was admitted all the same (intake would refuse it now)."""
    domain = f"squat-{uuid.uuid4().hex[:10]}.example"
    async with httpx.AsyncClient(timeout=30) as client:
        squatter = await client.post(
            f"{onboarding}/applications", json=strong_application(domain, **MIDDLING)
        )
        assert squatter.json()["status"] == "applied", squatter.text
        owner = await client.post(f"{onboarding}/applications", json=strong_application(domain))
        assert owner.status_code == 201, owner.text
        sites.publish(domain, owner.json()["domain_verification"]["record"])
        verified = await client.post(
            f"{onboarding}/partners/{owner.json()['partner_id']}/domain-verification",
            headers=ADMIN,
        )
        assert verified.status_code == 200, verified.text
        decision = f"{onboarding}/applications/{squatter.json()['partner_id']}/decision"
        refused = await client.post(decision, headers=ADMIN, json={"approve": True})
        assert refused.status_code == 409
        assert refused.json()["detail"] == (
            f"domain {domain} is held by another partner (verified since this application was"
            " made): it cannot be admitted; reject it"
        )
        rejected = await client.post(decision, headers=ADMIN, json={"approve": False})
        assert rejected.json()["status"] == "rejected", rejected.text


async def test_a_rejected_application_holds_its_verified_domain_no_more(
    onboarding: str, sites: PartnerSites
) -> None:
    """Found in review: an applicant whose domain a channel manager verified, then rejected,
    held the domain for good: every later application for it was refused."""
    domain = f"freed-{uuid.uuid4().hex[:10]}.example"
    async with httpx.AsyncClient(timeout=30) as client:
        first = await client.post(
            f"{onboarding}/applications", json=strong_application(domain, **MIDDLING)
        )
        pid = first.json()["partner_id"]
        sites.publish(domain, first.json()["domain_verification"]["record"])
        verified = await client.post(
            f"{onboarding}/partners/{pid}/domain-verification", headers=ADMIN
        )
        assert verified.status_code == 200, verified.text
        refused = await client.post(
            f"{onboarding}/applications", json=strong_application(domain, **MIDDLING)
        )
        assert refused.status_code == 409  # held while the application stands
        rejected = await client.post(
            f"{onboarding}/applications/{pid}/decision", headers=ADMIN, json={"approve": False}
        )
        assert rejected.json()["status"] == "rejected", rejected.text
        again = await client.post(
            f"{onboarding}/applications", json=strong_application(domain, **MIDDLING)
        )
        assert again.status_code == 201, again.text


async def test_a_partners_history_is_append_only(
    onboarding: str, admin_db: asyncpg.Connection[asyncpg.Record]
) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        applied = await client.post(
            f"{onboarding}/applications",
            json=strong_application(f"hist-{uuid.uuid4().hex[:10]}.example"),
        )
    pid = applied.json()["partner_id"]
    for statement in (
        "UPDATE onboarding.partner_history SET reason = 'rewritten' WHERE partner_id = $1",
        "DELETE FROM onboarding.partner_history WHERE partner_id = $1",
    ):
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await admin_db.execute(statement, pid)


# ---- attacks: a partner admitting itself


async def test_self_declared_figures_approve_no_one(
    onboarding: str, admin_db: asyncpg.Connection[asyncpg.Record]
) -> None:
    """The strongest possible self-declaration scores high and is recommended, but stays an
    application until a channel manager approves: no onboarding, no token."""
    domain = f"boast-{uuid.uuid4().hex[:10]}.example"
    async with httpx.AsyncClient(timeout=30) as client:
        applied = await client.post(
            f"{onboarding}/applications",
            json=strong_application(
                domain,
                annual_revenue="900000000",
                certified_staff=500,
                competencies_claimed=["data", "ai", "cloud", "security", "migration"],
                regions=["US", "DE", "GB", "FR", "JP", "AU"],
            ),
        )
        assert applied.status_code == 201, applied.text
        pid = applied.json()["partner_id"]
        assert (applied.json()["status"], applied.json()["qualification"]["outcome"]) == (
            "applied",
            "approve",
        )
        token = await client.post(f"{onboarding}/admin/partner-tokens/{pid}", headers=ADMIN)
        assert token.status_code == 409, token.text
        recommended = await applications(client, onboarding, "approve")
        assert pid in [a["partner_id"] for a in recommended]
        assert [e.change for e in await lifecycle_changes(admin_db, pid)] == ["applied"]
        # Only a channel manager's decision admits it.
        approved = await client.post(
            f"{onboarding}/applications/{pid}/decision", headers=ADMIN, json={"approve": True}
        )
        assert approved.json()["status"] == "onboarding"
        waiting = await client.get(
            f"{onboarding}/applications", params={"outcome": "approve"}, headers=ADMIN
        )
        assert pid not in [a["partner_id"] for a in waiting.json()]
    assert [e.change for e in await lifecycle_changes(admin_db, pid)] == [
        "applied",
        "updated",  # the manager's decision
        "qualified",
        "onboarding",
    ]


async def test_a_partner_cannot_complete_its_own_agreement_or_enablement(
    onboarding: str,
) -> None:
    """Ticking its own agreement and enablement no longer makes a partner active: each is
    refused (403) and nothing changes; evidence it submits waits for a confirmer."""
    run = uuid.uuid4().hex[:10]
    async with httpx.AsyncClient(timeout=30) as client:
        pid = await admitted(client, onboarding, f"selftick-{run}.example")
        token = (
            await client.post(f"{onboarding}/admin/partner-tokens/{pid}", headers=ADMIN)
        ).json()["token"]
        me = {"Authorization": f"Bearer {token}"}
        own = await client.post(
            f"{onboarding}/partners/{pid}/checklist/profile_complete", headers=me
        )
        assert own.status_code == 200, own.text
        before = await partner_view(client, onboarding, pid)
        for item in ("agreement_signed", "first_enablement_done"):
            ticked = await client.post(f"{onboarding}/partners/{pid}/checklist/{item}", headers=me)
            assert ticked.status_code == 403, ticked.text
            assert "channel manager or the enablement system" in ticked.json()["detail"]
        after = await partner_view(client, onboarding, pid)
        assert (after["status"], after["version"], after["checklist"]) == (
            "onboarding",
            before["version"],
            before["checklist"],
        )
        # Evidence submitted is recorded, not a completion; a confirmer completes the item.
        for item in ("agreement_signed", "first_enablement_done"):
            submitted = await client.post(
                f"{onboarding}/partners/{pid}/checklist/{item}",
                headers=me,
                json={"evidence": f"ref-{run}-{item}"},
            )
            assert submitted.status_code == 202, submitted.text
            assert submitted.json()["status"] == "onboarding"
        assert set((await partner_view(client, onboarding, pid))["checklist"]) == {
            "profile_complete"
        }
        for item in ("agreement_signed", "first_enablement_done"):
            confirmed = await client.post(
                f"{onboarding}/partners/{pid}/checklist/{item}", headers=ENABLEMENT_SYSTEM
            )
            assert confirmed.status_code == 200, confirmed.text
            if item == "agreement_signed":
                await _completed_evidence_stays(client, onboarding, pid, me, f"ref-{run}-{item}")
        assert confirmed.json()["status"] == "active"
        evidence = (await partner_view(client, onboarding, pid))["checklist_evidence"]
        assert evidence["agreement_signed"]["reference"] == f"ref-{run}-agreement_signed"
        assert evidence["agreement_signed"]["submitted_by"] == f"{pid}/app ({pid})"
        assert evidence["agreement_signed"]["confirmed_by"] == "enablement-system"


async def _completed_evidence_stays(
    client: httpx.AsyncClient, onboarding: str, pid: str, me: dict[str, str], reference: str
) -> None:
    """While onboarding, the agreement's confirmed evidence stays: the same reference again
    changes nothing, another is 409 (it replaced the confirmed record: found from outside)."""
    before = await partner_view(client, onboarding, pid)
    url = f"{onboarding}/partners/{pid}/checklist/agreement_signed"
    again = await client.post(url, headers=me, json={"evidence": reference})
    assert again.status_code == 202, again.text
    other = await client.post(url, headers=me, json={"evidence": "forged"})
    assert other.status_code == 409, other.text
    assert f"with evidence {reference}: while onboarding" in other.json()["detail"]
    after = await partner_view(client, onboarding, pid)
    assert after["version"] == before["version"]
    assert after["checklist_evidence"] == before["checklist_evidence"]
    assert after["checklist_evidence"]["agreement_signed"]["confirmed_by"] == "enablement-system"


async def test_a_claimed_domain_is_held_only_once_it_publishes_the_token(
    onboarding: str, sites: PartnerSites, admin_db: asyncpg.Connection[asyncpg.Record]
) -> None:
    """Declaring a domain is not owning it: without the token on the domain's site the check
    fails (409) and nothing changes; another partner's token does not prove it either."""
    run = uuid.uuid4().hex[:10]
    squatted, own = f"victim-{run}.example", f"squatter-{run}.example"
    async with httpx.AsyncClient(timeout=30) as client:
        pid = await admitted(client, onboarding, squatted)
        other = await admitted(client, onboarding, own)
        me = auth_for(await token_for(client, onboarding, pid))
        url = f"{onboarding}/partners/{pid}/domain-verification"
        absent = await client.post(url, headers=me)
        assert absent.status_code == 409, absent.text
        assert f"domain {squatted} is not verified" in absent.json()["detail"]
        # The squatter publishes its own token on its own site, not on the victim's.
        sites.publish(
            own, (await partner_view(client, onboarding, other))["domain_verification"]["record"]
        )
        sites.publish(squatted, "pollinate-verification=not-the-token")
        wrong = await client.post(url, headers=me)
        assert wrong.status_code == 409, wrong.text
        state = await partner_view(client, onboarding, pid)
        assert state["domain_verification"]["state"] == "claimed"
        # Another partner cannot ask for the check on it (404, as a missing one).
        them = auth_for(await token_for(client, onboarding, other))
        assert (await client.post(url, headers=them)).status_code == 404
        # The claim blocks no one: the real owner applies for the domain and proves it.
        owner = await admitted(client, onboarding, squatted)
        record = (await partner_view(client, onboarding, owner))["domain_verification"]["record"]
        sites.publish(squatted, record)
        held = await client.post(
            f"{onboarding}/partners/{owner}/domain-verification",
            headers=auth_for(await token_for(client, onboarding, owner)),
        )
        assert held.status_code == 200, held.text
        late = await client.post(url, headers=me)
        assert late.status_code == 409
        assert owner not in late.text
    assert all(e.domain is None for e in await lifecycle_changes(admin_db, pid))
    assert (await lifecycle_changes(admin_db, owner))[-1].domain == squatted


async def test_a_person_with_an_internationalised_address_gets_a_token_under_it(
    onboarding: str,
) -> None:
    """onboarding admits josé@example.com as a person; a token's user was printable ASCII only
    (found from outside). Whitespace stays refused."""
    async with httpx.AsyncClient(timeout=30) as client:
        pid = await admitted(client, onboarding, f"tokens-{uuid.uuid4().hex[:8]}.example")
        url = f"{onboarding}/admin/partner-tokens/{pid}"
        named = await client.post(url, headers=ADMIN, params={"user": "josé@example.com"})
        assert named.status_code == 200, named.text
        own = await client.get(
            f"{onboarding}/partners/{pid}", headers=auth_for(named.json()["token"])
        )
        assert own.status_code == 200, own.text
        spaced = await client.post(url, headers=ADMIN, params={"user": "Jane Doe"})
        assert spaced.status_code == 422, spaced.text
