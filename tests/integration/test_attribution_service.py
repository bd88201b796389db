"""Attribution as a real process on real Kafka + Postgres: a won deal becomes credits on the
credits topic, changes after close become reversals + new credits, redelivery credits nothing
twice, the lock period makes credits final, unattributable deals are dead-lettered with the
reason, and the touchpoint API refuses bad input precisely."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from services.attribution.domain.config import AttributionConfig
from services.attribution.repository import deal_lock_keys
from shared.events import Envelope
from shared.events.attribution import CreditIssued, CreditReversed, PartnerHealthScored
from shared.events.crm import CrmSource, Customer, DealStatus
from shared.events.registrations import RegistrationStatus
from shared.topics import (
    ATTRIBUTION_CREDITS,
    DEAL_OPPORTUNITIES,
    DEAL_REGISTRATIONS,
    PARTNER_HEALTH,
    PARTNER_PROGRAMME,
)
from tests.support.attribution import (
    CONFIG,
    TODAY,
    Deal,
    active_credits,
    approved_registration,
    credit_events,
    from_deals,
    link_key,
)
from tests.support.factories import (
    partner_enablement_measured,
    registration_decided,
    registration_status_changed,
)
from tests.support.infra import Infra
from tests.support.kafka import announce_partners, publish, send_envelopes
from tests.support.outbox import event_bytes
from tests.support.paging import every_page
from tests.support.polling import eventually
from tests.support.processes import ADMIN, auth, service_processes

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def service(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    config_file = Path(tmp_path_factory.mktemp("attribution")) / "attribution.json"
    config_file.write_text(json.dumps(CONFIG))
    async with service_processes(
        infra, "attribution", env={"ATTRIBUTION_CONFIG_FILE": str(config_file)}
    ) as urls:
        yield urls[0]


async def lock_waiters(admin_db: asyncpg.Connection, count: int) -> bool:
    """Whether `count` transactions (or more) wait for an advisory lock: the requests a test
    holds back with the locks they take."""
    waiting = await admin_db.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    )
    return bool(waiting >= count)


async def revision_applied(admin_db: asyncpg.Connection, deal_key: str, revision: int) -> bool:
    held = await admin_db.fetchval(
        "SELECT revision FROM attribution.deals WHERE deal_key = $1", deal_key
    )
    return held is not None and held >= revision


async def linked(service: str, source: CrmSource, reference: str, partner_id: str = "") -> None:
    """A channel manager proposes and confirms that the CRM's partner reference stands for
    `partner_id` (the reference itself unless said otherwise)."""
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        proposed = await client.post(
            "/crm-links",
            headers=ADMIN,
            json={
                "source": source.value,
                "external_id": reference,
                "partner_id": partner_id or reference,
            },
        )
        assert proposed.status_code == 201, proposed.text
        confirmed = await client.post(
            f"/crm-links/{source.value}/{reference}/confirm",
            headers=ADMIN,
            json={"partner_id": partner_id or reference},
        )
        assert confirmed.status_code == 200, confirmed.text


async def test_won_deal_is_split_across_partners_and_published(
    infra: Infra, service: str, admin_db: asyncpg.Connection
) -> None:
    run = uuid.uuid4().hex[:8]
    sourcer, seller, advisor, stranger = (f"{p}-{run}" for p in ("src", "mkt", "adv", "other"))
    deal = Deal(run)
    registration = approved_registration(f"reg-{run}", sourcer, days_ago=40)
    # the close date counts from the registration's own day, so a run crossing midnight
    # (UTC) still closes forty days after it
    close_day = registration.submitted_at.date() + timedelta(days=40)
    await linked(service, CrmSource.AWS_ACE, seller)
    opened = deal.snapshot(registrations=(registration,), partner_ref=seller)
    await deal.publish(infra, opened)
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        meeting = await client.post(
            "/touchpoints",
            headers=auth(advisor),
            json={
                "deal_key": deal.key,
                "kind": "co_sell_meeting",
                "occurred_at": (datetime.now(UTC) - timedelta(days=10)).isoformat(),
                "source": "advisor-app",
                "external_id": f"mtg-{run}",
            },
        )
        assert meeting.status_code == 201, meeting.text
        # the advisor is not linked to the deal: its meeting counts once a manager approves it
        assert meeting.json()["counted"] is False
        waiting = meeting.json()["touchpoint_id"]
        approved = await client.post(f"/touchpoints/{waiting}/approve", headers=ADMIN)
        assert approved.json()["counted"] is True, approved.text
        await eventually(lambda: revision_applied(admin_db, deal.key, 1))

        won = deal.closed(
            "10000", seller, currency="EUR", close_date=close_day, registrations=(registration,)
        )
        await deal.publish(infra, won)
        credits = await eventually(lambda: active_credits(admin_db, deal.key))
        # linear over three touchpoints: the customer bought through the marketplace seller,
        # and the partners who sourced and influenced the deal are credited all the same;
        # leftover cents go to the largest remainders, ties by partner id

        assert [
            (c["partner_id"], c["kind"], c["original_amount"], c["amount"]) for c in credits
        ] == [
            (advisor, "influenced", Decimal("3333.34"), Decimal("3666.67")),
            (seller, "influenced", Decimal("3333.33"), Decimal("3666.67")),
            (sourcer, "sourced", Decimal("3333.33"), Decimal("3666.66")),
        ]
        events = await credit_events(infra, deal, 3)
        issued = [e.data for e in events]
        assert {type(p) for p in issued} == {CreditIssued}
        assert sum(p.amount for p in issued) == Decimal("11000.00")
        assert {p.ingested_at for p in issued} == {deal.ingested_at}
        assert {(p.fx_rate, p.original_currency, p.currency, p.config_version) for p in issued} == {
            (Decimal("1.10"), "EUR", "USD", "test-linear-1")
        }
        assert {p.deal_revision for p in issued} == {2}

        everything = (await client.get(f"/deals/{deal.key}/attribution", headers=ADMIN)).json()
        assert (everything["sourced"], everything["influenced"]) == ("3666.66", "7333.34")
        reasons = next(c for c in everything["credits"] if c["partner_id"] == sourcer)["reasons"]
        assert reasons[0] == "linear (config test-linear-1): 33.33% of 10000.00 EUR"
        mine = (await client.get(f"/deals/{deal.key}/attribution", headers=auth(advisor))).json()
        assert [c["partner_id"] for c in mine["credits"]] == [advisor]
        assert {t["partner_id"] for t in mine["touchpoints"]} == {advisor}
        hidden = await client.get(f"/deals/{deal.key}/attribution", headers=auth(stranger))
        assert hidden.status_code == 404

        revenue = (await client.get(f"/partners/{sourcer}/revenue", headers=auth(sourcer))).json()
        assert (revenue["sourced"], revenue["influenced"], revenue["currency"]) == (
            "3666.66",
            "0",
            "USD",
        )
        assert revenue["by_period"] == [
            {
                "period": close_day.strftime("%Y-%m"),
                "sourced": "3666.66",
                "influenced": "0",
                "deals": 1,
            }
        ]
        # another partner's figures answer exactly as a partner that does not exist
        for figures in ("revenue", "health"):
            theirs = await client.get(f"/partners/{sourcer}/{figures}", headers=auth(advisor))
            nobody = await client.get(f"/partners/nobody-{run}/{figures}", headers=auth(advisor))
            assert (theirs.status_code, nobody.status_code) == (404, 404)
            assert theirs.json() == {"detail": f"partner {sourcer} not found"}
        health = (await client.get(f"/partners/{sourcer}/health", headers=auth(sourcer))).json()
        assert health["inputs"]["won"] == 1
        assert health["inputs"]["days_to_close"] == [40]
        assert Decimal(health["score"]) > 0


async def test_changes_after_close_reverse_and_reissue_never_edit(
    infra: Infra, service: str, admin_db: asyncpg.Connection
) -> None:
    run = uuid.uuid4().hex[:8]
    first, second = f"a-{run}", f"b-{run}"
    deal = Deal(run, CrmSource.SALESFORCE)
    created_at = datetime.now(UTC) - timedelta(days=20)
    await linked(service, CrmSource.SALESFORCE, first)
    won = deal.closed("1000", first, created_at=created_at)
    await deal.publish(infra, won)
    original = await eventually(lambda: active_credits(admin_db, deal.key))
    assert [(c["partner_id"], c["amount"]) for c in original] == [(first, Decimal("1000.00"))]

    # amount change after close: reversal of the old credit, a new one replacing it
    bigger = deal.closed("1500", first, created_at=created_at)
    await deal.publish(infra, bigger)

    async def replaced() -> list[Any] | None:
        rows = await active_credits(admin_db, deal.key)
        return rows if rows and rows[0]["amount"] == Decimal("1500.00") else None

    [current] = await eventually(replaced)
    assert current["replaces"] == original[0]["credit_id"]
    reversal = await admin_db.fetchrow(
        "SELECT reversal_reason, amount FROM attribution.credits WHERE credit_id = $1",
        original[0]["credit_id"],
    )
    assert reversal["amount"] == Decimal("1000.00")  # never edited
    assert "amount 1000 USD -> 1500 USD" in reversal["reversal_reason"]

    # an older snapshot arriving late changes nothing
    await deal.publish(infra, won)

    # a late touchpoint inside the lock period: the split moves to two partners
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        late = await client.post(
            "/touchpoints",
            headers=ADMIN,
            json={
                "deal_key": deal.key,
                "partner_id": second,
                "kind": "technical_validation",
                "occurred_at": (datetime.now(UTC) - timedelta(days=5)).isoformat(),
                "source": "crm-admin",
            },
        )
    assert late.status_code == 201, late.text
    assert late.json()["settlement"]["reversed"] == [current["credit_id"]]
    rows = await active_credits(admin_db, deal.key)
    assert [(c["partner_id"], c["amount"]) for c in rows] == [
        (first, Decimal("750.00")),
        (second, Decimal("750.00")),
    ]
    # the first partner sees its credit reversed and replaced, never who took a share
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        theirs = await client.get(f"/deals/{deal.key}/attribution", headers=auth(first))
    assert theirs.status_code == 200, theirs.text
    assert len(theirs.json()["history"]) == 2
    assert second not in theirs.text

    # lost after won: everything reversed; the partners' net revenue on the deal is zero
    lost = deal.closed("1500", first, status=DealStatus.LOST, created_at=created_at)
    await deal.publish(infra, lost)
    await eventually(lambda: revision_applied(admin_db, deal.key, lost.revision))
    assert await active_credits(admin_db, deal.key) == []
    events = await credit_events(infra, deal, 8)  # won 1, amount 1+1, touchpoint 1+2, lost 2
    issued = sum(e.data.amount for e in events if isinstance(e.data, CreditIssued))
    reversed_ = sum(e.data.amount for e in events if isinstance(e.data, CreditReversed))
    assert (len(events), issued - reversed_) == (8, Decimal(0))


async def test_redelivered_and_repeated_snapshots_never_credit_twice(
    infra: Infra, service: str, admin_db: asyncpg.Connection
) -> None:
    run = uuid.uuid4().hex[:8]
    deal = Deal(run, CrmSource.MICROSOFT)
    await linked(service, CrmSource.MICROSOFT, f"ref-{run}", f"partner-{run}")
    won = deal.closed("999.99", f"ref-{run}")
    envelope = from_deals(won, deal.key)
    again_with_new_id = from_deals(won, deal.key)
    # then a newer revision with nothing that matters changed: once it is applied, every
    # earlier record on this key (same partition, in order) has been processed
    marker = deal.snapshot(**{**won.model_dump(), "revision": 2, "name": "renamed"})
    await send_envelopes(
        infra,
        DEAL_OPPORTUNITIES.name,
        deal.key,
        envelope,
        envelope,
        again_with_new_id,
        from_deals(marker, deal.key),
    )
    await eventually(lambda: revision_applied(admin_db, deal.key, 2))
    count = await admin_db.fetchval(
        "SELECT count(*) FROM attribution.credits WHERE deal_key = $1", deal.key
    )
    published = await admin_db.fetchval(
        "SELECT count(*) FROM attribution.outbox WHERE message_key = $1 AND topic = $2",
        deal.key,
        ATTRIBUTION_CREDITS.name,
    )
    assert (count, published) == (1, 1)
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        metrics = (await client.get("/metrics.json")).json()
    assert metrics["consumers"]["attribution.deal-credits"]["duplicate"] >= 1  # the inbox saw it
    note = await admin_db.fetchval(
        "SELECT last_note FROM attribution.deals WHERE deal_key = $1", deal.key
    )
    assert note.endswith("credits unchanged")


async def test_after_the_lock_period_credits_are_final(
    infra: Infra, service: str, admin_db: asyncpg.Connection
) -> None:
    run = uuid.uuid4().hex[:8]
    deal = Deal(run, CrmSource.HUBSPOT)
    partner, created_at = f"p-{run}", datetime.now(UTC) - timedelta(days=150)
    closed = TODAY - timedelta(days=120)  # lock period (90 days) already over
    await linked(service, CrmSource.HUBSPOT, partner)
    await deal.publish(infra, deal.closed("500", partner, close_date=closed, created_at=created_at))
    await eventually(lambda: active_credits(admin_db, deal.key))
    changed = deal.closed("100", partner, close_date=closed, created_at=created_at)
    await deal.publish(infra, changed)
    await eventually(lambda: revision_applied(admin_db, deal.key, 2))
    rows = await active_credits(admin_db, deal.key)
    assert [c["amount"] for c in rows] == [Decimal("500.00")]
    note = await admin_db.fetchval(
        "SELECT last_note FROM attribution.deals WHERE deal_key = $1", deal.key
    )
    assert "ignored, credits are final since" in note


async def test_late_approved_registration_makes_its_partner_the_source(
    infra: Infra, service: str, admin_db: asyncpg.Connection
) -> None:
    run = uuid.uuid4().hex[:8]
    partner = f"reg-partner-{run}"
    deal = Deal(run, CrmSource.SALESFORCE)
    await linked(service, CrmSource.SALESFORCE, partner)
    won = deal.closed("200", partner, created_at=datetime.now(UTC) - timedelta(days=3))
    await deal.publish(infra, won)
    [influenced] = await eventually(lambda: active_credits(admin_db, deal.key))
    assert influenced["kind"] == "influenced"
    decided = registration_decided(
        registration_id=f"reg-{run}",
        partner_id=partner,
        customer=Customer(name="Contoso"),
        amount=Decimal("200"),
        decided_at=datetime.now(UTC) - timedelta(days=30),
        crm_deal_key=deal.key,
    )
    key = decided.registration_id
    await publish(infra, DEAL_REGISTRATIONS, [decided], subject=key, source="deals")

    async def sourced() -> list[Any] | None:
        rows = await active_credits(admin_db, deal.key)
        return rows if rows and rows[0]["kind"] == "sourced" else None

    [credit] = await eventually(sourced)
    assert (credit["amount"], credit["replaces"]) == (Decimal("200.00"), influenced["credit_id"])
    # The partner is told what became of its credit; what triggered it (here a registration,
    # elsewhere another partner's) stays in attribution's records for the channel team.
    issued, reversal, _ = await credit_events(infra, deal, 3)
    assert (issued.type, reversal.type) == ("credit.issued.v1", "credit.reversed.v1")
    assert reversal.data.reason == (
        "the deal's credits were settled again: a corrected sourced credit of 200.00 USD replaces it"
    )
    kept = await admin_db.fetchval(
        "SELECT reversal_reason FROM attribution.credits WHERE credit_id = $1",
        influenced["credit_id"],
    )
    assert f"registration {key} of {partner} is approved" in kept


async def test_a_registration_sent_back_to_review_sources_no_deal_while_in_review(
    infra: Infra, service: str, admin_db: asyncpg.Connection
) -> None:
    """Deals sends an approved registration back to review when a CRM merge displaces it; a
    partner may link it to another deal meanwhile. Statuses are the newest word's, not the
    most advanced: found from outside, the approval stuck and the other deal paid the partner
    as its source."""
    run = uuid.uuid4().hex[:8]
    partner, key = f"rereview-{run}", f"reg-rereview-{run}"
    first, second = Deal(f"{run}-a", CrmSource.SALESFORCE), Deal(f"{run}-b", CrmSource.SALESFORCE)
    approved = approved_registration(key, partner, days_ago=5)
    await first.publish(infra, first.snapshot(registrations=(approved,)))
    await eventually(lambda: revision_applied(admin_db, first.key, 1))
    back = registration_status_changed(
        registration_id=key,
        partner_id=partner,
        previous_status=RegistrationStatus.APPROVED,
        status=RegistrationStatus.PENDING_REVIEW,
        reason="its opportunity was merged into another",
        changed_at=datetime.now(UTC),
    )
    await publish(infra, DEAL_REGISTRATIONS, [back], subject=key, source="deals")

    async def in_review() -> bool:
        status = await admin_db.fetchval(
            "SELECT status FROM attribution.registrations WHERE registration_id = $1", key
        )
        return bool(status == "pending_review")

    await eventually(in_review)
    linked_in_review = approved.model_copy(update={"status": RegistrationStatus.PENDING_REVIEW})
    won = second.snapshot(
        status=DealStatus.WON,
        amount=Decimal("1000"),
        currency="USD",
        close_date=TODAY,
        registrations=(linked_in_review,),
    )
    await second.publish(infra, won)
    await eventually(lambda: revision_applied(admin_db, second.key, 1))
    assert await active_credits(admin_db, second.key) == []


async def test_a_lost_registration_sources_a_reopened_deal_only_while_nobody_else_holds_it(
    infra: Infra, service: str, admin_db: asyncpg.Connection
) -> None:
    """Found in review: deals lets another partner link a deal that closed lost and reopened
    (the lost registration holds it no more), and attribution paid both as its source. Alone
    on the deal, the lost registration's partner is still its source."""
    run = uuid.uuid4().hex[:8]
    first, holder, alone = f"lost-{run}", f"holder-{run}", f"alone-{run}"
    contested, quiet = (
        Deal(f"{run}-c", CrmSource.SALESFORCE),
        Deal(f"{run}-q", CrmSource.SALESFORCE),
    )

    def registration(key: str, partner: str, status: RegistrationStatus) -> Any:
        found = approved_registration(key, partner, days_ago=40)
        return found.model_copy(update={"status": status})

    won = {
        "status": DealStatus.WON,
        "amount": Decimal("1000"),
        "currency": "USD",
        "close_date": TODAY,
    }
    lost_then = registration(f"reg-lost-{run}", first, RegistrationStatus.LOST)
    took_it = registration(f"reg-took-{run}", holder, RegistrationStatus.WON)
    await contested.publish(infra, contested.snapshot(**won, registrations=(lost_then, took_it)))
    lost_alone = registration(f"reg-alone-{run}", alone, RegistrationStatus.LOST)
    await quiet.publish(infra, quiet.snapshot(**won, registrations=(lost_alone,)))
    await eventually(lambda: active_credits(admin_db, contested.key))
    await eventually(lambda: active_credits(admin_db, quiet.key))
    assert {c["partner_id"] for c in await active_credits(admin_db, contested.key)} == {holder}
    assert {c["partner_id"] for c in await active_credits(admin_db, quiet.key)} == {alone}


