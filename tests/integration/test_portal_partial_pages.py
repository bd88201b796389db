"""Portal pages in process whose main service answers (a stand-in on a local port) while a
service that draws only part of them does not (nothing listens on its port): the page shows
what it has and says what it cannot show, where it was a 503 for the whole page (found in
review: the partners list without attribution's health scores, a partner's page without its
balance and revenue, a partner's earnings without the revenue chart)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

from shared.identity import Role
from tests.support.local_http import LocalServer, QuietHandler
from tests.support.portal_in_process import portal_settings, signed_in
from tests.support.processes import free_port
from tests.support.tokens import ADMIN_TOKEN, token

PARTNER = "ptn_partial"


def partner_row() -> dict[str, Any]:
    return {
        "partner_id": PARTNER,
        "company_name": "Partial Partner",
        "domain": "partial.example",
        "tier": "gold",
        "status": "active",
        "partner_type": "gsi",
        "attributed_revenue": "1000.00",
        "history": [],
    }


class Onboarding(QuietHandler):
    """Onboarding as the console reads it: one partner."""

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/admin/partners" and "q=%40" in self.path:
            self.send_json(422, {"detail": "q: name must contain a letter or a digit"})
        elif path == "/admin/partners":
            self.send_json(200, {"partners": [partner_row()], "total": 1})
        elif path == f"/partners/{PARTNER}":
            self.send_json(200, partner_row())
        elif path == f"/partners/{PARTNER}/certifications":
            self.send_json(200, [])
        else:
            self.send_json(404, {"detail": f"no {path}"})


class Incentives(QuietHandler):
    """Incentives as a partner's earnings page reads it (nothing earned yet)."""

    answers: ClassVar[dict[str, Any]] = {}

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        base = f"/partners/{PARTNER}"
        zero = {"partner_id": PARTNER, "currency": "USD"}
        answers: dict[str, Any] = {
            "/programs": {"programs": {}, "active_spiffs": [], "current_period": "2026-Q4"},
            f"{base}/balance": zero
            | {"balance": "0.00", "earned": "0.00", "reversed": "0.00", "paid": "0.00"}
            | {"mdf": {"available": "0.00", "ledger_balance": "0.00", "deficit": "0.00"}},
            f"{base}/statement": zero
            | {"period": "2026-Q4", "opening_balance": "0.00", "closing_balance": "0.00"}
            | {"entries": [], "totals_by_type": {}, "totals_by_rule": {}, "mdf_entries": []},
            f"{base}/earnings": zero | {"quarters": []},
        }
        if path in answers:
            self.send_json(200, answers[path])
        else:
            self.send_json(404, {"detail": f"no {path}"})


def missing(html: str) -> str:
    found = re.search(r'id="missing" role="status">(.*?)</p>', html, re.S)
    assert found, "the page says what it cannot show"
    return found.group(1)


@pytest.fixture
def manager() -> Iterator[TestClient]:
    down = f"http://127.0.0.1:{free_port()}"
    with LocalServer(Onboarding) as onboarding:
        urls = {"onboarding": onboarding.url, "attribution": down, "incentives": down}
        with signed_in(portal_settings(urls), ADMIN_TOKEN) as client:
            yield client


def test_the_partners_list_shows_the_partners_without_their_health(manager: TestClient) -> None:
    answer = manager.get("/console/partners")
    assert answer.status_code == 200, answer.text
    assert "Partial Partner" in answer.text
    assert "attribution is unavailable" in missing(answer.text)
    # The health filter cannot be applied without the scores: that page is a 503.
    assert manager.get("/console/partners", params={"below": "50"}).status_code == 503


def test_a_partners_page_shows_its_standing_without_revenue_and_earnings(
    manager: TestClient,
) -> None:
    answer = manager.get(f"/console/partners/{PARTNER}")
    assert answer.status_code == 200, answer.text
    assert 'id="tier">gold<' in answer.text
    said = missing(answer.text)
    assert "attribution is unavailable" in said
    assert "incentives is unavailable" in said
    # Nothing says "no revenue" or "nothing earned" where it could not be read.
    assert '<p id="revenue">Cannot be shown now.</p>' in answer.text
    assert '<p id="earnings">Cannot be shown now.</p>' in answer.text


def test_a_partners_earnings_show_without_the_revenue_chart() -> None:
    down = f"http://127.0.0.1:{free_port()}"
    with LocalServer(Incentives) as incentives:
        urls = {"incentives": incentives.url, "attribution": down}
        signed = token("p/u", Role.PARTNER_USER, partner_id=PARTNER)
        with signed_in(portal_settings(urls), signed) as partner:
            answer = partner.get("/earnings")
    assert answer.status_code == 200, answer.text
    assert "attribution is unavailable" in missing(answer.text)
    assert '<p id="revenue-by-quarter">Cannot be shown now.</p>' in answer.text


def test_the_crm_links_page_shows_without_the_held_credits() -> None:
    class Attribution(QuietHandler):
        def do_GET(self) -> None:
            self.send_json(200, [])

    down = f"http://127.0.0.1:{free_port()}"
    with LocalServer(Attribution) as attribution:
        urls = {"attribution": attribution.url, "incentives": down}
        with signed_in(portal_settings(urls), ADMIN_TOKEN) as manager:
            answer = manager.get("/console/crm-links")
    assert answer.status_code == 200, answer.text
    assert "incentives is unavailable" in missing(answer.text)
    assert '<p id="held">Cannot be shown now.</p>' in answer.text


def test_a_search_onboarding_refuses_is_said_beside_the_form(manager: TestClient) -> None:
    """Found in review: `?q=@` was onboarding's 422 on a bare error page, the form gone."""
    answer = manager.get("/console/partners", params={"q": "@"})
    assert answer.status_code == 422
    assert "Not searched: q: name must contain a letter or a digit" in answer.text
    assert 'id="f-q" name="q" type="search" value="@"' in answer.text
