"""The portal's MDF claim form in process, in front of a real incentives process on real Kafka +
Postgres, as an outside probe found it: the form sent twice made two claims on one proof. Now
the second answers with the first claim, the page lists one, and the same proof asking for
other money is refused beside the form with incentives' reason."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from starlette.testclient import TestClient

from shared.identity import Role
from shared.topics import PROGRAMME_CAMPAIGNS
from tests.support.incentives import campaign_changed, earning_partner
from tests.support.infra import Infra
from tests.support.kafka import publish
from tests.support.local_http import LocalServer, QuietHandler
from tests.support.polling import eventually
from tests.support.portal import form_csrf
from tests.support.portal_in_process import portal_settings, signed_in
from tests.support.processes import free_port, service_fixture
from tests.support.tokens import ADMIN, auth, token

pytestmark = pytest.mark.integration


incentives = service_fixture("incentives")


def message(html: str) -> str:
    found = re.search(r'id="message">(.*?)</p>', html, re.S)
    assert found, "the form's answer"
    return found.group(1).strip()


def listed_claims(html: str) -> list[str]:
    found = re.search(r'<ul class="cards" id="claims">(.*?)</ul>', html, re.S)
    assert found, "the claims"
    return re.findall(r"<strong>(.*?)</strong>", found.group(1))


async def test_a_claim_form_sent_twice_claims_once(
    infra: Infra, incentives: str, admin_db: asyncpg.Connection[Any]
) -> None:
    async with httpx.AsyncClient(base_url=incentives, timeout=60) as client:
        partner = await earning_partner(infra, admin_db, client)
    settings = portal_settings(
        {
            "incentives": incentives,
            # Programme does not answer: the page shows the fund and claims without campaigns.
            "programme": f"http://127.0.0.1:{free_port()}",
        }
    )
    signed = token("p/u", Role.PARTNER_USER, partner_id=partner)
    with signed_in(settings, signed) as portal:
        form = {
            "csrf_token": form_csrf(portal, "/mdf"),
            "amount": "0.50",
            "description": "Same webinar",
            "proof_reference": "INV-2026-001",
        }
        first = portal.post("/mdf/claims", data=form)
        second = portal.post("/mdf/claims", data=form)
        assert (first.status_code, second.status_code) == (200, 200), second.text
        said = message(first.text)
        assert re.fullmatch(r"Claim \S+ for 0\.50 USD: requested \(fund available: [\d.]+\)", said)
        assert message(second.text) == said  # the same claim, named again
        assert listed_claims(second.text) == ["Same webinar"]

        other = portal.post("/mdf/claims", data={**form, "amount": "0.60"})
        assert other.status_code == 409
        claim_id = said.split()[1]
        assert message(other.text) == (
            f"Not claimed: proof reference INV-2026-001 already names claim {claim_id}, 0.50 USD "
            "for &#39;Same webinar&#39; from the fund; this request is 0.60 USD for &#39;Same "
            "webinar&#39; from the fund: a claim on other spending needs its own proof reference"
        )
        assert listed_claims(other.text) == ["Same webinar"]
        # The refused form keeps what was typed (it was emptied).
        assert 'name="amount" inputmode="decimal" maxlength="40" required value="0.60"' in (
            other.text
        )
        assert 'required value="INV-2026-001"' in other.text
    stored = await admin_db.fetchval(
        "SELECT count(*) FROM incentives.mdf_claims WHERE partner_id = $1", partner
    )
    assert stored == 1


class Programme(QuietHandler):
    """Programme's campaigns of the partner: one running campaign, `Programme.campaign`."""

    campaign: ClassVar[dict[str, Any]] = {}

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/campaigns":
            self.send_json(200, [Programme.campaign])
        elif path == f"/campaigns/{Programme.campaign.get('campaign_id')}":
            self.send_json(200, Programme.campaign)
        else:
            self.send_json(404, {"detail": f"no {self.path}"})

    def do_POST(self) -> None:  # a plan programme refuses, as it refuses dates out of order
        self.send_json(422, {"detail": "ends_on must not be before starts_on"})


@contextmanager
def mdf_page_of(
    partner: str, incentives: str, campaign_id: str, state: str, days: int
) -> Iterator[TestClient]:
    """The partner signed in to a portal in front of incentives and of a programme that shows
    it one campaign from today for `days` days."""
    today = datetime.now(UTC).date()
    Programme.campaign = {
        "campaign_id": campaign_id,
        "name": f"Campaign {campaign_id}",
        "kind": "event",
        "starts_on": str(today),
        "ends_on": str(today + timedelta(days=days)),
        "state": state,
    }
    with LocalServer(Programme) as programme:
        settings = portal_settings({"incentives": incentives, "programme": programme.url})
        with signed_in(settings, token("p/u", Role.PARTNER_USER, partner_id=partner)) as portal:
            yield portal