async def test_an_approval_settles_the_deal_a_merge_moved_its_touchpoint_to(
    infra: Infra, service: str, admin_db: asyncpg.Connection
) -> None:
    """Found from outside: the approval read the touchpoint's deal before taking its lock; a
    CRM merge moving the touchpoint in between left the approval settling the merged deal and
    the survivor, where it now counted, unsettled."""
    run = uuid.uuid4().hex[:8]
    owner, reporter = f"owner-mv-{run}", f"reporter-mv-{run}"
    merged, survivor = (
        Deal(f"{run}-m", CrmSource.SALESFORCE),
        Deal(f"{run}-s", CrmSource.SALESFORCE),
    )
    created_at = datetime.now(UTC) - timedelta(days=30)
    await merged.publish(infra, merged.snapshot(created_at=created_at))
    registration = approved_registration(f"reg-mv-{run}", owner, days_ago=20)
    won = survivor.closed("1000", owner, created_at=created_at, registrations=(registration,))
    await survivor.publish(infra, won)
    await eventually(lambda: revision_applied(admin_db, merged.key, 1))
    await eventually(lambda: active_credits(admin_db, survivor.key))
    occurred = (datetime.now(UTC) - timedelta(days=25)).isoformat()
    report = {"deal_key": merged.key, "kind": "referral", "occurred_at": occurred, "source": "app"}
    [lock_key] = deal_lock_keys([merged.key])
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        reported = await client.post("/touchpoints", headers=auth(reporter), json=report)
        assert reported.status_code == 201, reported.text
        touchpoint_id = reported.json()["touchpoint_id"]

        # The merged deal's lock held here while the touchpoint moves, as a merge moves it.
        async with admin_db.transaction():
            await admin_db.execute("SELECT pg_advisory_xact_lock($1)", lock_key)
            approving = asyncio.create_task(
                client.post(f"/touchpoints/{touchpoint_id}/approve", headers=ADMIN)
            )
            await eventually(
                lambda: lock_waiters(admin_db, 1), what="the approval waiting for the deal's lock"
            )
            await admin_db.execute(
                "UPDATE attribution.touchpoints SET deal_key = $1 WHERE touchpoint_id = $2",
                survivor.key,
                touchpoint_id,
            )
        approved = await approving
    assert approved.status_code == 200, approved.text
    credited = {c["partner_id"] for c in await active_credits(admin_db, survivor.key)}
    assert credited == {owner, reporter}


