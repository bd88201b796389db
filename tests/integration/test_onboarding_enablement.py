"""Enablement on a real onboarding process (Kafka + Postgres): the learning system's xAPI
statements for a partner's people, repeated and out of order, end in certifications,
competencies and a tier; a person leaving drops the competency and starts grace."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from services.onboarding.domain.programme import EXAM_BASE, MODULE_BASE
from shared.events import Envelope
from shared.events.notifications import NotificationKindV3, PartnerNotificationV3
from shared.identity import Role
from shared.topics import PARTNER_NOTIFICATIONS
from tests.support.deals import registration_request
from tests.support.fuzz import Operation, operations, requests
from tests.support.infra import Infra, waits_for
from tests.support.onboarding import (
    SMALL,
    SMALL_PROGRAM,
    XAPI,
    XAPI_VERBS,
    PartnerSites,
    active_partner,
    add_people,
    attribute_revenue,
    exam_passed,
    lifecycle_changes,
    onboarding_outbox,
    onboarding_process,
    onboarding_proving_domains_fixtures,
    partner_view,
    publish_resource,
    send_statements,
    verify_domain,
    xapi_statement,
)
from tests.support.polling import eventually
from tests.support.processes import ADMIN
from tests.support.tokens import ENABLEMENT_SYSTEM, auth, bearer, token

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)

LMS = "https://lms.example.org"


sites, onboarding = onboarding_proving_domains_fixtures("enablement")


async def test_statements_for_two_people_certify_then_a_leaver_starts_grace(
    infra: Infra, onboarding: str, admin_db: asyncpg.Connection[asyncpg.Record]
) -> None:
    run = uuid.uuid4().hex[:8]
    domain = f"enable-{run}.example"
    sam = {"mbox": f"mailto:sam@{domain}"}
    tess = {"account": {"homePage": LMS, "name": f"tess-{run}"}}
    now = datetime.now(UTC)
    async with httpx.AsyncClient(timeout=30) as client:
        pid = await active_partner(client, onboarding, domain, ADMIN)
        await attribute_revenue(infra, pid, "3000.00")

        async def revenue_counted() -> bool:
            return Decimal((await partner_view(client, onboarding, pid))["attributed_revenue"]) > 0

        await eventually(revenue_counted)
        state = await partner_view(client, onboarding, pid)
        assert state["tier"] == "registered"  # no competency

        # Sam is registered; Tess not yet (her statements wait for her).
        registered = await client.post(
            f"{onboarding}/partners/{pid}/people",
            headers=ADMIN,
            json={"email": f"Sam@{domain}", "name": "Sam", "role": "sales"},
        )
        assert registered.status_code == 201, registered.text
        sam_id = registered.json()["person_id"]
        again = await client.post(
            f"{onboarding}/partners/{pid}/people",
            headers=ADMIN,
            json={"email": f"sam@{domain}", "name": "Sam", "role": "sales"},
        )
        assert (again.status_code, again.json()["person_id"]) == (200, sam_id)

        # Out of order: Sam's pass (3 days ago) arrives before his earlier failed attempt and
        # a completed module; Tess passes the technical exam (by her LMS account).
        sales_exam, technical_exam = f"{EXAM_BASE}data/sales", f"{EXAM_BASE}data/technical"
        passed = xapi_statement(sam, "passed", sales_exam, now - timedelta(days=3), success=True)

        async def put_at_its_id(statement: dict[str, Any]) -> httpx.Response:
            """The learning system's PUT of one statement at its own id (xAPI's other way in)."""
            return await client.put(
                f"{onboarding}/xapi/statements",
                params={"statementId": statement["id"]},
                headers=XAPI,
                json=statement,
            )

        put = await put_at_its_id(passed)
        assert put.status_code == 204, put.text
        assert put.headers["X-Experience-API-Version"] == "1.0.3"
        later = [
            xapi_statement(sam, "failed", sales_exam, now - timedelta(days=5), success=False),
            xapi_statement(sam, "completed", "https://lms.example.org/modules/data-101", now),
            xapi_statement(tess, "passed", technical_exam, now - timedelta(days=2), success=True),
        ]
        posted = await client.post(f"{onboarding}/xapi/statements", headers=XAPI, json=later)
        assert posted.status_code == 200, posted.text
        assert posted.json() == [s["id"] for s in later]
        state = await partner_view(client, onboarding, pid)
        assert (state["competencies"], state["tier"]) == ([], "registered")

        # Repeats change nothing; the same id with other content is refused, and the request
        # it came in stores nothing (a valid neighbour is not half-stored).
        for _ in range(2):
            repeat = await put_at_its_id(passed)
            assert repeat.status_code == 204, repeat.text
        resent = await client.post(f"{onboarding}/xapi/statements", headers=XAPI, json=later)
        assert resent.status_code == 200, resent.text
        # What xAPI says to ignore (a verb's display, found in review: a 409) is ignored.
        renamed = {**passed, "verb": {**passed["verb"], "display": {"en-US": "passed it"}}}
        assert (await put_at_its_id(renamed)).status_code == 204
        forged = {**passed, "verb": {"id": XAPI_VERBS + "failed"}}
        neighbour = xapi_statement(sam, "completed", "https://lms.example.org/modules/x", now)
        refused = await client.post(
            f"{onboarding}/xapi/statements", headers=XAPI, json=[neighbour, forged]
        )
        assert refused.status_code == 409, refused.text
        assert refused.json()["detail"] == (
            f"statement {passed['id']} is already stored with other content; statements are "
            "immutable (nothing of this request was stored)"
        )
        missing = await client.get(
            f"{onboarding}/xapi/statements",
            params={"statementId": neighbour["id"]},
            headers=XAPI,
        )
        assert missing.status_code == 404

        async def waiting() -> dict[str, int]:
            answer = await client.get(f"{onboarding}/admin/xapi/waiting", headers=ADMIN)
            assert answer.status_code == 200, answer.text
            return {w["actor"]: w["statements"] for w in answer.json()}

        assert (await waiting()).get(f"account:{LMS}|tess-{run}") == 1

        # Tess is registered: her waiting pass certifies her; with Sam's, data is held: silver.
        tess_in = await client.post(
            f"{onboarding}/partners/{pid}/people",
            headers=ENABLEMENT_SYSTEM,
            json={
                "email": f"tess@{domain}",
                "role": "technical",
                "lms_account": {"homePage": LMS + "/", "name": f"tess-{run}"},
            },
        )
        assert tess_in.status_code == 201, tess_in.text
        state = await partner_view(client, onboarding, pid)
        assert (state["competencies"], state["tier"], state["status"]) == (
            ["data"],
            "silver",
            "active",
        )
        assert f"account:{LMS}|tess-{run}" not in await waiting()
        certified = await client.get(f"{onboarding}/partners/{pid}/certifications", headers=ADMIN)
        by_person = {(c["person"], c["role"], c["track"]): c for c in certified.json()}
        assert set(by_person) == {
            (f"sam@{domain}", "sales", "data"),
            (f"tess@{domain}", "technical", "data"),
        }
        sam_cert = by_person[(f"sam@{domain}", "sales", "data")]
        assert datetime.fromisoformat(sam_cert["issued_at"]) == now - timedelta(days=3)
        assert datetime.fromisoformat(sam_cert["expires_at"]) == now + timedelta(days=727)
        assert sam_cert["recorded_by"] == "enablement-system"
        stored = await client.get(
            f"{onboarding}/xapi/statements", params={"statementId": passed["id"]}, headers=XAPI
        )
        assert stored.status_code == 200, stored.text
        assert stored.json()["authority"]["account"]["name"] == "enablement-system"
        assert stored.json()["verb"]["id"] == XAPI_VERBS + "passed"
        assert (
            await admin_db.fetchval(
                "SELECT count(*) FROM onboarding.xapi_statements WHERE actor_key LIKE $1",
                f"%{run}%",
            )
            == 4
        )  # the refused request's neighbour was not stored
        outcomes = await admin_db.fetch(
            "SELECT outcome FROM onboarding.xapi_statement_outcomes WHERE partner_id = $1 "
            "ORDER BY outcome",
            pid,
        )
        assert [r["outcome"] for r in outcomes] == [
            "certified: data sales",
            "certified: data technical",
            "recorded (failed: certifies nobody)",
            "recorded (not a certification exam)",
        ]
        lifecycle = await lifecycle_changes(admin_db, pid)
        assert [list(s.competencies) for s in lifecycle][-2:] == [["data"], ["data"]]
        assert lifecycle[-1].tier == "silver"

        # Sam leaves: data is no longer held; silver's competency shortfall starts grace.
        left = await client.post(
            f"{onboarding}/partners/{pid}/people/{sam_id}/leave", headers=ADMIN, json={}
        )
        assert left.status_code == 200, left.text
        assert left.json()["left_at"] is not None
        state = await partner_view(client, onboarding, pid)
        assert (state["competencies"], state["status"], state["tier"]) == ([], "grace", "silver")
        assert state["history"][-1]["acted_by"] == "channel-manager@tests"
        lifecycle = await lifecycle_changes(admin_db, pid)
        assert (lifecycle[-1].change.value, list(lifecycle[-1].competencies)) == (
            "grace_started",
            [],
        )
        # Leaving again changes nothing; Sam's later statements no longer count here.
        again_left = await client.post(
            f"{onboarding}/partners/{pid}/people/{sam_id}/leave", headers=ADMIN
        )
        assert again_left.json()["left_at"] == left.json()["left_at"]
        repass = xapi_statement(sam, "passed", sales_exam, now + timedelta(seconds=5), success=True)
        await send_statements(client, onboarding, repass)
        assert (await partner_view(client, onboarding, pid))["competencies"] == []

        # Nobody replaces Sam before grace runs out (10 days): demoted to the tier it meets.
        run_at = (datetime.now(UTC) + timedelta(days=11)).isoformat()
        demoted = await client.post(
            f"{onboarding}/admin/requalification/run",
            json={"as_of": run_at, "partner_ids": [pid]},
            headers=ADMIN,
        )
        assert demoted.status_code == 200, demoted.text
        state = await partner_view(client, onboarding, pid)
        assert (state["status"], state["tier"]) == ("active", "registered")


async def test_xapi_requests_are_checked_before_anything_is_stored(onboarding: str) -> None:
    run = uuid.uuid4().hex[:8]
    good = xapi_statement(
        {"mbox": f"mailto:x@{run}.example"}, "passed", f"{EXAM_BASE}data/sales", datetime.now(UTC)
    )
    async with httpx.AsyncClient(timeout=30) as client:
        no_version = await client.post(
            f"{onboarding}/xapi/statements", headers=ENABLEMENT_SYSTEM, json=good
        )
        assert no_version.status_code == 400
        assert no_version.json()["detail"].startswith("X-Experience-API-Version 1.0.x required")
        partner_user = bearer(token("ptn_x/u", Role.PARTNER_USER, partner_id="ptn_x"))
        denied = await client.post(
            f"{onboarding}/xapi/statements",
            headers={**partner_user, "X-Experience-API-Version": "1.0.3"},
            json=good,
        )
        assert denied.status_code == 403
        bad_bodies = {
            "two identifiers": {**good, "actor": {"mbox": "mailto:a@b.example", "openid": "x:y"}},
            "a group": {**good, "actor": {"objectType": "Group", "mbox": "mailto:a@b.example"}},
            "no timezone": {**good, "timestamp": "2026-11-01T10:00:00"},
            "no verb": {k: v for k, v in good.items() if k != "verb"},
            "not an IRI": {**good, "verb": {"id": "passed"}},
        }
        for why, body in bad_bodies.items():
            answer = await client.post(f"{onboarding}/xapi/statements", headers=XAPI, json=body)
            assert answer.status_code == 422, (why, answer.text)
        # What Postgres cannot store, anywhere in a statement (each was a 500), and numbers
        # JSON has not (NaN and 1e999999 were stored as null): refused, naming the place.
        unstorable = {
            '"context": {"extensions": {"http://x/e": "a\\u0000b"}}': "statement.context",
            '"context": {"x\\u0000": 1}': "a key in statement.context",
            '"result": {"response": "\\ud800"}': "lone surrogates",
            '"context": {"x": NaN}': "statement.context.x must be a finite number",
            '"context": {"x": 1e999999}': "statement.context.x must be a finite number",
        }
        for extra, why in unstorable.items():
            raw = json.dumps(good)[:-1] + ", " + extra + "}"
            answer = await client.post(
                f"{onboarding}/xapi/statements",
                headers={**XAPI, "Content-Type": "application/json"},
                content=raw.encode(),
            )
            assert answer.status_code == 422, (extra, answer.text)
            assert why in answer.text, (extra, answer.text)
        for actor in ({"mbox": "mailto:a..b@x.example"}, {"openid": "http://x/\u0000"}):
            answer = await client.post(
                f"{onboarding}/xapi/statements", headers=XAPI, json={**good, "actor": actor}
            )
            assert answer.status_code == 422, (actor, answer.text)
        # Valid xAPI, but no person is known by them: refused, not stored to wait for good.
        for actor in ({"mbox_sha1sum": "a" * 40}, {"openid": "https://id.example/ada"}):
            answer = await client.post(
                f"{onboarding}/xapi/statements", headers=XAPI, json={**good, "actor": actor}
            )
            assert answer.status_code == 422, (actor, answer.text)
            assert "could never be matched to anyone" in answer.text, answer.text
        mismatch = await client.put(
            f"{onboarding}/xapi/statements",
            params={"statementId": str(uuid.uuid4())},
            headers=XAPI,
            json=good,
        )
        assert mismatch.status_code == 400
        assert "is not statementId" in mismatch.json()["detail"]
        for body in (good, [good, good]):  # an id twice in one request, same content: once
            stored = await client.post(f"{onboarding}/xapi/statements", headers=XAPI, json=body)
            assert (stored.status_code, stored.json()) == (200, [good["id"]])


async def test_learning_paths_show_each_persons_progress_in_module_order(
    onboarding: str,
) -> None:
    run = uuid.uuid4().hex[:8]
    domain = f"paths-{run}.example"
    ada = {"mbox": f"mailto:ada@{domain}"}
    now = datetime.now(UTC)
    fundamentals, deep_dive = f"{MODULE_BASE}data/fundamentals", f"{MODULE_BASE}data/sales"
    async with httpx.AsyncClient(timeout=30) as client:
        pid = await active_partner(client, onboarding, domain, ADMIN)
        people = [(f"ada@{domain}", "sales"), (f"cy@{domain}", "customer_success")]
        await add_people(client, onboarding, pid, people, ADMIN)
        # Ada takes the deep dive before the fundamentals: it has to be taken again.
        sent = [
            xapi_statement(ada, "completed", deep_dive, now - timedelta(days=3)),
            xapi_statement(ada, "completed", fundamentals, now - timedelta(days=2)),
        ]
        await send_statements(client, onboarding, sent)

        async def data_sales() -> dict[str, Any]:
            answer = await client.get(f"{onboarding}/partners/{pid}/learning", headers=auth(pid))
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert (body["policy_version"], body["tier"]) == ("small-program-1", "registered")
            names = {p["name"]: p for p in body["paths"]}
            assert set(names) == {
                "data-sales",
                "data-technical",
                "ai-sales",
                "ai-technical",
                "customer-adoption",
            }
            assert [p["email"] for p in names["customer-adoption"]["people"]] == [f"cy@{domain}"]
            assert names["data-technical"]["people"] == []
            (progress,) = names["data-sales"]["people"]
            return dict(progress)

        early = await data_sales()
        assert [m["state"] for m in early["modules"]] == ["done", "out_of_order"]
        assert (early["done"], early["complete"], early["exam_passed_at"]) == (1, False, None)

        sent = [
            xapi_statement(ada, "completed", deep_dive, now - timedelta(days=1)),
            xapi_statement(ada, "passed", f"{EXAM_BASE}data/sales", now, success=True),
        ]
        await send_statements(client, onboarding, sent)
        finished = await data_sales()
        assert [m["state"] for m in finished["modules"]] == ["done", "done"]
        assert (finished["done"], finished["complete"]) == (2, True)
        assert datetime.fromisoformat(finished["exam_passed_at"]) == now
        other = await client.get(
            f"{onboarding}/partners/{pid}/learning", headers=auth(f"{pid}-other")
        )
        assert other.status_code == 404


async def test_a_pass_below_the_exams_mark_is_no_exam_passed_on_the_learning_path(
    infra: Infra, tmp_path: Path
) -> None:
    """Found in review: a pass that certified nobody (below the exam's mark) set the path's
    `exam_passed_at`, and the portal told the partner its certification had lapsed."""
    exams = [e.model_dump(mode="json") for e in SMALL.certification_exams]
    for exam in exams:
        if exam["activity_id"] == f"{EXAM_BASE}data/sales":
            exam["min_scaled_score"] = "0.95"
    run = uuid.uuid4().hex[:8]
    domain = f"mark-{run}.example"
    async with (
        onboarding_process(infra, tmp_path, {**SMALL_PROGRAM, "exams": exams}) as url,
        httpx.AsyncClient(timeout=30) as client,
    ):
        pid = await active_partner(client, url, domain, ADMIN)
        await add_people(client, url, pid, [(f"ada@{domain}", "sales")], ADMIN)
        await send_statements(client, url, [exam_passed(f"ada@{domain}", "data", "sales", NOW)])
        answer = await client.get(f"{url}/partners/{pid}/learning", headers=auth(pid))
        assert answer.status_code == 200, answer.text
        paths = {p["name"]: p for p in answer.json()["paths"]}
        (ada,) = paths["data-sales"]["people"]
        assert ada["exam_passed_at"] is None  # scaled 0.9, below 0.95: not a pass
        held = await client.get(f"{url}/partners/{pid}/certifications", headers=ADMIN)
        assert held.json() == []


async def reminders_run(client: httpx.AsyncClient, url: str, as_of: datetime) -> list[Any]:
    answer = await client.post(
        f"{url}/admin/certification-reminders/run",
        headers=ADMIN,
        json={"as_of": as_of.isoformat()},
    )
    assert answer.status_code == 200, answer.text
    sent: list[Any] = answer.json()["sent"]
    return sent


async def test_an_expiring_certification_is_reminded_once_per_window_until_renewed(
    onboarding: str, admin_db: asyncpg.Connection[asyncpg.Record]
) -> None:
    run = uuid.uuid4().hex[:8]
    domain = f"renew-{run}.example"
    rae = {"mbox": f"mailto:rae@{domain}"}
    now = datetime.now(UTC)
    async with httpx.AsyncClient(timeout=30) as client:
        pid = await active_partner(client, onboarding, domain, ADMIN)
        added = await client.post(
            f"{onboarding}/partners/{pid}/people",
            headers=ADMIN,
            json={"email": f"rae@{domain}", "name": "Rae", "role": "technical"},
        )
        assert added.status_code == 201, added.text
        # Passed 710 days ago: the 730-day certification expires in 20 days.
        passed = exam_passed(f"rae@{domain}", "ai", "technical", now - timedelta(days=710))
        await send_statements(client, onboarding, passed)
        (certification,) = (
            await client.get(f"{onboarding}/partners/{pid}/certifications", headers=ADMIN)
        ).json()
        cid = certification["certification_id"]

        def mine(sent: list[Any]) -> list[int]:
            return [r["days_before"] for r in sent if r["certification_id"] == cid]

        assert mine(await reminders_run(client, onboarding, now)) == [30]  # 60 was skipped
        assert mine(await reminders_run(client, onboarding, now)) == []  # once
        assert mine(await reminders_run(client, onboarding, now + timedelta(days=14))) == [7]
        notes = await onboarding_outbox(admin_db, PARTNER_NOTIFICATIONS, pid)
        reminders = [
            n
            for n in (Envelope[PartnerNotificationV3].model_validate_json(r).data for r in notes)
            if n.kind == NotificationKindV3.CERTIFICATION_EXPIRING
        ]
        # A person's reminder has its own kind (v3): not the partner's requalification. It
        # goes to the partner, naming the person (addressed to the person's mailbox it was
        # filed as a vendor-side owner's, which no one on the partner's side reads).
        assert [(n.recipient, n.subject) for n in reminders] == [
            (pid, "Rae's ai technical certification expires within 30 days"),
            (pid, "Rae's ai technical certification expires within 7 days"),
        ]
        assert f"rae@{domain}" in reminders[0].body
        assert f"{EXAM_BASE}ai/technical/renewal" in reminders[0].body

        # Rae completes the renewal module while still certified: certified again, no more
        # reminders for the old certification.
        renewal = xapi_statement(rae, "completed", f"{EXAM_BASE}ai/technical/renewal", now)
        await send_statements(client, onboarding, renewal)
        held = (
            await client.get(f"{onboarding}/partners/{pid}/certifications", headers=ADMIN)
        ).json()
        assert [datetime.fromisoformat(c["expires_at"]) for c in held] == [
            now + timedelta(days=20),
            now + timedelta(days=730),
        ]
        assert mine(await reminders_run(client, onboarding, now + timedelta(days=18))) == []


async def test_a_renewal_listed_before_its_exams_pass_in_one_request_renews(
    onboarding: str,
) -> None:
    """Found in review: statements were applied as listed, so a renewal listed before the
    pass it renews was "nothing to renew" for good."""
    run = uuid.uuid4().hex[:8]
    domain = f"order-{run}.example"
    now = datetime.now(UTC).replace(microsecond=0)
    async with httpx.AsyncClient(timeout=30) as client:
        pid = await active_partner(client, onboarding, domain, ADMIN)
        await add_people(client, onboarding, pid, [(f"pam@{domain}", "technical")], ADMIN)
        renewal = xapi_statement(
            {"mbox": f"mailto:pam@{domain}"}, "completed", f"{EXAM_BASE}ai/technical/renewal", now
        )
        passed = exam_passed(f"pam@{domain}", "ai", "technical", now - timedelta(days=10))
        await send_statements(client, onboarding, [renewal, passed])
        held = (
            await client.get(f"{onboarding}/partners/{pid}/certifications", headers=ADMIN)
        ).json()
    assert sorted(datetime.fromisoformat(c["expires_at"]) for c in held) == [
        now + timedelta(days=720),
        now + timedelta(days=730),
    ]


async def test_a_gated_product_becomes_registrable_only_once_the_competency_exists(
    onboarding: str, deals_instances: list[str], admin_db: asyncpg.Connection[asyncpg.Record]
) -> None:
    run = uuid.uuid4().hex[:8]
    domain = f"gated-{run}.example"
    deals = deals_instances[0]
    async with httpx.AsyncClient(timeout=30) as client:
        pid = await active_partner(client, onboarding, domain, ADMIN)  # applied for data and ai

        async def deals_authorises() -> list[str] | None:
            """The products deals authorises the partner for, once it knows it is active (an
            earlier snapshot, still onboarding, would refuse any registration)."""
            row = await admin_db.fetchrow(
                "SELECT status, products FROM deals.partners WHERE partner_id = $1", pid
            )
            return sorted(row["products"]) if row and row["status"] == "active" else None

        async def register(product: str) -> dict[str, Any]:
            answer = await client.post(
                f"{deals}/registrations",
                headers=auth(pid),
                json=registration_request(
                    f"{uuid.uuid4().hex[:10]} Analytics Ltd",
                    f"{uuid.uuid4().hex[:10]}.example",
                    amount="1000.00",
                    products=[product],
                ),
            )
            assert answer.status_code == 201, answer.text
            result: dict[str, Any] = answer.json()
            return result

        await eventually(deals_authorises, what="deals to project the partner as active")
        assert await deals_authorises() == ["data"]  # ai needs the ai competency
        refused = await register("ai")
        assert refused["status"] == "rejected"
        assert "partner is not authorised for product(s) ai" in refused["reasons"]

        people = [(f"ana@{domain}", "sales"), (f"ben@{domain}", "technical")]
        await add_people(client, onboarding, pid, people, ENABLEMENT_SYSTEM)
        moment = datetime.now(UTC) - timedelta(minutes=1)
        for email, role in people:
            await send_statements(client, onboarding, exam_passed(email, "ai", role, moment))

        async def ai_authorised() -> bool:
            return await deals_authorises() == ["ai", "data"]

        await eventually(ai_authorised, what="deals to hear of the ai competency")
        accepted = await register("ai")
        assert accepted["status"] != "rejected", accepted
        assert not any("not authorised" in reason for reason in accepted["reasons"])


async def test_resources_meant_for_a_partner_and_engagement_count_towards_its_health(
    onboarding: str, sites: PartnerSites
) -> None:
    run = uuid.uuid4().hex[:8]
    domain = f"library-{run}.example"
    async with httpx.AsyncClient(timeout=30) as client:
        pid = await active_partner(client, onboarding, domain, ADMIN)  # a gsi, registered tier
        published = {}
        for name, kind, extra in (
            ("gsi-playbook", "playbook", {"partner_types": ["gsi"]}),
            ("msp-guide", "technical_guide", {"partner_types": ["msp"]}),
            ("gold-deck", "collateral", {"tiers": ["gold"]}),
            ("sdk-preview", "early_access", {}),
        ):
            title, address = f"{name} {run}", f"https://docs.example/{name}"
            resource = await publish_resource(client, onboarding, kind, title, address, **extra)
            published[name] = resource["resource_id"]
        bad_tier = await client.post(
            f"{onboarding}/admin/resources",
            headers=ADMIN,
            json={
                "kind": "playbook",
                "title": "x",
                "url": "https://x.example",
                "tiers": ["mithril"],
            },
        )
        assert bad_tier.status_code == 422
        assert bad_tier.json()["detail"].startswith("unknown tiers mithril; tiers are registered")

        alice = bearer(token(f"{pid}/alice", Role.PARTNER_USER, partner_id=pid))
        seen = await client.get(f"{onboarding}/resources", headers=alice)
        assert seen.status_code == 200, seen.text
        mine = {r["resource_id"] for r in seen.json()}
        assert published["gsi-playbook"] in mine
        assert published["sdk-preview"] in mine
        assert published["msp-guide"] not in mine
        assert published["gold-deck"] not in mine
        assert all("published_by" not in r for r in seen.json())

        async def engage(resource: str, action: str) -> httpx.Response:
            return await client.post(
                f"{onboarding}/resources/{resource}/engagements",
                headers=alice,
                json={"action": action},
            )

        first = await engage(published["gsi-playbook"], "download")
        assert (first.status_code, first.json()["recorded"]) == (201, True)
        again = await engage(published["gsi-playbook"], "download")
        assert (again.status_code, again.json()["recorded"]) == (200, False)
        assert (await engage(published["sdk-preview"], "sandbox_signup")).status_code == 201
        wrong = await engage(published["gsi-playbook"], "sandbox_signup")
        assert wrong.status_code == 422
        assert (await engage(published["msp-guide"], "download")).status_code == 404

        # Withdrawn: no longer listed nor engaged with; its engagement stays counted.
        withdrawn = await client.post(
            f"{onboarding}/admin/resources/{published['gsi-playbook']}/withdraw", headers=ADMIN
        )
        assert withdrawn.status_code == 200, withdrawn.text
        assert (await engage(published["gsi-playbook"], "download")).status_code == 404

        # Two people; one passes an exam: completion 0 of 2 paths done, certified 1 of 2,
        # engaged 1 (alice) of 2.
        # (the partner's own admin registers its people; a partner user may not)
        owner = bearer(token(f"{pid}/owner", Role.PARTNER_ADMIN, partner_id=pid))
        await verify_domain(client, onboarding, pid, sites, owner)
        refused = await client.post(
            f"{onboarding}/partners/{pid}/people",
            headers=alice,
            json={"email": f"ola@{domain}", "role": "sales"},
        )
        assert refused.status_code == 403
        for person, role in (("ola", "sales"), ("pat", "technical")):
            added = await client.post(
                f"{onboarding}/partners/{pid}/people",
                headers=owner,
                json={"email": f"{person}@{domain}", "role": role},
            )
            assert added.status_code == 201, added.text
            assert "added_by" not in added.json()  # who added them: channel managers only
        passed = exam_passed(f"ola@{domain}", "data", "sales", datetime.now(UTC))
        await send_statements(client, onboarding, passed)
        health = await client.get(f"{onboarding}/partners/{pid}/enablement", headers=alice)
        assert health.status_code == 200, health.text
        kpis = health.json()
        assert (kpis["people"], kpis["downloads"], kpis["sandbox_signups"]) == (2, 1, 1)
        assert (
            kpis["training_completion_rate"],
            kpis["certified_share"],
            kpis["engaged_share"],
            kpis["median_days_to_first_certification"],
        ) == ("0.0000", "0.5000", "0.5000", "0.0")
        assert kpis["score"] == "25.0"  # 100 * (0.5 * 0 + 0.25 * 0.5 + 0.25 * 0.5)
        programme = await client.get(f"{onboarding}/admin/enablement", headers=ADMIN)
        assert programme.status_code == 200, programme.text
        assert programme.json()["partners"] >= 1
        assert programme.json()["people"] >= 2


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://res.example:abc/a", "Port could not be cast to integer"),
        ("https://res.example:99999/a", "Port out of range"),
        ("https://res.example:0/a", "port must be a number from 1 to 65535"),
        ("https://[::1/a", "Invalid IPv6 URL"),
        ("https://exa..mple/a", "host is not a valid name"),
        ("https://res.example/\u202egpj.exe", "bidirectional embedding"),
    ],
)
async def test_a_resource_address_is_refused_unless_a_browser_opens_it(
    onboarding: str, url: str, why: str
) -> None:
    """Found from outside: these were stored (the check was a pattern), then the portal's
    library and sandbox sign-ups answered 500 for every partner who could see them."""
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(
            f"{onboarding}/admin/resources",
            headers=ADMIN,
            json={"kind": "playbook", "title": "port probe", "url": url},
        )
    assert answer.status_code == 422, answer.text
    [problem] = answer.json()["detail"]
    assert problem["loc"] == ["body", "url"]
    assert why in problem["msg"]


async def test_concurrent_repeats_and_a_racing_registration_certify_exactly_once(
    onboarding: str, admin_db: asyncpg.Connection[asyncpg.Record]
) -> None:
    run = uuid.uuid4().hex[:8]
    domain = f"race-{run}.example"
    now = datetime.now(UTC)
    async with httpx.AsyncClient(timeout=60) as client:
        pid = await active_partner(client, onboarding, domain, ADMIN)
        people = [f"p{i}@{domain}" for i in range(4)]
        sent = [
            exam_passed(email, "data", "sales" if i % 2 else "technical", now - timedelta(hours=i))
            for i, email in enumerate(people)
        ]

        async def send() -> httpx.Response:
            return await client.post(f"{onboarding}/xapi/statements", headers=XAPI, json=sent)

        async def register(i: int, email: str) -> httpx.Response:
            return await client.post(
                f"{onboarding}/partners/{pid}/people",
                headers=ENABLEMENT_SYSTEM,
                json={"email": email, "role": "sales" if i % 2 else "technical"},
            )

        # The same statements five times at once, while their people are being registered.
        answers = await asyncio.gather(
            *(send() for _ in range(5)), *(register(i, e) for i, e in enumerate(people))
        )
        assert [a.status_code for a in answers[:5]] == [200] * 5, [a.text for a in answers]
        assert sorted(a.status_code for a in answers[5:]) == [201] * 4
        certifications = await admin_db.fetchval(
            "SELECT count(*) FROM onboarding.certifications WHERE partner_id = $1", pid
        )
        outcomes = await admin_db.fetchval(
            "SELECT count(*) FROM onboarding.xapi_statement_outcomes WHERE partner_id = $1", pid
        )
        assert (certifications, outcomes) == (4, 4)
        state = await partner_view(client, onboarding, pid)
        assert state["competencies"] == ["data"]


def voiding(target: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "actor": {"mbox": "mailto:lms-admin@lms.example.org"},
        "verb": {"id": XAPI_VERBS + "voided", "display": {"en-US": "voided"}},
        "object": {"objectType": "StatementRef", "id": target},
    }


async def test_a_voided_pass_takes_its_certification_back_even_before_it_arrives(
    onboarding: str,
) -> None:
    run = uuid.uuid4().hex[:8]
    domain = f"void-{run}.example"
    now = datetime.now(UTC)
    async with httpx.AsyncClient(timeout=30) as client:
        pid = await active_partner(client, onboarding, domain, ADMIN)
        people = [(f"val@{domain}", "sales"), (f"vic@{domain}", "technical")]
        val_id = (await add_people(client, onboarding, pid, people, ADMIN))[f"val@{domain}"]
        sales = exam_passed(f"val@{domain}", "data", "sales", now)
        technical = exam_passed(f"vic@{domain}", "data", "technical", now)

        await send_statements(client, onboarding, [sales, technical])
        assert (await partner_view(client, onboarding, pid))["competencies"] == ["data"]

        # The learning system voids Val's pass: the certification no longer counts.
        void = voiding(sales["id"])
        await send_statements(client, onboarding, [void])
        await send_statements(client, onboarding, [void])  # a repeat changes nothing
        assert (await partner_view(client, onboarding, pid))["competencies"] == []
        # xAPI: a voided statement is returned by voidedStatementId only (found in review:
        # it was returned by its id like any other).
        url = f"{onboarding}/xapi/statements"
        by_id = await client.get(url, params={"statementId": sales["id"]}, headers=XAPI)
        assert by_id.status_code == 404
        assert "it was voided: ask by voidedStatementId" in by_id.json()["detail"]
        as_voided = await client.get(url, params={"voidedStatementId": sales["id"]}, headers=XAPI)
        assert (as_voided.status_code, as_voided.json()["id"]) == (200, sales["id"])
        live = await client.get(url, params={"voidedStatementId": technical["id"]}, headers=XAPI)
        assert live.status_code == 404
        both = {"statementId": sales["id"], "voidedStatementId": sales["id"]}
        assert (await client.get(url, params=both, headers=XAPI)).status_code == 400
        held = (
            await client.get(f"{onboarding}/partners/{pid}/certifications", headers=ADMIN)
        ).json()
        assert sorted((c["role"], c["voided_at"] is not None) for c in held) == [
            ("sales", True),
            ("technical", False),
        ]

        # A pass voided before it arrives is stored but certifies nobody; a corrected pass at
        # the same moment (a new statement) certifies again.
        early = exam_passed(f"val@{domain}", "ai", "sales", now)
        await send_statements(client, onboarding, [voiding(early["id"])])
        await send_statements(client, onboarding, [early])
        assert all(
            c["track"] != "ai"
            for c in (
                await client.get(f"{onboarding}/partners/{pid}/certifications", headers=ADMIN)
            ).json()
        )
        corrected = {**sales, "id": str(uuid.uuid4())}
        await send_statements(client, onboarding, [corrected])
        assert (await partner_view(client, onboarding, pid))["competencies"] == ["data"]

        # Val's record says what each statement did (the voided one marked as such).
        record = await client.get(f"{onboarding}/partners/{pid}/people/{val_id}", headers=auth(pid))
        assert record.status_code == 200, record.text
        said = {s["statement_id"]: s for s in record.json()["statements"]}
        assert (said[sales["id"]]["outcome"], said[sales["id"]]["voided"]) == (
            "certified: data sales",
            True,
        )
        assert said[corrected["id"]]["voided"] is False
        assert early["id"] not in said  # voided before it arrived: never applied
        assert all("recorded_by" not in c for c in record.json()["certifications"])
        other = await client.get(
            f"{onboarding}/partners/{pid}/people/{val_id}", headers=auth(f"{pid}-x")
        )
        assert other.status_code == 404

        not_a_ref = {**void, "id": str(uuid.uuid4()), "object": {"id": "https://x.example/a"}}
        refused = await client.post(f"{onboarding}/xapi/statements", headers=XAPI, json=not_a_ref)
        assert refused.status_code == 422


async def test_a_certification_stands_while_a_statement_behind_it_is_not_voided(
    onboarding: str,
) -> None:
    """Found in review: the same pass sent again under a new id (a learning system's retry)
    stands behind the same certification; voiding the first revoked it for good."""
    run = uuid.uuid4().hex[:8]
    domain = f"twice-{run}.example"
    now = datetime.now(UTC)
    async with httpx.AsyncClient(timeout=30) as client:
        pid = await active_partner(client, onboarding, domain, ADMIN)
        people = [(f"val@{domain}", "sales"), (f"vic@{domain}", "technical")]
        await add_people(client, onboarding, pid, people, ADMIN)
        first = exam_passed(f"val@{domain}", "data", "sales", now)
        again = {**first, "id": str(uuid.uuid4())}
        technical = exam_passed(f"vic@{domain}", "data", "technical", now)
        await send_statements(client, onboarding, [first, technical])
        await send_statements(client, onboarding, [again])
        assert (await partner_view(client, onboarding, pid))["competencies"] == ["data"]
        await send_statements(client, onboarding, [voiding(first["id"])])
        assert (await partner_view(client, onboarding, pid))["competencies"] == ["data"]
        await send_statements(client, onboarding, [voiding(again["id"])])
        assert (await partner_view(client, onboarding, pid))["competencies"] == []


async def test_a_pass_voided_while_its_person_is_registered_certifies_nobody(
    onboarding: str, admin_db: asyncpg.Connection[asyncpg.Record]
) -> None:
    """Found in review: registering a person applied their waiting statements under their own
    locks only; a voiding (another actor's: the learning system's administrator) committed
    meanwhile, unseen, and the voided pass certified. The registration now holds the waiting
    statements' locks too: here the voiding's lock is held while the registration waits for
    it, and the voiding is written before it is let go."""
    run = uuid.uuid4().hex[:8]
    domain = f"voidrace-{run}.example"
    async with httpx.AsyncClient(timeout=60) as client:
        pid = await active_partner(client, onboarding, domain, ADMIN)
        passed = exam_passed(f"vera@{domain}", "data", "sales", datetime.now(UTC))
        await send_statements(client, onboarding, [passed])  # waits for its person
        me = await admin_db.fetchval("SELECT pg_backend_pid()")
        async with admin_db.transaction():
            await admin_db.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", f"statement:{passed['id']}"
            )
            registering = asyncio.create_task(
                client.post(
                    f"{onboarding}/partners/{pid}/people",
                    headers=ENABLEMENT_SYSTEM,
                    json={"email": f"vera@{domain}", "role": "sales"},
                )
            )

            await eventually(
                lambda: waits_for(admin_db, me),
                what="the registration to wait for the statement's lock",
            )
            await admin_db.execute(
                """INSERT INTO onboarding.xapi_voided (statement_id, voided_by, voided_at)
                   VALUES ($1, $2, now())""",
                uuid.UUID(passed["id"]),
                uuid.uuid4(),
            )
        registered = await registering
        assert registered.status_code == 201, registered.text
        held = await admin_db.fetchval(
            "SELECT count(*) FROM onboarding.certifications WHERE partner_id = $1", pid
        )
    assert held == 0


async def test_a_pass_racing_its_holders_leaving_never_leaves_the_competency_behind(
    onboarding: str,
) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(3):
            run = uuid.uuid4().hex[:8]
            domain = f"leaver-{run}.example"
            pid = await active_partner(client, onboarding, domain, ADMIN)
            people = [(f"sid@{domain}", "sales"), (f"tam@{domain}", "technical")]
            tam_id = (await add_people(client, onboarding, pid, people, ADMIN))[f"tam@{domain}"]
            sales = exam_passed(f"sid@{domain}", "data", "sales", datetime.now(UTC))
            await send_statements(client, onboarding, sales)
            technical = exam_passed(f"tam@{domain}", "data", "technical", datetime.now(UTC))
            # Tam's pass and Tam's leaving at once: whichever goes first, Tam no longer counts.
            sent, left = await asyncio.gather(
                client.post(f"{onboarding}/xapi/statements", headers=XAPI, json=technical),
                client.post(f"{onboarding}/partners/{pid}/people/{tam_id}/leave", headers=ADMIN),
            )
            assert (sent.status_code, left.status_code) == (200, 200), (sent.text, left.text)
            assert (await partner_view(client, onboarding, pid))["competencies"] == []


# The routes the learning system and people feeds call, fuzzed with the token they admit (the
# platform-wide fuzz in test_hostile_inputs.py sends no system token).
SYSTEM_ROUTES = [
    op
    for op in operations("onboarding")
    if op.path.startswith("/xapi/") or op.path.startswith("/partners/{partner_id}/people")
]


@pytest.mark.parametrize("op", SYSTEM_ROUTES, ids=str)
def test_fuzzed_system_requests_get_no_5xx_and_only_documented_statuses(
    onboarding: str, op: Operation
) -> None:
    tokens: list[dict[str, Any]] = [XAPI, ENABLEMENT_SYSTEM]
    with httpx.Client(timeout=30) as client:

        @settings(
            max_examples=60,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(request=requests(op, onboarding, tokens))
        def check(request: Any) -> None:
            response = client.request(
                request.method, request.url, content=request.content, headers=request.headers
            )
            sent = (request.content or b"")[:300]
            assert response.status_code < 500, f"{request.url} {sent!r} -> {response.text[:300]}"
            assert response.status_code in op.documented, (
                f"{request.url} {sent!r} -> {response.status_code} {response.text[:300]}"
            )

        check()


async def test_a_stored_statement_that_fails_a_later_check_does_not_stop_its_person(
    onboarding: str, admin_db: asyncpg.Connection[asyncpg.Record]
) -> None:
    """A statement stored before a check it fails now (here a \\u000b in its response, which
    jsonb keeps) is left waiting, logged; its person is registered and the statement beside it
    counts (registering the person was a 500 every time: found by review)."""
    run = uuid.uuid4().hex[:8]
    domain = f"stale-{run}.example"
    ada = {"mbox": f"mailto:ada@{domain}"}
    now = datetime.now(UTC)
    old = xapi_statement(ada, "completed", f"{MODULE_BASE}data/sales/1", now - timedelta(days=2))
    kept = xapi_statement(ada, "completed", f"{MODULE_BASE}data/sales/2", now - timedelta(days=1))
    async with httpx.AsyncClient(timeout=30) as client:
        pid = await active_partner(client, onboarding, domain, ADMIN)
        await send_statements(client, onboarding, [old, kept])
        async with admin_db.transaction():  # as an earlier release would have stored it
            await admin_db.execute("SET LOCAL session_replication_role = replica")
            await admin_db.execute(
                """UPDATE onboarding.xapi_statements
                   SET content = content || '{"result": {"response": "a\\u000bb"}}'::jsonb
                   WHERE statement_id = $1""",
                uuid.UUID(old["id"]),
            )
        registered = await client.post(
            f"{onboarding}/partners/{pid}/people",
            headers=ADMIN,
            json={"email": f"ada@{domain}", "name": "Ada", "role": "sales"},
        )
        assert registered.status_code == 201, registered.text
    outcomes = await admin_db.fetch(
        "SELECT statement_id::text FROM onboarding.xapi_statement_outcomes WHERE statement_id = ANY($1)",
        [uuid.UUID(old["id"]), uuid.UUID(kept["id"])],
    )
    assert [r["statement_id"] for r in outcomes] == [kept["id"]]
