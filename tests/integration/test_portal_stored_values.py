"""What the services stored before today's checks, shown by the portal in process (a local
HTTP server answers as onboarding and deals): a resource address no browser opens is flagged,
never a 500, and a name carrying a right-to-left override is isolated from the portal's text
around it. Both were found from outside."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from services.onboarding.enablement_schemas import EngagementOut, ResourceOut
from shared.identity import Role
from shared.topics import SERVICES
from tests.support.local_http import LocalServer, QuietHandler
from tests.support.portal import form_csrf
from tests.support.portal_in_process import portal_settings, signed_in
from tests.support.tokens import token

PARTNER = token("ptn_stored/u", Role.PARTNER_USER, partner_id="ptn_stored")
MANAGER = token("cm", Role.CHANNEL_MANAGER)
RLO = "\u202e"


def resource(resource_id: str, url: str, kind: str = "early_access") -> dict[str, Any]:
    return ResourceOut(
        resource_id=resource_id,
        kind=kind,
        title=f"Guide {resource_id}",
        url=url,
        partner_types=[],
        tiers=[],
        published_at="2026-11-01T00:00:00+00:00",
    ).model_dump(exclude_unset=True)


# Each stored by onboarding before it parsed addresses (the probe's), beside a good one.
LIBRARY = [
    resource("res_abc", "https://res.example:abc/a"),
    resource("res_bracket", "https://[::1/a"),
    resource("res_big", "https://res.example:99999/a"),
    resource("res_zero", "https://res.example:0/a"),
    resource("res_good", "https://docs.example/guide.pdf", "playbook"),
]


class Stored(QuietHandler):
    """Onboarding's library and engagements, its applications, and deals' registrations,
    holding what was stored before the checks."""

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/resources":
            self.send_json(200, LIBRARY)
        elif path == "/applications":
            outcome = urlsplit(self.path).query
            self.send_json(200, [APPLICATION] if "outcome=review" in outcome else [])
        elif path in ("/registrations", "/admin/reviews"):
            self.send_json(200, [REGISTRATION])
        else:
            self.send_json(404, {"detail": "not found"})

    def do_POST(self) -> None:
        resource_id = self.path.split("/")[2]
        body = self.rfile.read(int(self.headers["Content-Length"]))
        found = next(r for r in LIBRARY if r["resource_id"] == resource_id)
        action = "download" if b"download" in body else "sandbox_signup"
        engagement = EngagementOut(
            resource=ResourceOut.model_validate(found), action=action, recorded=True
        )
        self.send_json(201, engagement.model_dump(mode="json"))


APPLICATION = {
    "partner_id": "ptn_northwind",
    "company_name": f"Northwind Traders {RLO}",
    "partner_type": "isv",
    "domain": "moc.tfosorcim",
    "status": "applied",
    "reason": "qualification recommends a review",
}
REGISTRATION = {
    "registration_id": "reg_1",
    "partner_id": "ptn_a",
    "customer_name": f"Fabrikam {RLO}",
    "customer_domain": f"{RLO}moc.kamirbaf",
    "amount": "12000000",
    "currency": "USD",
    "status": "pending_review",
    "submitted_at": "2026-12-01T00:00:00+00:00",
    "reasons": [],
    "conflicts": [],
}


@pytest.fixture
def services() -> Iterator[str]:
    with LocalServer(Stored) as server:
        yield server.url


def signed_in_to(url: str, value: str) -> Iterator[TestClient]:
    with signed_in(portal_settings(dict.fromkeys(SERVICES, url)), value) as client:
        yield client


@pytest.fixture
def partner(services: str) -> Iterator[TestClient]:
    yield from signed_in_to(services, PARTNER)


@pytest.fixture
def manager(services: str) -> Iterator[TestClient]:
    yield from signed_in_to(services, MANAGER)


def test_the_library_flags_an_address_no_browser_opens_instead_of_failing(
    partner: TestClient,
) -> None:
    page = partner.get("/resources")
    assert page.status_code == 200, page.text
    assert page.text.count("its address is not a valid https URL") == 4
    assert 'action="/resources/res_good/download"' in page.text
    assert 'action="/resources/res_abc/download"' not in page.text
    assert "form-action 'self' https://docs.example;" in page.headers["content-security-policy"]


def test_a_sandbox_sign_up_and_a_download_of_such_a_resource_say_why(
    partner: TestClient,
) -> None:
    csrf = form_csrf(partner, "/resources")
    signed_up = partner.post("/resources/res_big/sandbox", data={"csrf_token": csrf})
    assert signed_up.status_code == 200, signed_up.text
    assert "Signed up for Guide res_big." in signed_up.text
    download = partner.post("/resources/res_abc/download", data={"csrf_token": csrf})
    assert download.status_code == 503, download.text
    assert "onboarding is unavailable: answered a resource address no browser opens" in (
        download.text
    )
    good = partner.post("/resources/res_good/download", data={"csrf_token": csrf})
    assert (good.status_code, good.headers["location"]) == (303, "https://docs.example/guide.pdf")


def test_a_name_with_a_right_to_left_override_is_isolated_from_the_text_beside_it(
    manager: TestClient,
) -> None:
    """Found from outside: the console printed "Northwind Traders (isv, moc.tfosorcim)", and
    the override at the end of the name showed it as "(microsoft.com ,vsi)"."""
    applications = manager.get("/console/applications")
    assert applications.status_code == 200, applications.text
    assert f"<bdi>Northwind Traders {RLO}</bdi>" in applications.text
    assert "(isv, <bdi>moc.tfosorcim</bdi>)" in applications.text
    queue = manager.get("/console")
    assert queue.status_code == 200, queue.text
    assert f"<bdi>Fabrikam {RLO}</bdi></a>" in queue.text
    assert f"<bdi>{RLO}moc.kamirbaf</bdi>" in queue.text
    stylesheet = manager.get("/static/portal.css").text
    assert "a, span, strong, em, code, time { unicode-bidi: isolate; }" in stylesheet