async def test_unattributable_won_deal_is_dead_lettered_with_the_reason(
    infra: Infra, service: str, admin_db: asyncpg.Connection
) -> None:
    run = uuid.uuid4().hex[:8]
    deal = Deal(run)
    won = deal.closed("10", f"p-{run}", currency="CHF")
    await deal.publish(infra, won)

    async def dead_letter() -> Any:
        return await admin_db.fetchval(
            "SELECT headers->>'dlq.reason' FROM attribution.outbox WHERE topic = $1 AND message_key = $2",
            "attribution.dlq.v1",
            deal.key,
        )

    reason = await eventually(dead_letter)
    assert f"deal {deal.key} revision 1: no CHF->USD rate on or before the close date" in reason
    assert (
        await admin_db.fetchval(
            "SELECT count(*) FROM attribution.deals WHERE deal_key = $1", deal.key
        )
        == 0
    )  # nothing half-written


@pytest.mark.parametrize(
    ("headers", "body", "status", "detail"),
    [
        ({}, {}, 401, "missing bearer token"),
        (
            auth("p-1"),
            {"partner_id": "p-2"},
            403,
            "a partner may report touchpoints only for itself",
        ),
        (ADMIN, {}, 422, "admin touchpoints must name partner_id"),
        (auth("p-1"), {"kind": "sourced_registration"}, 422, "kind"),
        (auth("p-1"), {"occurred_at": "2026-01-01T00:00:00"}, 422, "timezone"),
        (auth("p-1"), {"deal_key": "no-source"}, 422, "deal_key"),
        (auth("p-1"), {"surprise": 1}, 422, "Extra inputs are not permitted"),
        (
            auth("p-1"),
            {"occurred_at": (datetime.now(UTC) + timedelta(days=2)).isoformat()},
            422,
            "is in the future",
        ),
    ],
)
async def test_touchpoint_api_refuses_bad_input_precisely(
    service: str, headers: dict[str, str], body: dict[str, Any], status: int, detail: str
) -> None:
    valid = {
        "deal_key": f"salesforce:{uuid.uuid4().hex[:8]}",
        "kind": "referral",
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": "test",
    }
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        response = await client.post("/touchpoints", headers=headers, json={**valid, **body})
    assert response.status_code == status, response.text
    assert detail in response.text


