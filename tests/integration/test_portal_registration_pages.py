"""A partner's registrations in the portal, in process (a local HTTP server answers as the
services): the home asks deals for the open ones, whatever came since; the registrations page
goes on to older ones a page at a time, and a page address naming no registration of the
partner's is deals' 422, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from services.portal.views import REGISTRATIONS_PAGE
from shared.identity import Role
from tests.support.local_http import QuietHandler
from tests.support.portal_in_process import signed_in_before
from tests.support.tokens import token

PARTNER_ID = "ptn_pages"
PARTNER = token("ptn_pages/u", Role.PARTNER_USER, partner_id=PARTNER_ID)
NEWEST = 150  # registrations the partner holds, reg-149 the newest


def registration(number: int, status: str = "won") -> dict[str, Any]:
    return {
        "registration_id": f"reg-{number:03}",
        "customer_name": f"Customer {number:03}",
        "amount": "100.00",
        "currency": "USD",
        "status": status,
        "submitted_at": "2026-12-01T00:00:00+00:00",
    }


class Services(QuietHandler):
    """Deals (the partner's registrations newest first, paged and filtered as deals does),
    onboarding and notifications for the home; deals' queries as they arrived."""

    asked: ClassVar[list[dict[str, list[str]]]] = []
    notifications_down: ClassVar[bool] = False

    def do_GET(self) -> None:
        path, query = urlsplit(self.path).path, parse_qs(urlsplit(self.path).query)
        if path == "/registrations":
            Services.asked.append(query)
            self.registrations(query)
        elif path == f"/partners/{PARTNER_ID}":
            partner = {"partner_id": PARTNER_ID, "company_name": "Pages", "status": "active"}
            self.send_json(200, {**partner, "tier": "gold", "partner_type": "isv"} | REVENUE)
        elif path.endswith("/next-tier"):
            self.send_json(200, {"tier": "gold", "revenue_short": "0", "currency": "USD"} | TIER)
        elif path.endswith("/notifications/newest") and Services.notifications_down:
            self.send_json(503, {"detail": "down"})
        elif path.endswith("/notifications/newest"):
            self.send_json(200, {"items": [], "unread": 0, "live_after": None})
        else:
            self.send_json(200, [])

    def registrations(self, query: dict[str, list[str]]) -> None:
        if query.get("after") == ["reg-nobody"]:
            self.send_json(422, {"detail": "after names no registration of yours: 'reg-nobody'"})
            return
        start = int(query["after"][0].removeprefix("reg-")) if "after" in query else NEWEST
        # The open one is the oldest: behind 149 newer ones that are not open any more.
        every = [registration(n, "approved" if n == 0 else "won") for n in range(start)][::-1]
        if every and every[-1]["status"] == "approved":  # its window open, one extension left
            every[-1] |= {"expires_at": "2099-01-01T00:00:00+00:00", "extensions_left": 1}
        wanted = [r for r in every if "status" not in query or r["status"] in query["status"]]
        self.send_json(200, wanted[: int(query["limit"][0])])


REVENUE = {"attributed_revenue": "0"}
TIER = {"attributed_revenue": "0", "revenue_window_days": 365}


@pytest.fixture
def partner() -> Iterator[TestClient]:
    Services.asked, Services.notifications_down = [], False
    with signed_in_before(Services, PARTNER) as client:
        yield client


def test_the_home_shows_an_open_registration_behind_newer_closed_ones(partner: TestClient) -> None:
    """Found in the code: the home read the newest 500 registrations and kept the open ones, so
    a protected registration went missing once 500 newer ones had come in."""
    home = partner.get("/home")
    assert home.status_code == 200, home.text
    assert "Customer 000" in home.text
    assert Services.asked == [
        {"status": ["approved", "pending_review", "submitted"], "limit": ["500"]}
    ]


def test_the_home_shows_the_rest_while_notifications_does_not_answer(
    partner: TestClient,
) -> None:
    """Found in review: with notifications down, the partner's landing page was a 503 for
    its side panel."""
    Services.notifications_down = True
    home = partner.get("/home")
    assert home.status_code == 200, home.text
    assert "Customer 000" in home.text
    assert "Notifications cannot be shown now (notifications is unavailable" in home.text
    assert 'id="notifications"' not in home.text  # no list: no live stream is opened


def test_the_registrations_page_goes_on_to_older_ones(partner: TestClient) -> None:
    first = partner.get("/registrations")
    assert first.status_code == 200, first.text
    last_shown = f"reg-{NEWEST - REGISTRATIONS_PAGE:03}"
    assert f'href="/registrations?after={last_shown}"' in first.text
    older = partner.get(f"/registrations?after={last_shown}")
    assert older.status_code == 200, older.text
    assert f"Customer {NEWEST - REGISTRATIONS_PAGE - 1:03}" in older.text
    assert "Older registrations" not in older.text  # fewer than a page: the last one
    assert 'href="/registrations">Newest registrations' in older.text
    # Its extension is asked from this page and answers on it (it went to the newest page).
    assert f'action="/registrations/reg-000/extension?after={last_shown}"' in older.text
    # ... as read: deals refuses a window extended since, so a form sent twice extends once.
    assert 'name="read_until" value="2099-01-01T00:00:00+00:00"' in older.text
    # Exactly a page left (reg-099 to reg-000): the last page, no link to an empty one.
    exact = partner.get(f"/registrations?after=reg-{REGISTRATIONS_PAGE:03}")
    assert "Customer 000" in exact.text
    assert "Older registrations" not in exact.text
    stray = partner.get("/registrations?after=reg-nobody")
    assert stray.status_code == 422, stray.text
    assert "after names no registration of yours" in stray.text
