"""Co-marketing campaigns on a real programme process, fed on the real topics by events played
as incentives and attribution send them: the record and who may see it, results reported by
its partners, attributed revenue from credits through the campaign touchpoint (net of
reversals), MDF cost from pre-approvals and claims, and facts of partners outside the campaign
left out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from shared.events.incentives import MdfClaimDecided
from shared.events.partners import PartnerChange, PartnerStatus
from shared.topics import ATTRIBUTION_CREDITS, INCENTIVE_LEDGER, PARTNER_LIFECYCLE
from tests.support import factories as f
from tests.support.campaigns import known_partners, preapproval, usd_results
from tests.support.infra import Infra
from tests.support.kafka import publish
from tests.support.polling import eventually
from tests.support.processes import service_fixture
from tests.support.tokens import ADMIN, auth

pytestmark = pytest.mark.integration
D = Decimal
AT = datetime(2026, 11, 20, 12, tzinfo=UTC)


programme = service_fixture("programme")


def claim(partner: str, campaign: str, pa: str, amount: str) -> MdfClaimDecided:
    return MdfClaimDecided(
        claim_id=f"cl-{uuid.uuid4().hex[:8]}",
        partner_id=partner,
        status="approved",
        amount=D(amount),
        currency="USD",
        description="webinar platform",
        proof_reference="INV-1",
        reason="receipts checked",
        entry_id=str(uuid.uuid4()),
        fund_available=D("500.00"),
        decided_at=AT + timedelta(minutes=10),
        preapproval_id=pa,
        campaign_id=campaign,
    )


async def test_a_campaign_shows_reported_results_attributed_revenue_and_mdf_cost(
    infra: Infra, programme: str
) -> None:
    run = uuid.uuid4().hex[:8]
    partner, ally, outsider = f"p-cm-{run}", f"p-cm-ally-{run}", f"p-cm-out-{run}"
    async with httpx.AsyncClient(base_url=programme, timeout=10) as client:
        await known_partners(infra, client, programme, partner, ally, outsider)
        body = {
            "name": "AI on the lakehouse (joint webinar)",
            "kind": "webinar",
            "starts_on": "2026-11-01",
            "ends_on": "2026-11-30",
            "partner_ids": [partner, ally],
        }
        refused = {
            "inverted": (ADMIN, {**body, "ends_on": "2026-10-31"}, 422),
            "unknown partner": (ADMIN, {**body, "partner_ids": [f"p-none-{run}"]}, 404),
            "no partners": (ADMIN, {**body, "partner_ids": []}, 422),
            "for another": (auth(partner), body, 403),
            "bad kind": (ADMIN, {**body, "kind": "party"}, 422),
            # its budget's claim deadline, 61 days after, would have no date
            "ends near year 9999": (ADMIN, {**body, "ends_on": "9999-12-30"}, 422),
        }
        expelled = f"p-cm-gone-{run}"
        gone = f.partner_state_changed(
            partner_id=expelled,
            changed_at=AT,
            status=PartnerStatus.EXPELLED,
            change=PartnerChange.EXPELLED,
        )
        await publish(infra, PARTNER_LIFECYCLE, [gone], subject=expelled, source="onboarding")

        async def churned() -> bool:
            answer = await client.get("/kpis", params={"partner_id": expelled}, headers=ADMIN)
            return bool(answer.json()["partners"]["churned"])

        await eventually(churned, 60, what="programme to hear of the expelled partner")
        refused["expelled"] = (ADMIN, {**body, "partner_ids": [partner, expelled]}, 409)
        for name, (headers, sent, code) in refused.items():
            answer = await client.post("/campaigns", json=sent, headers=headers)
            assert answer.status_code == code, (name, answer.text)
        created = await client.post("/campaigns", json=body, headers=ADMIN)
        assert created.status_code == 201, created.text
        campaign = created.json()["campaign_id"]
        assert created.json()["partner_ids"] == sorted([partner, ally])
        # A partner's own campaign has not ended (one wholly past was completed at once,
        # beyond cancelling, and counted towards its plan); a channel manager's may have.
        ran = await client.post(
            "/campaigns", json={**body, "partner_ids": []}, headers=auth(outsider)
        )
        assert ran.status_code == 422
        assert ran.json()["detail"] == (
            f"ends_on {body['ends_on']} is before today: a partner's campaign ends today at the "
            "earliest (a channel manager records one that already ran)"
        )
        ends = datetime.now(UTC).date() + timedelta(days=3)
        running = {**body, "partner_ids": [], "ends_on": ends.isoformat()}
        own = await client.post("/campaigns", json=running, headers=auth(outsider))
        assert own.status_code == 201, own.text
        assert own.json()["partner_ids"] == [outsider]

        # What incentives and attribution announce about it.
        pa = f"pa-{run}"
        await publish(
            infra,
            INCENTIVE_LEDGER,
            [
                preapproval(partner, campaign, pa, "requested", "0.00", "0.00", 0),
                preapproval(partner, campaign, pa, "approved", "1500.00", "0.00", 1),
                claim(partner, campaign, pa, "1000.00"),
                preapproval(partner, campaign, pa, "approved", "500.00", "1000.00", 10),
            ],
            subject=partner,
            source="incentives",
        )
        # An outsider naming the campaign counts for nothing.
        await publish(
            infra,
            INCENTIVE_LEDGER,
            [claim(outsider, campaign, f"pa-out-{run}", "999.00")],
            subject=outsider,
            source="incentives",
        )
        through = f.credit_issued(partner_id=partner, amount="40000.00", campaign_id=campaign)
        corrected = f.credit_issued(partner_id=partner, amount="10000.00", campaign_id=campaign)
        plain = f.credit_issued(partner_id=partner, amount="70000.00")
        stranger = f.credit_issued(partner_id=outsider, amount="5000.00", campaign_id=campaign)
        for credit in (through, corrected, plain, stranger):
            await publish(
                infra, ATTRIBUTION_CREDITS, [credit], subject=credit.deal_key, source="attribution"
            )
        await publish(
            infra,
            ATTRIBUTION_CREDITS,
            [f.credit_reversed(corrected)],
            subject=corrected.deal_key,
            source="attribution",
        )

        reported = await client.post(
            f"/campaigns/{campaign}/results",
            json={"leads": 120, "pipeline": "250000.00", "currency": "USD"},
            headers=auth(partner),
        )
        assert reported.status_code == 200, reported.text
        assert (
            await client.post(
                f"/campaigns/{campaign}/results",
                json={"partner_id": ally, "leads": 30, "pipeline": "50000.00", "currency": "USD"},
                headers=ADMIN,
            )
        ).status_code == 200
        not_member = await client.post(
            f"/campaigns/{campaign}/results",
            json={"partner_id": outsider, "leads": 1, "pipeline": "1.00", "currency": "USD"},
            headers=ADMIN,
        )
        assert not_member.status_code == 422
        assert (
            await client.post(
                f"/campaigns/{campaign}/results",
                json={"leads": -1, "pipeline": "1.00", "currency": "USD"},
                headers=auth(partner),
            )
        ).status_code == 422
        yen = await client.post(  # a yen has no cents (found in review: stored as given)
            f"/campaigns/{campaign}/results",
            json={"leads": 1, "pipeline": "1000.50", "currency": "JPY"},
            headers=auth(partner),
        )
        assert yen.status_code == 422
        assert "pipeline has 1 decimals; at most 0 allowed in JPY" in yen.text

        async def settled() -> dict[str, Any] | None:
            detail = (await client.get(f"/campaigns/{campaign}", headers=ADMIN)).json()
            rows = detail["results"]["by_currency"]
            ready = rows and rows[0]["attributed_revenue"] == "40000.00"
            ready = ready and rows[0]["mdf_claimed"] == "1000.00"
            ready = ready and detail["preapprovals"] and detail["preapprovals"][0]["claimed"]
            return detail if ready and detail["preapprovals"][0]["claimed"] == "1000.00" else None

        detail = await eventually(settled, 60, what="the campaign's results")
        assert detail["state"] == "completed"
        assert detail["results"] == usd_results(leads=150, pipeline="300000.00")
        assert [p["preapproval_id"] for p in detail["preapprovals"]] == [pa]

        # Partners: only their campaigns, only their part of the figures.
        assert (
            await client.get(f"/campaigns/{campaign}", headers=auth(outsider))
        ).status_code == 404
        listed = (await client.get("/campaigns", headers=auth(outsider))).json()
        assert [c["campaign_id"] for c in listed] == [own.json()["campaign_id"]]
        ally_view = (await client.get(f"/campaigns/{campaign}", headers=auth(ally))).json()
        assert ally_view["partner_ids"] == [ally]
        # the list as the detail: the joint campaign's other partner is not the ally's to see
        ally_list = (await client.get("/campaigns", headers=auth(ally))).json()
        assert [(c["campaign_id"], c["partner_ids"]) for c in ally_list] == [(campaign, [ally])]
        assert ally_view["preapprovals"] == []
        assert ally_view["results"] == {
            "leads": 30,
            "by_currency": [
                {
                    "currency": "USD",
                    "pipeline": "50000.00",
                    "attributed_revenue": "0.00",
                    "mdf_approved": "0.00",
                    "mdf_reserved": "0.00",
                    "mdf_claimed": "0.00",
                    "return_per_dollar": None,
                }
            ],
        }
        # Ended: it cannot be cancelled; a partner cannot cancel.
        cancel = {"reason": "budget cut"}
        assert (
            await client.post(f"/campaigns/{campaign}/cancel", json=cancel, headers=auth(partner))
        ).status_code == 403
        late = await client.post(f"/campaigns/{campaign}/cancel", json=cancel, headers=ADMIN)
        assert late.status_code == 409
        assert late.json()["detail"] == f"campaign {campaign} is completed: it cannot be cancelled"