async def test_touchpoint_external_id_is_idempotent(service: str) -> None:
    body = {
        "deal_key": f"salesforce:{uuid.uuid4().hex[:8]}",
        "kind": "referral",
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": "partner-crm",
        "external_id": uuid.uuid4().hex,
    }
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        first = await client.post("/touchpoints", headers=auth("p-1"), json=body)
        again = await client.post("/touchpoints", headers=auth("p-1"), json=body)
        clash = await client.post(
            "/touchpoints", headers=auth("p-1"), json={**body, "kind": "implementation"}
        )
        # Another partner's report of the same (source, external_id) is its own touchpoint:
        # reported first, it made p-1's own report a 409 (found in review).
        theirs = await client.post("/touchpoints", headers=auth("p-2"), json=body)
    assert (first.status_code, again.status_code, clash.status_code) == (201, 200, 409)
    assert theirs.status_code == 201, theirs.text
    assert theirs.json()["touchpoint_id"] != first.json()["touchpoint_id"]
    assert again.json() == {
        "touchpoint_id": first.json()["touchpoint_id"],
        "created": False,
        "counted": False,
        "settlement": None,
    }
    assert "already reported for a different touchpoint" in clash.text


async def test_one_external_id_on_two_deals_at_once_is_one_touchpoint_and_a_409(
    service: str, admin_db: asyncpg.Connection
) -> None:
    """Found in review: two reports of one external id on two deals, each under its own
    deal's lock, both found no touchpoint yet; the second met the first's row in the index and
    answered 500."""
    deals = [f"salesforce:ext-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    body = {
        "kind": "referral",
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": "partner-crm",
        "external_id": uuid.uuid4().hex,
    }
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        # Both deals' locks held here until both reports wait.
        async with admin_db.transaction():
            for key in deal_lock_keys(deals):
                await admin_db.execute("SELECT pg_advisory_xact_lock($1)", key)
            reports = [
                asyncio.create_task(
                    client.post("/touchpoints", headers=auth("p-1"), json={**body, "deal_key": d})
                )
                for d in deals
            ]
            await eventually(lambda: lock_waiters(admin_db, 2), what="both reports waiting")
        answers = [await report for report in reports]
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 409)
    assert "already reported for a different touchpoint" in refused.text


