"""MDF pre-approvals on a real Postgres schema: approval reserves the amount in the fund (a
claim without pre-approval cannot spend it), partial claims with proof draw on it up to the
approved amount, expiry releases what is left, idempotent retries, every state change in the
outbox, a campaign incentives has heard of required; and over HTTP against a real process and
Kafka, the refusals a partner meets."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from services.incentives import campaign_projection, mdf_preapprovals, views
from services.incentives.domain.claims import ClaimAsk, ClaimConflict
from services.incentives.domain.preapprovals import PreapprovalConflict
from services.incentives.domain.programs import IncentivePrograms
from services.incentives.mdf_claims import decide_claim, request_claim
from shared.db import Pool
from shared.errors import Conflict, NotFound, Unprocessable
from shared.topics import INCENTIVE_LEDGER, PROGRAMME_CAMPAIGNS
from tests.support.factories import credit_issued
from tests.support.incentives import (
    MIGRATIONS,
    OUTBOX,
    ask,
    budget,
    campaign_changed,
    claim_on,
    decide,
    fund_state,
    funded_partner,
    heard_of_campaign,
    partner_at_tier,
    publish_credits,
)
from tests.support.infra import Infra, scratch_pool_fixture
from tests.support.kafka import publish, wait_for_keyed
from tests.support.outbox import event_json
from tests.support.polling import eventually
from tests.support.processes import ADMIN, auth, service_fixture

pytestmark = pytest.mark.integration
D = Decimal


pool = scratch_pool_fixture("incentives", MIGRATIONS)


async def decide_on(pool: Pool, programs: IncentivePrograms, claim_id: str, approve: bool) -> Any:
    async with pool.acquire() as conn, conn.transaction():
        return await decide_claim(
            conn, OUTBOX, programs, claim_id, approve=approve, note="receipts checked"
        )


async def announced(pool: Pool, preapproval_id: str) -> list[tuple[str, str, str, str]]:
    """(status, reserved, claimed, released) of each announcement of the pre-approval."""
    rows = await pool.fetch(
        """SELECT value, value_codec FROM outbox WHERE event_type = 'incentive.mdf_preapproval_changed.v1'
           ORDER BY position"""
    )
    found = [event_json(r)["data"] for r in rows]
    return [
        (e["status"], e["reserved"], e["claimed"], e["released"])
        for e in found
        if e["preapproval_id"] == preapproval_id
    ]


async def told(pool: Pool, partner: str) -> list[tuple[str, str, str, str]]:
    """(type, kind, subject, body) of each pre-approval notification the outbox holds for the
    partner (its earnings are told too: not these)."""
    rows = await pool.fetch(
        """SELECT event_id, value, value_codec FROM outbox WHERE topic = 'notifications.partner.v1'
           AND message_key = $1 ORDER BY position""",
        partner,
    )
    found = [
        (row, event)
        for row, event in ((r, event_json(r)) for r in rows)
        if event["data"]["kind"].startswith("mdf_preapproval_")
    ]
    for row, event in found:  # the event id is the notification's
        assert str(row["event_id"]) == event["data"]["notification_id"] == event["id"]
    return [
        (e["type"], e["data"]["kind"], e["data"]["subject"], e["data"]["body"]) for _, e in found
    ]


async def test_approval_reserves_claims_draw_on_it_and_expiry_releases_the_rest(
    pool: Pool,
) -> None:
    programs = IncentivePrograms()
    partner = await funded_partner(pool, programs, "2000.00")
    pa = await ask(pool, programs, partner, budget("1500.00"))
    assert (await fund_state(pool, partner))["available"] == "2000.00"  # asked: nothing held

    approved = await decide(pool, pa, approve=True)
    assert (approved["status"], approved["reserved"]) == ("approved", D("1500.00"))
    async with pool.acquire() as conn:
        assert (await views.fund(conn, partner)).reserved == D("1500.00")
    assert (await fund_state(pool, partner))["available"] == "500.00"

    # A claim without pre-approval cannot spend what is reserved.
    with pytest.raises(
        ClaimConflict, match=re.escape("claim of 600.00 exceeds the available fund of 500.00")
    ):
        async with pool.acquire() as conn, conn.transaction():
            await request_claim(conn, programs, ClaimAsk(partner, D("600.00"), "booth", "INV-x"))
    # A second pre-approval the fund cannot cover is refused.
    second = await ask(pool, programs, partner, budget("600.00", reference="ref-2"))
    with pytest.raises(
        PreapprovalConflict, match=re.escape("pre-approval of 600.00 exceeds the available")
    ):
        await decide(pool, second, approve=True)

    # Partial claims with proof, up to the approved amount (undecided ones count as taken).
    first = await claim_on(pool, programs, partner, pa, "1000.00")
    with pytest.raises(PreapprovalConflict, match="exceeds what is left of pre-approval"):
        await claim_on(pool, programs, partner, pa, "500.01")
    decided = await decide_on(pool, programs, first, approve=True)
    assert (decided.status, decided.preapproval_id, decided.campaign_id) == (
        "approved",
        pa,
        "camp-1",
    )
    assert decided.fund_available == D("500.00")  # spent out of the reservation
    assert await fund_state(pool, partner) == {
        "available": "500.00",
        "ledger_balance": "1000.00",
        "deficit": "0.00",
    }
    late = await claim_on(pool, programs, partner, pa, "300.00")

    # Past the campaign's end + the window, what no claim awaits is released; the pending
    # claim is still decided against it, and rejecting it then releases its amount too.
    after_window = datetime.now(UTC) + timedelta(days=60)
    async with pool.acquire() as conn:
        assert await mdf_preapprovals.expire_due(conn, OUTBOX, at=after_window) == 1
        assert await mdf_preapprovals.expire_due(conn, OUTBOX, at=after_window) == 0
    assert (await fund_state(pool, partner))["available"] == "700.00"
    with pytest.raises(PreapprovalConflict, match=f"{pa} stopped accepting claims at .*window"):
        await claim_on(pool, programs, partner, pa, "1.00")
    rejected = await decide_on(pool, programs, late, approve=False)
    assert rejected.fund_available == D("1000.00")  # its amount released with it
    assert (await fund_state(pool, partner))["available"] == "1000.00"
    async with pool.acquire() as conn:
        assert (await views.fund(conn, partner)).reserved == D("0.00")

    assert await announced(pool, pa) == [
        ("requested", "0.00", "0.00", "0.00"),
        ("approved", "1500.00", "0.00", "0.00"),
        ("approved", "500.00", "1000.00", "0.00"),
        ("expired", "300.00", "1000.00", "200.00"),
        ("expired", "0.00", "1000.00", "300.00"),
    ]
    # the partner was told twice, in the same transactions: approved, then expired
    deadline = (datetime.now(UTC).date() + timedelta(days=41)).isoformat()
    assert await told(pool, partner) == [
        (
            "notification.partner.v5",
            "mdf_preapproval_approved",
            "MDF approved for campaign camp-1: 1500.00 USD reserved",
            f"pre-approval {pa} (your reference ref-1) is approved: 1500.00 USD is reserved in "
            f"your MDF fund for campaign camp-1. Claim against it with proof before {deadline}.",
        ),
        (
            "notification.partner.v5",
            "mdf_preapproval_expired",
            "MDF pre-approval for campaign camp-1 expired",
            f"pre-approval {pa} (your reference ref-1) stopped accepting claims: 1000.00 USD "
            "was claimed, 200.00 USD unclaimed went back to your MDF fund.",
        ),
    ]


async def test_retries_are_idempotent_and_bad_requests_are_refused(pool: Pool) -> None:
    programs = IncentivePrograms()
    partner = await funded_partner(pool, programs, "2000.00")
    pa = await ask(pool, programs, partner, budget("800.00"))
    assert await ask(pool, programs, partner, budget("800.00")) == pa  # the same request
    with pytest.raises(PreapprovalConflict, match="reference ref-1 already names pre-approval"):
        await ask(pool, programs, partner, budget("900.00"))
    with pytest.raises(Unprocessable, match="currency EUR is not the MDF fund's currency USD"):
        await ask(pool, programs, partner, budget("10.00", reference="eur", currency="EUR"))

    with pytest.raises(PreapprovalConflict, match="is requested: claims need an approved one"):
        await claim_on(pool, programs, partner, pa, "10.00")
    await decide(pool, pa, approve=True)
    again = await decide(pool, pa, approve=True)  # a retried approval reserves nothing more
    assert again["reserved"] == D("800.00")
    assert (await fund_state(pool, partner))["available"] == "1200.00"
    with pytest.raises(PreapprovalConflict, match="is already approved"):
        await decide(pool, pa, approve=False, note="changed my mind")

    other = await funded_partner(pool, programs, "100.00")
    with pytest.raises(NotFound, match=f"pre-approval {pa} not found"):
        await claim_on(pool, programs, other, pa, "10.00")

    # only a campaign incentives has heard of, of the partner, neither cancelled nor over
    with pytest.raises(Conflict, match=r"campaign camp-new is not known \(yet\)"):
        await ask(pool, programs, partner, budget("10.00", reference="new", campaign_id="camp-new"))
    await heard_of_campaign(pool, campaign_changed("camp-theirs", "p-someone-else"))
    with pytest.raises(
        Unprocessable, match=f"campaign camp-theirs is not run by partner {partner}"
    ):
        await ask(
            pool, programs, partner, budget("10.00", reference="t", campaign_id="camp-theirs")
        )
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    await heard_of_campaign(
        pool, campaign_changed("camp-over", partner, ends_on=yesterday, starts_on=yesterday)
    )
    with pytest.raises(Conflict, match=f"campaign camp-over ended on {yesterday.isoformat()}"):
        await ask(pool, programs, partner, budget("10.00", reference="o", campaign_id="camp-over"))
    await heard_of_campaign(pool, campaign_changed("camp-off", partner))
    on_time = await ask(
        pool, programs, partner, budget("10.00", reference="off", campaign_id="camp-off")
    )
    cancelled = campaign_changed(
        "camp-off", partner, state="cancelled", cancelled_at=datetime.now(UTC)
    )
    await heard_of_campaign(pool, cancelled)
    # a later word without the cancellation does not undo it (a cancellation is final)
    await heard_of_campaign(
        pool, campaign_changed("camp-off", partner, changed_at=datetime.now(UTC))
    )
    with pytest.raises(Conflict, match="campaign camp-off is cancelled"):
        await ask(
            pool, programs, partner, budget("11.00", reference="off2", campaign_id="camp-off")
        )
    # a retry of a request recorded before the cancellation still answers with it
    assert (
        await ask(pool, programs, partner, budget("10.00", reference="off", campaign_id="camp-off"))
        == on_time
    )
    # and it cannot be approved any more (no money reserved for what will not run): rejected
    with pytest.raises(
        Conflict, match=r"campaign camp-off was cancelled on .*can only be rejected"
    ):
        await decide(pool, on_time, approve=True)
    assert (await decide(pool, on_time, approve=False, note="cancelled"))["status"] == "rejected"
    # nor once its partner left the campaign (programme's newer word no longer names it)
    await heard_of_campaign(pool, campaign_changed("camp-left", partner))
    left = await ask(
        pool, programs, partner, budget("10.00", reference="left", campaign_id="camp-left")
    )
    async with pool.acquire() as conn:
        later = campaign_changed("camp-left", "p-stayed", changed_at=datetime.now(UTC))
        await campaign_projection.record(conn, [later])
    with pytest.raises(Conflict, match=f"partner {partner} no longer runs campaign camp-left"):
        await decide(pool, left, approve=True)
    # one approved a moment before programme's word that its partner left takes no claim
    await heard_of_campaign(pool, campaign_changed("camp-late", partner))
    late = await ask(
        pool, programs, partner, budget("10.00", reference="late", campaign_id="camp-late")
    )
    await decide(pool, late, approve=True)
    async with pool.acquire() as conn:
        later = campaign_changed("camp-late", "p-stayed", changed_at=datetime.now(UTC))
        await campaign_projection.record(conn, [later])
    with pytest.raises(Conflict, match="no longer runs campaign camp-late: no claim against"):
        await claim_on(pool, programs, partner, late, "5.00")

    rejected = await ask(pool, programs, partner, budget("50.00", reference="ref-3"))
    with pytest.raises(PreapprovalConflict, match="a rejection needs a reason"):
        await decide(pool, rejected, approve=False)
    row = await decide(pool, rejected, approve=False, note="outside the plan")
    assert (row["status"], row["reason"], row["reserved"]) == (
        "rejected",
        "outside the plan",
        D("0.00"),
    )
    assert await announced(pool, pa) == [
        ("requested", "0.00", "0.00", "0.00"),
        ("approved", "800.00", "0.00", "0.00"),
    ]
    # told once of each decision: a retried approval tells nothing again
    assert [(kind, subject) for _, kind, subject, _ in await told(pool, partner)] == [
        ("mdf_preapproval_approved", "MDF approved for campaign camp-1: 800.00 USD reserved"),
        ("mdf_preapproval_rejected", "MDF not approved for campaign camp-off"),
        ("mdf_preapproval_approved", "MDF approved for campaign camp-late: 10.00 USD reserved"),
        ("mdf_preapproval_rejected", "MDF not approved for campaign camp-1"),
    ]
    assert (await told(pool, partner))[3][3] == (
        f"pre-approval {rejected} (your reference ref-3) for 50.00 USD is rejected: "
        "outside the plan"
    )


incentives = service_fixture("incentives")


async def test_over_http_partners_reach_only_their_own_and_bad_input_is_a_4xx(
    infra: Infra, incentives: str, admin_db: asyncpg.Connection[Any]
) -> None:
    run, since = uuid.uuid4().hex[:10], datetime.now(UTC)
    partner, other = f"p-pa-{run}", f"p-pa-other-{run}"
    await partner_at_tier(infra, admin_db, partner, "gold")
    await publish_credits(
        infra, credit_issued(partner_id=partner, deal_key=f"d-{run}", amount="100000.00")
    )
    today = datetime.now(UTC).date()
    campaign = campaign_changed(f"c-{run}", partner)
    await publish(infra, PROGRAMME_CAMPAIGNS, [campaign], subject=f"c-{run}", source="programme")
    body = {
        "reference": f"r-{run}",
        "campaign_id": f"c-{run}",
        "activity_kind": "event",
        "description": "joint booth",
        "starts_on": str(today),
        "ends_on": str(today + timedelta(days=5)),
        "amount": "1200.00",
        "currency": "USD",
    }
    async with httpx.AsyncClient(base_url=incentives, timeout=60) as client:

        async def funded() -> bool:
            fund = (await client.get(f"/partners/{partner}/mdf", headers=auth(partner))).json()
            return bool(fund["available"] == "2000.00")

        await eventually(funded)
        bad = {
            "amount": ({**body, "amount": "-5.00"}, "amount"),
            "zero": ({**body, "amount": "0"}, "amount"),
            "dates": (
                {**body, "ends_on": str(today - timedelta(days=1))},
                f"ends_on {today - timedelta(days=1)} is before starts_on {today}",
            ),
            "kind": ({**body, "activity_kind": "party"}, "activity_kind"),
        }
        for name, (sent, needle) in bad.items():
            response = await client.post("/mdf/preapprovals", json=sent, headers=auth(partner))
            assert response.status_code == 422, name
            assert needle in response.text, name
        eur = await client.post(
            "/mdf/preapprovals", json={**body, "currency": "EUR"}, headers=auth(partner)
        )
        assert eur.status_code == 422
        assert eur.json()["detail"] == "currency EUR is not the MDF fund's currency USD"
        for_other = await client.post(
            f"/mdf/preapprovals?partner_id={other}", json=body, headers=auth(partner)
        )
        assert for_other.status_code == 403

        unknown = await client.post(
            "/mdf/preapprovals", json={**body, "campaign_id": f"nope-{run}"}, headers=auth(partner)
        )
        assert (unknown.status_code, unknown.json()["detail"]) == (
            409,
            f"campaign nope-{run} is not known (yet): incentives learns of campaigns from "
            "programme's events; retry in a moment, or check the id",
        )

        async def accepted() -> Any:
            """Once incentives has heard of the campaign (a 409 until then)."""
            answer = await client.post("/mdf/preapprovals", json=body, headers=auth(partner))
            assert answer.status_code in (201, 409), answer.text
            return answer.json() if answer.status_code == 201 else None

        pa = (await eventually(accepted, what="incentives to hear of the campaign"))[
            "preapproval_id"
        ]
        retried = await client.post("/mdf/preapprovals", json=body, headers=auth(partner))
        assert retried.json()["preapproval_id"] == pa

        assert (await client.get(f"/mdf/preapprovals/{pa}", headers=auth(other))).status_code == 404
        assert (await client.get("/mdf/preapprovals", headers=auth(other))).json() == []
        decision = f"/mdf/preapprovals/{pa}/decision"
        by_partner = await client.post(decision, json={"approve": True}, headers=auth(partner))
        assert by_partner.status_code == 403
        approved = await client.post(decision, json={"approve": True}, headers=ADMIN)
        assert approved.status_code == 200, approved.text
        assert approved.json()["reserved"] == "1200.00"

        claim = {"amount": "700.00", "description": "booth rental", "proof_reference": "INV-7"}
        stolen = await client.post(
            f"/mdf/preapprovals/{pa}/claims", json=claim, headers=auth(other)
        )
        assert stolen.status_code == 404
        assert stolen.json()["detail"] == f"pre-approval {pa} not found"
        no_proof = await client.post(
            f"/mdf/preapprovals/{pa}/claims",
            json={**claim, "proof_reference": ""},
            headers=auth(partner),
        )
        assert no_proof.status_code == 422
        claimed = await client.post(
            f"/mdf/preapprovals/{pa}/claims",
            json={**claim, "amount": "700.0"},
            headers=auth(partner),
        )
        assert claimed.status_code == 201, claimed.text
        # the amount as stored (and as a GET of the claim answers), not as sent
        assert (claimed.json()["amount"], claimed.json()["preapproval_left"]) == (
            "700.00",
            "500.00",
        )
        # the same claim again (its proof reference) is answered with it, not claimed twice
        again = await client.post(
            f"/mdf/preapprovals/{pa}/claims", json=claim, headers=auth(partner)
        )
        assert (again.status_code, again.json()) == (201, claimed.json())
        over = await client.post(
            f"/mdf/preapprovals/{pa}/claims",
            json={**claim, "proof_reference": "INV-8"},
            headers=auth(partner),
        )
        assert over.status_code == 409
        assert over.json()["detail"] == (
            f"claim of 700.00 exceeds what is left of pre-approval {pa}: 500.00 "
            "(approved 1200.00, claimed 0.00, awaiting decision 700.00)"
        )
        claim_id = claimed.json()["claim_id"]
        paid = await client.post(
            f"/mdf/claims/{claim_id}/decision", json={"approve": True}, headers=ADMIN
        )
        assert paid.status_code == 200, paid.text
        assert paid.json()["campaign_id"] == f"c-{run}"
        fund = (await client.get(f"/partners/{partner}/mdf", headers=auth(partner))).json()
        assert (fund["available"], fund["reserved"], fund["ledger_balance"]) == (
            "800.00",
            "500.00",
            "1300.00",
        )

    def complete(found: list[dict[str, Any]]) -> bool:
        kinds = [e["type"] for e in found]
        return kinds.count("incentive.mdf_preapproval_changed.v1") >= 3 and (
            "incentive.mdf_claim_decided.v1" in kinds
        )

    events = await wait_for_keyed(
        infra.kafka, INCENTIVE_LEDGER.name, partner, complete, since=since
    )
    changes = [
        (e["data"]["status"], e["data"]["reserved"], e["data"]["claimed"])
        for e in events
        if e["type"] == "incentive.mdf_preapproval_changed.v1"
    ]
    assert changes == [
        ("requested", "0.00", "0.00"),
        ("approved", "1200.00", "0.00"),
        ("approved", "500.00", "700.00"),
    ]


async def test_racing_approvals_never_reserve_more_than_the_fund_holds(pool: Pool) -> None:
    """Eight pre-approvals of 600.00 against a fund of 2000.00, approved at once on separate
    connections: the fund's row lock lets exactly three through."""
    programs = IncentivePrograms()
    partner = await funded_partner(pool, programs, "2000.00")
    asked = [
        await ask(pool, programs, partner, budget("600.00", reference=f"race-{i}"))
        for i in range(8)
    ]

    async def approve(preapproval_id: str) -> str:
        try:
            await decide(pool, preapproval_id, approve=True)
        except PreapprovalConflict as refused:
            return refused.message
        return "approved"

    outcomes = await asyncio.gather(*(approve(pa) for pa in asked))
    assert (
        sorted(outcomes)
        == ["approved"] * 3 + ["pre-approval of 600.00 exceeds the available fund of 200.00"] * 5
    )
    async with pool.acquire() as conn:
        assert (await views.fund(conn, partner)).reserved == D("1800.00")
    assert (await fund_state(pool, partner))["available"] == "200.00"
