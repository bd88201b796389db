"""A co-marketing campaign through the real services: a partner's fund grows from a won deal;
it creates a campaign (programme), asks for an MDF pre-approval for it and a channel manager
approves it, reserving the budget (incentives); it claims part of it with proof, approved; it
reports a campaign touchpoint on a deal that then closes won (attribution); the campaign's
results (programme, from the events only) show the attributed revenue and the MDF cost. Another
partner reaches none of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from deploy.story import Partner, Story
from tests.support.campaigns import ask_once_known, usd_results
from tests.support.polling import eventually
from tests.support.processes import ADMIN_TOKEN, Fleet

pytestmark = pytest.mark.e2e
D = Decimal


async def won_deal(
    story: Story, partner: Partner, name: str, amount: int, *, touch: Any = None
) -> str:
    """`partner` registers a customer (a channel manager approves it if it waits for review),
    the opportunity appears in Salesforce and is linked to the registration, `touch(deal_key)`
    runs (a touchpoint), then it closes won."""
    now = datetime.now(UTC)
    customer = f"{name} {story.run} Ltd."
    domain = f"{name.lower()}-{story.run}.example"
    record = f"006{name[:2].upper()}{story.run}"
    deal_key = f"salesforce:{record}"
    registered = await story.register(
        partner,
        f"{name} registration",
        story.registration(customer, domain, amount=f"{amount}.00"),
    )
    if registered["status"] == "pending_review":  # over the auto-approval limit of its tier
        await story.call(
            "POST",
            "deals",
            f"/registrations/{registered['registration_id']}/review",
            200,
            headers=story.admin,
            params={"approve": "true", "note": "joint account plan"},
        )
    await story.opportunity_opened(
        record, customer, domain, float(amount), now - timedelta(days=20), now.date()
    )
    await story.link(partner, registered["registration_id"], deal_key)
    if touch is not None:
        await touch(deal_key)
    await story.crm(
        record, "UPDATE", now - timedelta(seconds=30), {"StageName": "Closed Won", "Amount": amount}
    )
    return deal_key


async def test_a_campaign_from_pre_approval_to_attributed_revenue_and_cost(fleet: Fleet) -> None:
    urls = fleet.urls
    async with httpx.AsyncClient(timeout=30) as client:
        story = Story(client, urls, ADMIN_TOKEN)
        admin = story.admin
        partner = Partner("lumen", "Lumen Data Partners", "gsi")
        other = Partner("quill", "Quill Resellers", "var_reseller")
        for who in (partner, other):
            await story.onboard(who, ["data", "ai"])
        await story.known_to_deals(partner)

        # A won deal fills the partner's MDF fund (2 % of 100 000.00).
        await won_deal(story, partner, "Seedling", 100000)

        async def mdf_fund() -> Any:
            """The partner's MDF fund, as its own people read it."""
            path = f"/partners/{partner.partner_id}/mdf"
            return await story.call("GET", "incentives", path, 200, headers=partner.auth)

        async def funded() -> bool:
            return bool((await mdf_fund())["available"] == "2000.00")

        await eventually(funded, 60, what="incentives to accrue MDF")

        # The campaign (programme), once programme has heard of the partner.
        today = datetime.now(UTC).date()
        campaign_body = {
            "name": "Lakehouse in a day (joint webinar)",
            "kind": "webinar",
            "starts_on": str(today - timedelta(days=1)),
            "ends_on": str(today + timedelta(days=14)),
        }

        async def created() -> Any:
            answer = await client.post(
                f"{urls['programme']}/campaigns", json=campaign_body, headers=partner.auth
            )
            return answer.json() if answer.status_code == 201 else None

        campaign = (await eventually(created, 45, what="programme to know the partner"))[
            "campaign_id"
        ]

        # The MDF pre-approval (incentives): asked, approved (reserved), claimed with proof.
        # Incentives hears of the campaign from programme's event, a moment after its creation.
        preapproval = await ask_once_known(
            client,
            urls["incentives"],
            headers=partner.auth,
            body={
                "reference": f"webinar-{story.run}",
                "campaign_id": campaign,
                "activity_kind": "webinar",
                "description": "webinar platform and promotion",
                "starts_on": campaign_body["starts_on"],
                "ends_on": campaign_body["ends_on"],
                "amount": "1500.00",
                "currency": "USD",
            },
        )
        pa = preapproval["preapproval_id"]

        async def admin_approves(decision_path: str, note: str) -> Any:
            """A channel manager approves what the path decides (a pre-approval, a claim)."""
            return await story.call(
                "POST",
                "incentives",
                decision_path,
                200,
                headers=admin,
                json={"approve": True, "note": note},
            )

        approved = await admin_approves(f"/mdf/preapprovals/{pa}/decision", "fits the plan")
        assert (approved["status"], approved["reserved"]) == ("approved", "1500.00")

        async def told() -> Any:
            inbox = await story.call(
                "GET",
                "notifications",
                f"/partners/{partner.partner_id}/notifications",
                200,
                headers=partner.auth,
            )
            return [m for m in inbox["items"] if m["kind"] == "mdf_preapproval_approved"]

        (message,) = await eventually(told, 60, what="the partner to hear of the approval")
        assert message["subject"] == f"MDF approved for campaign {campaign}: 1500.00 USD reserved"
        claim = {
            "amount": "1000.00",
            "description": "webinar platform",
            "proof_reference": "INV-77",
        }
        stolen = await client.post(
            f"{urls['incentives']}/mdf/preapprovals/{pa}/claims", json=claim, headers=other.auth
        )
        assert stolen.status_code == 404
        over = await client.post(
            f"{urls['incentives']}/mdf/preapprovals/{pa}/claims",
            json={**claim, "amount": "1500.01"},
            headers=partner.auth,
        )
        assert over.status_code == 409
        claimed = await story.call(
            "POST",
            "incentives",
            f"/mdf/preapprovals/{pa}/claims",
            201,
            headers=partner.auth,
            json=claim,
        )
        await admin_approves(f"/mdf/claims/{claimed['claim_id']}/decision", "invoice checked")
        fund = await mdf_fund()
        assert (fund["available"], fund["reserved"]) == ("500.00", "500.00")

        # A deal touched through the campaign closes won (attribution).
        async def campaign_touch(deal_key: str) -> None:
            # Attribution too hears of the campaign from programme's event: until then a 409.
            async def reported() -> Any:
                answer = await story.touchpoint_reported(
                    partner, deal_key, "campaign", (200, 201, 409), campaign_id=campaign
                )
                if "is not known (yet)" in answer.get("detail", ""):
                    return None
                assert "touchpoint_id" in answer, answer  # reported (any other refusal fails)
                return answer

            await eventually(reported, 60, what=f"attribution to hear of {campaign}")

        await won_deal(story, partner, "Harbor", 40000, touch=campaign_touch)
        await story.call(
            "POST",
            "programme",
            f"/campaigns/{campaign}/results",
            200,
            headers=partner.auth,
            json={"leads": 85, "pipeline": "320000.00", "currency": "USD"},
        )

        async def results() -> Any:
            detail = await story.call(
                "GET", "programme", f"/campaigns/{campaign}", 200, headers=admin
            )
            rows = detail["results"]["by_currency"]
            money = rows[0] if rows else {}
            ready = (
                money.get("attributed_revenue") == "40000.00"
                and money.get("mdf_claimed") == "1000.00"
                and money.get("mdf_reserved") == "500.00"
            )
            return detail if ready else None

        detail = await eventually(results, 60, what="the campaign's results")
        assert detail["results"] == usd_results(leads=85, pipeline="320000.00")
        assert [p["preapproval_id"] for p in detail["preapprovals"]] == [pa]
        assert detail["state"] == "running"
        # The partner reads it too; the other partner cannot.
        mine = await story.call(
            "GET", "programme", f"/campaigns/{campaign}", 200, headers=partner.auth
        )
        assert mine["results"] == detail["results"]
        hidden = await client.get(f"{urls['programme']}/campaigns/{campaign}", headers=other.auth)
        assert hidden.status_code == 404