async def test_racing_touchpoints_on_a_won_deal_leave_one_exact_split(
    infra: Infra, service: str, admin_db: asyncpg.Connection
) -> None:
    run = uuid.uuid4().hex[:8]
    deal = Deal(run, CrmSource.SALESFORCE)
    await linked(service, CrmSource.SALESFORCE, f"p0-{run}")
    won = deal.closed("1000", f"p0-{run}", created_at=datetime.now(UTC) - timedelta(days=30))
    await deal.publish(infra, won)
    await eventually(lambda: active_credits(admin_db, deal.key))
    partners = [f"p{i}-{run}" for i in range(1, 9)]
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    "/touchpoints",
                    headers=ADMIN,  # a channel manager's touchpoints count at once
                    json={
                        "deal_key": deal.key,
                        "partner_id": partner,
                        "kind": "referral",
                        "occurred_at": (datetime.now(UTC) - timedelta(days=i + 1)).isoformat(),
                        "source": "race",
                    },
                )
                for i, partner in enumerate(partners)
            )
        )
    assert [r.status_code for r in responses] == [201] * 8
    rows = await active_credits(admin_db, deal.key)
    assert len(rows) == 9  # one active credit per partner, none lost to a race
    assert sum(r["amount"] for r in rows) == Decimal("1000.00")
    issued_minus_reversed = await admin_db.fetchval(
        """SELECT sum(amount) FILTER (WHERE true) - coalesce(sum(amount) FILTER
                  (WHERE reversed_at IS NOT NULL), 0)
           FROM attribution.credits WHERE deal_key = $1""",
        deal.key,
    )
    assert issued_minus_reversed == Decimal("1000.00")


async def test_the_policy_in_force_is_shown_to_channel_managers_only(service: str) -> None:
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        shown = await client.get("/config", headers=ADMIN)
        refused = await client.get("/config", headers=auth("p-1"))
    assert shown.status_code == 200
    assert shown.json() == AttributionConfig.model_validate(CONFIG).model_dump(mode="json")
    assert shown.json()["version"] == "test-linear-1"
    assert (refused.status_code, refused.json()) == (
        403,
        {"detail": "this needs the role channel_manager"},
    )


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("period=week", "period must be one of month, quarter, year, not 'week'"),
        ("since=2026-02-01&until=2026-01-01", "since is after until"),
    ],
)
async def test_revenue_refuses_a_meaningless_query_precisely(
    service: str, query: str, detail: str
) -> None:
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        response = await client.get(f"/partners/p-1/revenue?{query}", headers=auth("p-1"))
    assert (response.status_code, response.json()) == (422, {"detail": detail})


