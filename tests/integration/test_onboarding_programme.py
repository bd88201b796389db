"""Onboarding's programme as a real process on real Kafka + Postgres: enablement announced for
attribution's health score, attribution's health kept; the programme year (notices, review,
probation with a plan, expulsion, appeal); partner account managers."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from services.onboarding.programme_repository import valid_certifications
from shared.events import Envelope
from shared.events.notifications import (
    NotificationKind,
    NotificationKindV3,
    PartnerNotification,
    PartnerNotificationV3,
)
from shared.events.programme import AccountManagerAssigned, PartnerEnablementMeasured
from shared.identity import Role
from shared.topics import (
    PARTNER_HEALTH,
    PARTNER_LIFECYCLE,
    PARTNER_NOTIFICATIONS,
    PARTNER_PROGRAMME,
)
from tests.support import kafka
from tests.support.factories import partner_health_scored
from tests.support.infra import Infra
from tests.support.onboarding import (
    SMALL_PROGRAM,
    active_partner,
    add_people,
    attribute_revenue,
    certify,
    onboarding_fixture,
    onboarding_outbox,
)
from tests.support.polling import eventually
from tests.support.processes import ADMIN
from tests.support.tokens import auth, bearer, token

pytestmark = pytest.mark.integration

DAY, YEAR = timedelta(days=1), timedelta(days=365)

PROGRAM: dict[str, Any] = {
    **SMALL_PROGRAM,
    "version": "programme-year-1",
    # A year's credits count at the anniversary; agreements outlast the first review.
    "revenue_window_days": 400,
    "agreement_term_days": 730,
    "programme_year": {
        "review_basis": "anniversary",
        "notice_days": [90, 30],
        "probation_days": 60,
        "appeal_days": 30,
        "minimum": {"min_revenue": "1000", "min_certifications": 1, "min_health": "40"},
    },
}


onboarding = onboarding_fixture("programme", PROGRAM)


async def health_scored(
    infra: Infra,
    admin_db: asyncpg.Connection[asyncpg.Record],
    partner_id: str,
    day: date,
    score: Decimal,
) -> None:
    """Attribution scores the partner's health on `day`; onboarding has kept a score."""
    healthy = partner_health_scored(partner_id=partner_id, day=day, score=score)
    await kafka.publish(infra, PARTNER_HEALTH, [healthy], subject=partner_id, source="attribution")

    async def kept() -> bool:
        scored = await admin_db.fetchval(
            "SELECT score FROM onboarding.partner_health WHERE partner_id = $1", partner_id
        )
        return scored is not None

    await eventually(kept)