async def test_an_approved_campaign_budget_is_claimed_against_from_the_mdf_page(
    infra: Infra, incentives: str, admin_db: asyncpg.Connection[Any]
) -> None:
    """Found in review: the page showed an approved budget with no way to claim against it,
    and its reservation had taken the fund's available money, so the plain claim form was
    refused (409 more than available) and the budget lapsed unspent."""
    run = uuid.uuid4().hex[:10]
    today = datetime.now(UTC).date()
    async with httpx.AsyncClient(base_url=incentives, timeout=60) as client:
        partner = await earning_partner(infra, admin_db, client)
        campaign = campaign_changed(f"c-{run}", partner)
        await publish(
            infra, PROGRAMME_CAMPAIGNS, [campaign], subject=campaign.campaign_id, source="programme"
        )
        available = (await client.get(f"/partners/{partner}/mdf", headers=auth(partner))).json()
        ask = {
            "reference": f"r-{run}",
            "campaign_id": campaign.campaign_id,
            "activity_kind": "webinar",
            "description": "joint webinar",
            "starts_on": str(today),
            "ends_on": str(today + timedelta(days=5)),
            "amount": available["available"],  # the whole fund: nothing left to claim plainly
            "currency": "USD",
        }

        async def asked() -> str | None:
            answer = await client.post("/mdf/preapprovals", headers=auth(partner), json=ask)
            return str(answer.json()["preapproval_id"]) if answer.status_code == 201 else None

        preapproval_id = await eventually(asked, what="incentives to hear of the campaign")
        decided = await client.post(
            f"/mdf/preapprovals/{preapproval_id}/decision", headers=ADMIN, json={"approve": True}
        )
        assert decided.status_code == 200, decided.text
    with mdf_page_of(partner, incentives, campaign.campaign_id, "running", days=5) as portal:
        shown = portal.get("/mdf")
        assert f'id="claim-{preapproval_id}"' in shown.text, shown.text
        form = {
            "csrf_token": form_csrf(portal, "/mdf"),
            "amount": "300.00",
            "description": "Webinar platform",
            "proof_reference": f"INV-{run}",
        }
        plain = portal.post("/mdf/claims", data=form)
        assert plain.status_code == 409  # the fund's money is the budget's now
        claimed = portal.post(f"/mdf/preapprovals/{preapproval_id}/claims", data=form)
        assert claimed.status_code == 200, claimed.text
        left = Decimal(available["available"]) - Decimal("300.00")
        assert re.fullmatch(
            rf"Claim \S+ for 300\.00 USD against budget {preapproval_id}: requested"
            rf" \({left} USD of the budget left\)",
            message(claimed.text),
        ), message(claimed.text)
        too_much = portal.post(
            f"/mdf/preapprovals/{preapproval_id}/claims",
            data={**form, "amount": "999999.00", "proof_reference": f"INV-{run}-2"},
        )
        assert too_much.status_code == 409, too_much.text
        assert message(too_much.text).startswith("Not claimed: ")
        # The refused budget claim keeps what was typed in its own form, not the plain one.
        assert f'id="bc-amount-{preapproval_id}" name="amount" inputmode="decimal"' in (
            too_much.text
        )
        assert 'required value="999999.00"' in too_much.text
        assert (
            'id="claim-amount" name="amount" inputmode="decimal" maxlength="40" required value=""'
            in too_much.text
        )
    stored = await admin_db.fetchval(
        "SELECT count(*) FROM incentives.mdf_claims WHERE preapproval_id = $1", preapproval_id
    )
    assert stored == 1


async def test_a_refused_plan_or_budget_keeps_what_was_typed(
    infra: Infra, incentives: str, admin_db: asyncpg.Connection[Any]
) -> None:
    """Found in review: a plan or a budget refused (programme's 422, incentives' 409 for a
    campaign planned a moment ago) emptied the form, and the budget form got a new reference,
    so sending it again could ask twice."""
    run = uuid.uuid4().hex[:10]
    today = datetime.now(UTC).date()
    async with httpx.AsyncClient(base_url=incentives, timeout=60) as client:
        partner = await earning_partner(infra, admin_db, client)
    # programme knows the campaign; incentives has not heard of it yet
    with mdf_page_of(partner, incentives, f"c-unheard-{run}", "planned", days=3) as portal:
        csrf = form_csrf(portal, "/mdf")
        plan = {
            "csrf_token": csrf,
            "name": f"Roadshow {run}",
            "kind": "event",
            "starts_on": str(today + timedelta(days=9)),
            "ends_on": str(today + timedelta(days=2)),
            "description": "three cities",
        }
        refused = portal.post("/mdf/campaigns", data=plan)
        assert refused.status_code == 422, refused.text
        assert f'value="Roadshow {run}"' in refused.text
        assert '<option value="event" selected>' in refused.text
        assert 'value="three cities"' in refused.text
        budget = {
            "csrf_token": csrf,
            "campaign_id": Programme.campaign["campaign_id"],
            "activity_kind": "content",
            "description": "booth and print",
            "amount": "250.00",
            "reference": f"portal-{run}",
        }
        asked = portal.post("/mdf/preapprovals", data=budget)
        assert asked.status_code == 409, asked.text
        assert 'value="booth and print"' in asked.text
        assert 'id="budget-amount" name="amount" inputmode="decimal"' in asked.text
        assert 'required value="250.00"' in asked.text
        assert f'name="reference" value="portal-{run}"' in asked.text