async def test_a_partner_not_linked_to_a_deal_takes_none_of_its_credit(
    infra: Infra, service: str, admin_db: asyncpg.Connection
) -> None:
    """The attack: any partner reports touchpoints on another partner's won deal to take most of
    its credit, and the answer names every partner on the deal. Now its touchpoints wait for a
    channel manager, take nothing, and the answer names no one else."""
    run = uuid.uuid4().hex[:8]
    owner, intruder = f"owner-{run}", f"intruder-{run}"
    deal = Deal(run, CrmSource.SALESFORCE)
    created_at = datetime.now(UTC) - timedelta(days=30)
    registration = approved_registration(f"reg-{run}", owner, days_ago=20)
    won = deal.closed("1000", owner, created_at=created_at, registrations=(registration,))
    await deal.publish(infra, won)
    before = await eventually(lambda: active_credits(admin_db, deal.key))
    assert {c["partner_id"] for c in before} == {owner}

    def claim(kind: str, days_ago: int) -> dict[str, Any]:
        occurred = datetime.now(UTC) - timedelta(days=days_ago)
        return {
            "deal_key": deal.key,
            "kind": kind,
            "occurred_at": occurred.isoformat(),
            "source": "intruder-app",
        }

    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        answers = [
            await client.post("/touchpoints", headers=auth(intruder), json=claim(kind, 25))
            for kind in ("referral", "co_sell_meeting")
        ]
        after = await active_credits(admin_db, deal.key)
        assert [(c["partner_id"], c["credit_id"]) for c in after] == [
            (c["partner_id"], c["credit_id"]) for c in before
        ]
        unknown = await client.post(
            "/touchpoints",
            headers=auth(intruder),
            json={**claim("referral", 25), "deal_key": f"salesforce:none{run}"},
        )
        for answer in [*answers, unknown]:
            assert answer.status_code == 201, answer.text
            assert owner not in answer.text
            assert not any(c["credit_id"] in answer.text for c in before)
            # as for a deal not known: no word of whether it is open, lost or won, nor when
            assert answer.json()["counted"] is False
            assert answer.json()["settlement"] is None
        # at most one per partner, deal and kind; one dated before the deal was created is not
        # refused (moving occurred_at, the refusals told the intruder when the deal was made)
        # but waits, and its approval refuses it, naming the creation to the manager
        again = await client.post("/touchpoints", headers=auth(intruder), json=claim("referral", 3))
        early = await client.post(
            "/touchpoints", headers=auth(intruder), json=claim("implementation", 40)
        )
        assert (again.status_code, early.status_code) == (409, 201), early.text
        assert early.json()["counted"] is False
        too_early = await client.post(
            f"/touchpoints/{early.json()['touchpoint_id']}/approve", headers=ADMIN
        )
        assert too_early.status_code == 422, too_early.text
        assert "before the deal was created" in too_early.text
        assert created_at.isoformat()[:16] in too_early.text
        # the intruder's view of the deal shows its own waiting touchpoints, no one's credits
        mine = (await client.get(f"/deals/{deal.key}/attribution", headers=auth(intruder))).json()
        assert (mine["credits"], {t["partner_id"] for t in mine["touchpoints"]}) == ([], {intruder})
        assert mine["deal"] is None  # nor the deal's amount, status or close date
        # and waiting touchpoints on a won deal do not make it one of the intruder's wins
        health = await client.get(f"/partners/{intruder}/health", headers=auth(intruder))
        assert health.json()["inputs"]["won"] == 0

        # a channel manager sees them waiting (the intruder may not) and approves one
        # A page at a time, of the intruder's alone (found in review: the oldest 500 of all
        # were all a manager could see, and those never approved stay waiting).
        mine = {"partner_id": intruder}
        listed = (await client.get("/touchpoints/waiting", params=mine, headers=ADMIN)).json()
        assert {t["touchpoint_id"] for t in listed} >= {a.json()["touchpoint_id"] for a in answers}
        assert {t["partner_id"] for t in listed} == {intruder}
        paged, after = [], None
        while True:
            page = {**mine, "limit": 1, **({"after": after} if after else {})}
            found = (await client.get("/touchpoints/waiting", params=page, headers=ADMIN)).json()
            if not found:
                break
            paged += [t["touchpoint_id"] for t in found]
            after = found[-1]["touchpoint_id"]
        assert paged == [t["touchpoint_id"] for t in listed]
        stray = {"after": "tp_nobody"}
        assert (
            await client.get("/touchpoints/waiting", params=stray, headers=ADMIN)
        ).status_code == 422
        listing = await client.get("/touchpoints/waiting", headers=auth(intruder))
        assert listing.status_code == 403
        waiting = answers[0].json()["touchpoint_id"]
        refused = await client.post(f"/touchpoints/{waiting}/approve", headers=auth(intruder))
        approved = await client.post(f"/touchpoints/{waiting}/approve", headers=ADMIN)
        assert (refused.status_code, approved.status_code) == (403, 200), approved.text
        assert approved.json()["counted"] is True
        listed = (await client.get("/touchpoints/waiting", params=mine, headers=ADMIN)).json()
        assert waiting not in {t["touchpoint_id"] for t in listed}
    rows = await active_credits(admin_db, deal.key)
    assert {c["partner_id"] for c in rows} >= {owner, intruder}
    assert sum(c["amount"] for c in rows) == Decimal("1000.00")