async def test_enablement_is_announced_when_it_moves_and_health_scores_are_kept(
    infra: Infra, onboarding: str, admin_db: asyncpg.Connection[asyncpg.Record]
) -> None:
    run = uuid.uuid4().hex[:10]
    async with httpx.AsyncClient(timeout=30) as client:
        pid = await active_partner(client, onboarding, f"signals-{run}.example", ADMIN)
        # Noon tomorrow: "an hour later, the same day" must not cross midnight, and no run of
        # the job on today's clock can have announced on that day already.
        tomorrow = datetime.now(UTC) + timedelta(days=1)
        at = tomorrow.replace(hour=12, minute=0, second=0, microsecond=0)

        async def announce(as_of: datetime) -> dict[str, str]:
            answer = await client.post(
                f"{onboarding}/admin/enablement-signals/run",
                headers=ADMIN,
                json={"as_of": as_of.isoformat(), "partner_ids": [pid]},
            )
            assert answer.status_code == 200, answer.text
            announced: dict[str, str] = answer.json()["announced"]
            return announced

        assert await announce(at) == {pid: "0.0"}  # the first measurement
        assert await announce(at + timedelta(hours=1)) == {}  # unmoved, the same day
        assert await announce(at + timedelta(days=1)) == {pid: "0.0"}  # daily
        # A person certified and engaging moves the score: announced at once.
        ada = f"ada@signals-{run}.example"
        await add_people(client, onboarding, pid, [(ada, "sales")], ADMIN)
        since, until = at - timedelta(days=1), at + timedelta(days=300)
        await certify(client, onboarding, pid, ada, "sales", "data", since, until)
        moved = await announce(at + timedelta(days=1, hours=1))
        assert moved == {pid: "25.0"}  # certified 1/1 at weight 0.25
        # A run measuring an earlier moment (another instance's, or backdated) announces
        # nothing over the later one: it replaced it, the older score announced last.
        assert await announce(at - timedelta(days=2)) == {}
        # A partner's people cannot make the announcement happen.
        me = auth(pid)
        refused = await client.post(f"{onboarding}/admin/enablement-signals/run", headers=me)
        assert refused.status_code == 403

        # Attribution's health scores: the newest day is kept, a late older one ignored.
        newer = partner_health_scored(partner_id=pid, day=at.date(), score=Decimal("71.5"))
        older = partner_health_scored(
            partner_id=pid, day=at.date() - timedelta(days=3), score=Decimal("12.0")
        )
        await kafka.publish(
            infra, PARTNER_HEALTH, [newer, older], subject=pid, source="attribution"
        )

        async def kept() -> Any:
            return await admin_db.fetchrow(
                "SELECT score, day FROM onboarding.partner_health WHERE partner_id = $1", pid
            )

        row = await eventually(kept)
        assert (row["score"], row["day"]) == (Decimal("71.5"), at.date())

    rows = await onboarding_outbox(admin_db, PARTNER_PROGRAMME, pid)
    measured = [Envelope[PartnerEnablementMeasured].model_validate_json(r).data for r in rows]
    assert [(m.score, m.people, m.certified_share) for m in measured] == [
        (Decimal("0.0"), 0, None),
        (Decimal("0.0"), 0, None),
        (Decimal("25.0"), 1, Decimal("1.0000")),
    ]


async def test_one_person_certified_twice_on_a_track_is_one_valid_certification(
    onboarding: str, admin_db: asyncpg.Connection[asyncpg.Record]
) -> None:
    """Found in review: the programme minimum counted certification rows, so a retake (or a
    renewal recorded anew) counted one person's credential twice towards the bar."""
    run = uuid.uuid4().hex[:10]
    now = datetime.now(UTC)
    async with httpx.AsyncClient(timeout=30) as client:
        pid = await active_partner(client, onboarding, f"twice-{run}.example", ADMIN)
        ada, bob = f"ada@twice-{run}.example", f"bob@twice-{run}.example"
        await add_people(client, onboarding, pid, [(ada, "sales"), (bob, "sales")], ADMIN)
        for days_ago in (60, 10):  # the exam, then a retake
            since = now - timedelta(days=days_ago)
            await certify(client, onboarding, pid, ada, "sales", "data", since, now + YEAR)
        await certify(client, onboarding, pid, ada, "sales", "ai", now - DAY, now + YEAR)
        await certify(client, onboarding, pid, bob, "sales", "data", now - DAY, now + YEAR)
    async with admin_db.transaction():
        await admin_db.execute("SET LOCAL search_path TO onboarding")
        assert await valid_certifications(admin_db, pid, now) == 3


async def test_a_certification_recorded_after_its_person_left_counts_only_until_they_left(
    onboarding: str, admin_db: asyncpg.Connection[asyncpg.Record]
) -> None:
    """Found in review: recorded by hand once the person had left, it belonged to no membership
    and counted in full until it expired."""
    run = uuid.uuid4().hex[:10]
    now = datetime.now(UTC)
    async with httpx.AsyncClient(timeout=30) as client:
        pid = await active_partner(client, onboarding, f"gone-{run}.example", ADMIN)
        ada = f"ada@gone-{run}.example"
        ids = await add_people(client, onboarding, pid, [(ada, "sales")], ADMIN)
        left = await client.post(
            f"{onboarding}/partners/{pid}/people/{ids[ada]}/leave", headers=ADMIN
        )
        assert left.status_code == 200, left.text
        await certify(client, onboarding, pid, ada, "sales", "data", now - 30 * DAY, now + YEAR)
    async with admin_db.transaction():
        await admin_db.execute("SET LOCAL search_path TO onboarding")
        assert await valid_certifications(admin_db, pid, now - 2 * DAY) == 1
        assert await valid_certifications(admin_db, pid, now + DAY) == 0


