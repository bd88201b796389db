"""The portal's MDF claim form in process, in front of a real incentives process on real Kafka +
Postgres, as an outside probe found it: the form sent twice made two claims on one proof. Now
the second answers with the first claim, the page lists one, and the same proof asking for
other money is refused beside the form with incentives' reason."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import httpx
import pytest

from shared.identity import Role
from tests.support.incentives import earning_partner
from tests.support.infra import Infra
from tests.support.portal import form_csrf
from tests.support.portal_in_process import portal_settings, signed_in
from tests.support.processes import free_port, service_fixture
from tests.support.tokens import token

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
