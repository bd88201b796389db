"""The portal's MDF claim form in process, in front of a real incentives process on real Kafka +
Postgres, as an outside probe found it: the form sent twice made two claims on one proof. Now
the second answers with the first claim, the page lists one, and the same proof asking for
other money is refused beside the form with incentives' reason."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi.testclient import TestClient

from services.portal.app import create_app
from services.portal.settings import PortalSettings
from shared.identity import Role
from tests.integration.test_incentives_http_edges import earning_partner
from tests.support.infra import Infra
from tests.support.portal import form_csrf
from tests.support.processes import free_port, service_processes
from tests.support.tokens import VERIFICATION_KEYS, token

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def incentives(infra: Infra) -> AsyncIterator[str]:
    async with service_processes(infra, "incentives") as urls:
        yield urls[0]


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
    settings = PortalSettings(
        token_verification_keys=VERIFICATION_KEYS,
        development_mode=True,
        portal_incentives_url=incentives,
        # Programme does not answer: the page shows the fund and claims without campaigns.
        portal_programme_url=f"http://127.0.0.1:{free_port()}",
    )
    with TestClient(create_app(settings), follow_redirects=False) as portal:
        portal.get("/sign-in")
        csrf = portal.cookies.get("pollinate_csrf")
        signed = token("p/u", Role.PARTNER_USER, partner_id=partner)
        answer = portal.post("/sign-in", data={"token": signed, "csrf_token": csrf})
        assert answer.status_code == 303, answer.text
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
    stored = await admin_db.fetchval(
        "SELECT count(*) FROM incentives.mdf_claims WHERE partner_id = $1", partner
    )
    assert stored == 1