async def test_a_seeded_year_notices_probation_expulsion_appeal_and_requalification(
    infra: Infra, onboarding: str, admin_db: asyncpg.Connection[asyncpg.Record]
) -> None:
    run = uuid.uuid4().hex[:10]
    async with httpx.AsyncClient(timeout=30) as client:
        below = await active_partner(client, onboarding, f"below-{run}.example", ADMIN)
        meets = await active_partner(client, onboarding, f"meets-{run}.example", ADMIN)
        today = datetime.now(UTC)
        # The partner meeting the bar: revenue from attribution, a certified person, health.
        await attribute_revenue(infra, meets, "1500.00", today)
        since, until = today - timedelta(days=1), today + timedelta(days=800)
        await certify(
            client, onboarding, meets, f"ada@meets-{run}.example", "sales", "data", since, until
        )
        await health_scored(infra, admin_db, meets, today.date(), Decimal("70"))

        async def revenue_counted() -> bool:
            state = (await client.get(f"{onboarding}/partners/{meets}", headers=ADMIN)).json()
            return bool(Decimal(state["attributed_revenue"]) == 1500)

        await eventually(revenue_counted)

        view = await client.get(f"{onboarding}/partners/{below}/programme", headers=auth(below))
        assert view.status_code == 200, view.text
        review_on = datetime.fromisoformat(view.json()["next_review_on"]).date()
        assert review_on.replace(year=review_on.year - 1) == today.date()  # the anniversary

        async def year(days: int) -> dict[str, list[str]]:
            moment = datetime.combine(review_on, today.timetz()) + timedelta(days=days)
            answer = await client.post(
                f"{onboarding}/admin/programme-year/run",
                headers=ADMIN,
                json={"as_of": moment.isoformat(), "partner_ids": [below, meets]},
            )
            assert answer.status_code == 200, answer.text
            done: dict[str, list[str]] = answer.json()["done"]
            return done

        # Notices 90 and 30 days ahead, each once.
        assert await year(-100) == {}
        assert await year(-90) == {below: ["notice:90"], meets: ["notice:90"]}
        assert await year(-89) == {}
        assert await year(-45) == {}
        assert await year(-30) == {below: ["notice:30"], meets: ["notice:30"]}
        assert await year(-29) == {}
        # The review: the partner below the programme minimum is on probation with a plan; the
        # one meeting it is requalified.
        assert await year(0) == {below: ["review:probation"], meets: ["review:requalified"]}
        assert await year(1) == {}
        mine = (
            await client.get(f"{onboarding}/partners/{below}/programme", headers=auth(below))
        ).json()
        (probation,) = mine["reviews"]
        assert mine["on_probation_until"] == (review_on + timedelta(days=60)).isoformat()
        assert probation["plan"] == [
            "attributed revenue of at least 1000 (now 0)",
            "at least 1 valid certifications (now 0)",
            "a health score of at least 40 (not scored yet)",
        ]
        assert "filed_by" not in json.dumps(probation)  # nothing of who acted, to the partner
        # Its deadline passes with the plan unmet: expelled.
        assert await year(59) == {}
        assert await year(60) == {below: ["probation_end:expelled"]}
        state = (await client.get(f"{onboarding}/partners/{below}", headers=ADMIN)).json()
        assert state["status"] == "expelled"
        # The expulsion's notice (its reason) says until when it may be appealed: the review's
        # own message waits, as everything does for a partner without access.
        expelled_at = datetime.combine(review_on, today.timetz()) + timedelta(days=60)
        appeal_until = (expelled_at + timedelta(days=30)).date().isoformat()
        assert state["history"][-1]["reason"].endswith(
            f"; you may appeal to your channel manager until {appeal_until}"
        ), state["history"][-1]["reason"]
        # Found in review: a run a channel manager asked for was recorded as the scheduled
        # job's doing; the change is the manager's, and the trail says who asked, for when.
        assert state["history"][-1]["acted_by"] == "channel-manager@tests"
        asked = await admin_db.fetch(
            """SELECT principal, subject FROM onboarding.audit_log
               WHERE action = 'programme_year.run' AND subject LIKE $1 AND at >= $2""",
            f"{review_on + timedelta(days=60)}%",
            today,
        )
        assert [r["principal"] for r in asked] == ["channel-manager@tests"]
        assert await year(61) == {}  # out of the programme: nothing more

        view = (await client.get(f"{onboarding}/partners/{below}/programme", headers=ADMIN)).json()
        expulsion = view["reviews"][-1]
        assert (expulsion["basis"], expulsion["outcome"]) == ("probation_end", "expelled")

        async def appeal(pid: str, review_id: str, grounds: str) -> httpx.Response:
            """A channel manager files an appeal of the review for the partner."""
            return await client.post(
                f"{onboarding}/partners/{pid}/requalification/appeals",
                headers=ADMIN,
                json={"review_id": review_id, "grounds": grounds},
            )

        # A requalification cannot be appealed; the expulsion can, within its window (the
        # channel manager files it for the partner, whose people lost their access).
        met = (await client.get(f"{onboarding}/partners/{meets}/programme", headers=ADMIN)).json()
        refused = await appeal(meets, met["reviews"][0]["review_id"], "nothing to appeal")
        assert (refused.status_code, refused.json()["detail"]) == (
            409,
            "a requalified decision cannot be appealed",
        )
        others = await appeal(meets, expulsion["review_id"], "not theirs")
        assert others.status_code == 404
        filed = await appeal(below, expulsion["review_id"], "the deals closed late")
        assert filed.status_code == 201, filed.text
        appeal_id = filed.json()["appeal_id"]
        again = await appeal(below, expulsion["review_id"], "twice")
        assert again.status_code == 409
        upheld = await client.post(
            f"{onboarding}/admin/requalification/appeals/{appeal_id}/decision",
            headers=ADMIN,
            json={"upheld": True, "note": "two deals closed in the quarter after"},
        )
        assert upheld.status_code == 200, upheld.text
        assert upheld.json()["upheld"] is True
        state = (await client.get(f"{onboarding}/partners/{below}", headers=ADMIN)).json()
        assert (state["status"], state["tier"]) == ("active", "registered")
        decided_again = await client.post(
            f"{onboarding}/admin/requalification/appeals/{appeal_id}/decision",
            headers=ADMIN,
            json={"upheld": False, "note": "second thoughts"},
        )
        assert decided_again.status_code == 409

    notes = await onboarding_outbox(admin_db, PARTNER_NOTIFICATIONS, below)
    told = [Envelope[PartnerNotification].model_validate_json(n).data for n in notes]
    year_notes = [n.subject for n in told if n.kind is NotificationKind.REQUALIFICATION]
    company = f"Contoso below-{run}.example"
    ends = review_on + timedelta(days=60)
    assert year_notes == [
        f"{company}: annual review on {review_on.isoformat()} (90 days' notice)",
        f"{company}: annual review on {review_on.isoformat()} (30 days' notice)",
        f"{company}: annual review {review_on.isoformat()}, probation",
        f"{company}: annual review {ends.isoformat()}, expelled",
        f"Your appeal of the review of {ends.isoformat()}: upheld: the decision is reversed",
    ]
    plan = next(n.body for n in told if n.subject.endswith(", probation"))
    assert f"Your plan, to meet by {ends.isoformat()}:" in plan
    assert "- attributed revenue of at least 1000 (now 0)" in plan
    decided = await onboarding_outbox(admin_db, PARTNER_PROGRAMME, below)
    facts = [json.loads(r)["type"] for r in decided]
    assert facts == [
        "partner.requalification_decided.v1",
        "partner.requalification_decided.v1",
        "partner.requalification_appeal_decided.v1",
    ]
    lifecycle = await onboarding_outbox(admin_db, PARTNER_LIFECYCLE, below)
    changes = [json.loads(r)["data"]["change"] for r in lifecycle]
    assert changes[-3:] == ["updated", "expelled", "reinstated"]  # probation, expulsion, appeal