async def test_an_unmatched_crm_partner_reference_pays_no_one_until_a_manager_links_it(
    infra: Infra, service: str, admin_db: asyncpg.Connection
) -> None:
    """The attack: whatever the CRM's partner field says was credited as a partner id, at
    once. Now an unmatched reference parks the credit for review until a manager confirms a
    link; removing the link takes the credit back."""
    run = uuid.uuid4().hex[:8]
    reference, partner = f"0015g{run}", f"partner-{run}"
    deal = Deal(run, CrmSource.SALESFORCE)
    won = deal.closed("800", reference, created_at=datetime.now(UTC) - timedelta(days=9))
    await deal.publish(infra, won)
    await eventually(lambda: revision_applied(admin_db, deal.key, won.revision))
    assert await active_credits(admin_db, deal.key) == []
    path = f"/crm-links/salesforce/{reference}"
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        unmatched = (await client.get("/crm-links/unmatched", headers=ADMIN)).json()
        assert {"partner_ref": reference, "deals": 1, "won": 1}.items() <= next(
            u for u in unmatched if (u["source"], u["partner_ref"]) == ("salesforce", reference)
        ).items()
        of_reference = {"source": "salesforce", "partner_ref": reference}
        unmatched_deals = await client.get(
            "/crm-links/unmatched/deals", headers=ADMIN, params=of_reference
        )
        assert [(d["deal_key"], d["status"], d["amount"]) for d in unmatched_deals.json()] == [
            (deal.key, "won", "800")
        ]
        body = {"source": "salesforce", "external_id": reference, "partner_id": partner}
        refused = [
            (await client.get("/crm-links/unmatched", headers=auth(partner))).status_code,
            (
                await client.get(
                    "/crm-links/unmatched/deals", headers=auth(partner), params=of_reference
                )
            ).status_code,
            (await client.post("/crm-links", headers=auth(partner), json=body)).status_code,
        ]
        proposed = await client.post("/crm-links", headers=ADMIN, json=body)
        assert (proposed.status_code, proposed.json()["status"]) == (201, "proposed")
        assert await active_credits(admin_db, deal.key) == []  # a proposal credits no one
        approve = {"partner_id": partner}
        refused.append(
            (await client.post(f"{path}/confirm", headers=auth(partner), json=approve)).status_code
        )
        assert refused == [403, 403, 403, 403]
        # a proposal replaced since the manager read it is not confirmed in its place (found
        # from outside: the swapped partner was credited)
        swapped = await client.post("/crm-links", headers=ADMIN, json={**body, "partner_id": "y"})
        assert swapped.status_code == 201, swapped.text
        unseen = await client.post(f"{path}/confirm", headers=ADMIN, json=approve)
        assert unseen.status_code == 409, unseen.text
        assert "proposed for partner y, not" in unseen.json()["detail"]
        assert await active_credits(admin_db, deal.key) == []
        assert (await client.post("/crm-links", headers=ADMIN, json=body)).status_code == 201
        confirmed = (await client.post(f"{path}/confirm", headers=ADMIN, json=approve)).json()
        assert (confirmed["link"]["status"], confirmed["deals_settled"]) == (
            "confirmed",
            [deal.key],
        )
        audited = await admin_db.fetch(
            "SELECT action FROM attribution.audit_log WHERE subject LIKE $1 ORDER BY id",
            f"salesforce:{reference} %",
        )
        assert [a["action"] for a in audited] == [
            "crm_link.propose",
            "crm_link.propose",
            "crm_link.propose",
            "crm_link.confirm",
        ]
        rows = await active_credits(admin_db, deal.key)
        assert [(c["partner_id"], c["amount"]) for c in rows] == [(partner, Decimal("800.00"))]
        unmatched = (await client.get("/crm-links/unmatched", headers=ADMIN)).json()
        assert ("salesforce", reference) not in {(u["source"], u["partner_ref"]) for u in unmatched}
        linked = await client.get("/crm-links/unmatched/deals", headers=ADMIN, params=of_reference)
        assert linked.json() == []
        pages = await every_page(client, "/crm-links", link_key, status="confirmed")
        listed = [link for page in pages for link in page]
        assert {"external_id": reference, "partner_id": partner}.items() <= next(
            link for link in listed if link["external_id"] == reference
        ).items()
        # a link confirmed for one partner is not moved to another by a new proposal
        moved = await client.post("/crm-links", headers=ADMIN, json={**body, "partner_id": "x"})
        assert moved.status_code == 409
        removed = await client.post(f"{path}/remove", headers=ADMIN)
        assert removed.json()["deals_settled"] == [deal.key]
    assert await active_credits(admin_db, deal.key) == []


async def test_links_page_past_a_reference_of_the_longest_length(service: str) -> None:
    """A link's place is its source, a colon and its reference (up to 200 characters): a page
    must be able to start after the longest one, from any CRM."""
    reference = f"{uuid.uuid4().hex}-" + "r" * 167
    assert len(reference) == 200
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        body = {"source": "microsoft", "external_id": reference, "partner_id": "p-long"}
        proposed = await client.post("/crm-links", headers=ADMIN, json=body)
        assert proposed.status_code == 201, proposed.text
        pages = await every_page(client, "/crm-links", link_key, limit=1, status="proposed")
        refused = await client.get(
            "/crm-links", headers=ADMIN, params={"after": "crm:" + reference}
        )
    assert any(link["external_id"] == reference for page in pages for link in page)
    assert refused.status_code == 422, refused.text


async def test_a_reference_that_is_a_partner_id_counts_only_once_confirmed(
    infra: Infra, service: str, admin_db: asyncpg.Connection
) -> None:
    """The identity shortcut: a reference that IS a partner id stands for that partner, from
    every CRM, once a manager confirmed it (once)."""
    run = uuid.uuid4().hex[:8]
    partner = f"ident-{run}"
    first, second = Deal(f"a{run}", CrmSource.HUBSPOT), Deal(f"b{run}", CrmSource.MICROSOFT)
    created_at = datetime.now(UTC) - timedelta(days=9)
    await first.publish(infra, first.closed("100", partner, created_at=created_at))
    await eventually(lambda: revision_applied(admin_db, first.key, 1))
    assert await active_credits(admin_db, first.key) == []
    await linked(service, CrmSource.HUBSPOT, partner)
    [credit] = await active_credits(admin_db, first.key)
    assert credit["partner_id"] == partner
    await second.publish(infra, second.closed("50", partner, created_at=created_at))
    [other] = await eventually(lambda: active_credits(admin_db, second.key))
    assert (other["partner_id"], other["amount"]) == (partner, Decimal("50.00"))