async def test_a_channel_manager_assigns_and_reassigns_the_account_manager(
    infra: Infra, onboarding: str, admin_db: asyncpg.Connection[asyncpg.Record]
) -> None:
    run = uuid.uuid4().hex[:10]
    url = f"{onboarding}/admin/partners"
    async with httpx.AsyncClient(timeout=30) as client:
        pid = await active_partner(client, onboarding, f"managed-{run}.example", ADMIN)
        me = auth(pid)
        refused = await client.put(
            f"{url}/{pid}/account-manager", headers=me, json={"manager": "x@vendor.example"}
        )
        assert refused.status_code == 403
        bad = await client.put(
            f"{url}/{pid}/account-manager", headers=ADMIN, json={"manager": "not an address"}
        )
        assert bad.status_code == 422
        missing = await client.put(
            f"{url}/ptn_nobody-{run}/account-manager",
            headers=ADMIN,
            json={"manager": "x@vendor.example"},
        )
        assert missing.status_code == 404
        first = await client.put(
            f"{url}/{pid}/account-manager",
            headers=ADMIN,
            json={"manager": "Mia@Vendor.example", "note": "EMEA alliances"},
        )
        assert first.status_code == 200, first.text
        assert (first.json()["account_manager"], first.json()["changed"]) == (
            "mia@vendor.example",
            True,
        )
        same = await client.put(
            f"{url}/{pid}/account-manager", headers=ADMIN, json={"manager": "mia@vendor.example"}
        )
        assert same.json()["changed"] is False
        moved = await client.put(
            f"{url}/{pid}/account-manager", headers=ADMIN, json={"manager": "noah@vendor.example"}
        )
        assignments = moved.json()["assignments"]
        assert [(a["manager"], a["previous"], a["assigned_by"]) for a in assignments] == [
            ("mia@vendor.example", None, "channel-manager@tests"),
            ("noah@vendor.example", "mia@vendor.example", "channel-manager@tests"),
        ]
        # Readable on the partner, by its own people too.
        own = (await client.get(f"{onboarding}/partners/{pid}", headers=me)).json()
        assert own["account_manager"] == "noah@vendor.example"
        view = (await client.get(f"{onboarding}/partners/{pid}/programme", headers=me)).json()
        assert view["account_manager"] == "noah@vendor.example"

    audited = await admin_db.fetchval(
        "SELECT count(*) FROM onboarding.audit_log WHERE action = 'account_manager.assigned' "
        "AND subject LIKE $1",
        f"{pid}:%",
    )
    assert audited == 2
    rows = await onboarding_outbox(admin_db, PARTNER_PROGRAMME, pid)
    assigned = [
        Envelope[AccountManagerAssigned].model_validate_json(r).data
        for r in rows
        if json.loads(r)["type"] == "partner.account_manager_assigned.v1"
    ]
    assert [(a.manager, a.previous_manager) for a in assigned] == [
        ("mia@vendor.example", None),
        ("noah@vendor.example", "mia@vendor.example"),
    ]
    notes = await onboarding_outbox(admin_db, PARTNER_NOTIFICATIONS, pid)
    told = [
        Envelope[PartnerNotificationV3].model_validate_json(n).data
        for n in notes
        if json.loads(n)["type"] == "notification.partner.v3"
    ]
    assert [(n.kind, n.subject.split(": ", 1)[1]) for n in told] == [
        (NotificationKindV3.PARTNER_MANAGER, "mia@vendor.example is now your account manager"),
        (NotificationKindV3.PARTNER_MANAGER, "noah@vendor.example is now your account manager"),
    ]


async def test_a_partner_appeals_its_own_demotion_and_a_rejected_appeal_changes_nothing(
    infra: Infra, onboarding: str, admin_db: asyncpg.Connection[asyncpg.Record]
) -> None:
    run = uuid.uuid4().hex[:10]
    domain = f"demoted-{run}.example"
    async with httpx.AsyncClient(timeout=30) as client:
        pid = await active_partner(client, onboarding, domain, ADMIN)
        today = datetime.now(UTC)
        review_on = today.date().replace(year=today.year + 1)
        # Silver now (revenue and the data competency); the data certifications lapse before
        # the review, an ai sales certification (no competency alone) stays valid.
        held = [
            ("sam", "sales", "data", review_on - timedelta(days=10)),
            ("tess", "technical", "data", review_on - timedelta(days=10)),
            ("ada", "sales", "ai", review_on + timedelta(days=300)),
        ]
        for person, role, track, until in held:
            await certify(
                client,
                onboarding,
                pid,
                f"{person}@{domain}",
                role,
                track,
                today - timedelta(days=1),
                datetime.combine(until, today.timetz()),
            )
        await attribute_revenue(infra, pid, "1500.00", today)
        await health_scored(infra, admin_db, pid, today.date(), Decimal("65"))

        async def silver() -> bool:
            state = (await client.get(f"{onboarding}/partners/{pid}", headers=ADMIN)).json()
            return bool(state["tier"] == "silver")

        await eventually(silver)
        at_review = datetime.combine(review_on, today.timetz())
        ran = await client.post(
            f"{onboarding}/admin/programme-year/run",
            headers=ADMIN,
            json={"as_of": at_review.isoformat(), "partner_ids": [pid]},
        )
        assert ran.json()["done"] == {pid: ["review:demoted"]}, ran.text
        state = (await client.get(f"{onboarding}/partners/{pid}", headers=ADMIN)).json()
        assert (state["status"], state["tier"]) == ("active", "registered")
        view = (await client.get(f"{onboarding}/partners/{pid}/programme", headers=ADMIN)).json()
        (demotion,) = view["reviews"]
        assert demotion["reasons"][0] == "below the silver bar"
        assert view["on_probation_until"] is None

        # The partner's admin appeals itself (a partner user may not); a manager rejects it.
        body = {"review_id": demotion["review_id"], "grounds": "the data team recertifies"}
        user = bearer(token(f"{pid}/u", Role.PARTNER_USER, partner_id=pid))
        admin = bearer(token(f"{pid}/a", Role.PARTNER_ADMIN, partner_id=pid))
        url = f"{onboarding}/partners/{pid}/requalification/appeals"
        assert (await client.post(url, headers=user, json=body)).status_code == 403
        filed = await client.post(url, headers=admin, json=body)
        assert filed.status_code == 201, filed.text
        assert "filed_by" not in filed.json() or filed.json()["filed_by"] is None
        rejected = await client.post(
            f"{onboarding}/admin/requalification/appeals/{filed.json()['appeal_id']}/decision",
            headers=ADMIN,
            json={"upheld": False, "note": "recertify first, then the tier follows"},
        )
        assert (rejected.status_code, rejected.json()["upheld"]) == (200, False)
        assert rejected.json()["filed_by"] == f"{pid}/a ({pid})"
        state = (await client.get(f"{onboarding}/partners/{pid}", headers=ADMIN)).json()
        assert (state["status"], state["tier"]) == ("active", "registered")
        view = (await client.get(f"{onboarding}/partners/{pid}/programme", headers=admin)).json()
        assert view["reviews"][0]["reversed_at"] is None
        assert view["reviews"][0]["appeal"]["upheld"] is False


async def test_a_run_naming_partners_that_do_not_exist_says_so_for_each(onboarding: str) -> None:
    """Found from outside: an admin naming a thousand unknown ids got "error" for each and the
    service wrote a thousand error tracebacks."""
    unknown = [f"ptn-nobody-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    async with httpx.AsyncClient(timeout=30) as client:
        year = await client.post(
            f"{onboarding}/admin/programme-year/run",
            headers=ADMIN,
            json={"partner_ids": unknown},
        )
        assert year.status_code == 200, year.text
        assert year.json()["done"] == {pid: ["not_found"] for pid in unknown}
        signals = await client.post(
            f"{onboarding}/admin/enablement-signals/run",
            headers=ADMIN,
            json={"partner_ids": unknown},
        )
        assert signals.status_code == 200, signals.text
        assert signals.json()["announced"] == {}