async def test_health_counts_the_window_to_the_day_scored_and_nothing_after_it(
    infra: Infra, service: str, admin_db: asyncpg.Connection
) -> None:
    """The window is the last `window_days` days to the day scored, both ends included, as
    onboarding's revenue window is. Found in review: it was one day longer, and open at its end,
    so a backdated run counted a deal won after its day."""
    run = uuid.uuid4().hex[:8]
    partner = f"p-window-{run}"
    await announce_partners(infra, partner)
    await linked(service, CrmSource.SALESFORCE, partner)
    deal = Deal(run, CrmSource.SALESFORCE)
    won_on = datetime.now(UTC).date()
    await deal.publish(infra, deal.closed("1000", partner, close_date=won_on))
    await eventually(lambda: active_credits(admin_db, deal.key))
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:

        async def revenue_on(day: date) -> str:
            moment = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
            body = {"as_of": moment.isoformat(), "partner_ids": [partner]}
            answer = await client.post("/admin/health/run", headers=ADMIN, json=body)
            assert answer.status_code == 200, answer.text
            inputs = await admin_db.fetchval(
                "SELECT inputs FROM attribution.health_scores WHERE partner_id = $1 AND day = $2",
                partner,
                day,
            )
            return str(json.loads(inputs)["revenue"])

        window = 365  # the default health window (CONFIG names none)
        seen = [
            await revenue_on(won_on - timedelta(days=1)),  # before the win
            await revenue_on(won_on),
            await revenue_on(won_on + timedelta(days=window - 1)),  # its last day in
            await revenue_on(won_on + timedelta(days=window)),  # out
        ]
    assert [Decimal(r) for r in seen] == [0, 1000, 1000, 0]


async def test_health_is_stored_daily_counts_enablement_and_is_announced_when_it_moves(
    infra: Infra, service: str, admin_db: asyncpg.Connection
) -> None:
    run = uuid.uuid4().hex[:8]
    pid, other = f"p-health-{run}", f"p-health-other-{run}"
    await announce_partners(infra, pid, other)

    async def in_programme() -> bool:
        count = await admin_db.fetchval(
            "SELECT count(*) FROM attribution.partner_access WHERE partner_id = ANY($1)",
            [pid, other],
        )
        return bool(count == 2)

    await eventually(in_programme)
    day0 = datetime.now(UTC) + timedelta(days=30)

    async def health_run(as_of: datetime, **body: Any) -> dict[str, str]:
        answer = await client.post(
            "/admin/health/run", headers=ADMIN, json={"as_of": as_of.isoformat(), **body}
        )
        assert answer.status_code == 200, answer.text
        announced: dict[str, str] = answer.json()["announced"]
        return announced

    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        # A partner's people may read its history; no one else (404 as for a missing one).
        assert (await client.post("/admin/health/run", headers=auth(pid))).status_code == 403
        # First run: every partner in the programme is scored and announced (the first time).
        first = await health_run(day0)
        assert (first[pid], first[other]) == ("0.0", "0.0")
        # Same figures the next day: stored, not announced again.
        assert pid not in await health_run(day0 + timedelta(days=1), partner_ids=[pid])
        # Onboarding measures the partner's enablement (an older measurement after it is
        # ignored): the signal takes its weight in the score, which moves and is announced.
        measured = partner_enablement_measured(partner_id=pid, score=Decimal("80.0"))
        stale = partner_enablement_measured(
            partner_id=pid, score=Decimal("10.0"), measured_at=measured.measured_at - timedelta(1)
        )
        await publish(infra, PARTNER_PROGRAMME, [measured, stale], subject=pid, source="onboarding")

        async def enablement_known() -> bool:
            health = (await client.get(f"/partners/{pid}/health", headers=auth(pid))).json()
            return bool(health["inputs"]["enablement"] == "80.0")

        await eventually(enablement_known)
        moved = await health_run(day0 + timedelta(days=2), partner_ids=[pid])
        assert moved == {pid: "16.0"}  # 100 * 0.2 * 0.8: the core signals are all 0

        history = await client.get(
            f"/partners/{pid}/health/history",
            params={"since": day0.date().isoformat()},
            headers=auth(pid),
        )
        assert history.status_code == 200, history.text
        days = history.json()["days"]
        assert [(d["day"], d["score"], d["announced"]) for d in days] == [
            (day0.date().isoformat(), "0.0", True),
            ((day0 + timedelta(days=1)).date().isoformat(), "0.0", False),
            ((day0 + timedelta(days=2)).date().isoformat(), "16.0", True),
        ]
        assert days[2]["components"]["enablement"] == "0.8000"
        assert any("enablement 80.0 of 100" in r for r in days[2]["reasons"])
        hidden = await client.get(f"/partners/{pid}/health/history", headers=auth(other))
        assert hidden.status_code == 404
        reversed_range = await client.get(
            f"/partners/{pid}/health/history",
            params={"since": "2027-02-01", "until": "2027-01-01"},
            headers=ADMIN,
        )
        assert reversed_range.status_code == 422

    rows = await admin_db.fetch(
        "SELECT value, value_codec FROM attribution.outbox WHERE topic = $1 AND message_key = $2 "
        "ORDER BY position",
        PARTNER_HEALTH.name,
        pid,
    )
    scored = [Envelope[PartnerHealthScored].model_validate_json(event_bytes(r)).data for r in rows]
    assert [(s.day, s.score, s.previous_score, s.enablement) for s in scored] == [
        (day0.date(), Decimal("0.0"), None, None),
        ((day0 + timedelta(days=2)).date(), Decimal("16.0"), Decimal("0.0"), Decimal("0.8000")),
    ]
