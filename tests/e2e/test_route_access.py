"""The README's route table is the truth about who may call what: it lists every route of every
service (checked against the committed OpenAPI documents), and every route answers callers as the
table says: no token, an expired one, one meant for another service, a role the route does not
admit, a suspended partner's, and another partner's."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from services.portal.sessions import bound_csrf
from shared.events.partners import PartnerChange, PartnerStatus
from shared.identity import PARTNER_ROLES, Role
from shared.topics import PARTNER_LIFECYCLE, SERVICES
from tests.support.factories import partner_state_changed
from tests.support.infra import ROOT, Infra
from tests.support.kafka import publish
from tests.support.polling import eventually
from tests.support.portal import portal_routes, session_cookies
from tests.support.processes import Fleet
from tests.support.tokens import bearer, expired, token

pytestmark = pytest.mark.e2e

ROW = re.compile(
    r"^\| (?P<service>[a-z]+) \| `(?P<method>[A-Z]+) (?P<path>\S+)` \| (?P<who>.+) \|$"
)
# What a path parameter stands for in these calls (none of them exists: access is decided first).
PARAMETERS = {
    "partner_id": "{partner}",
    "registration_id": "reg_route_access",
    "claim_id": "clm_route_access",
    "deal_key": "salesforce:route-access",
    "item": "agreement_signed",
    "owner": "rep-route-access@vendor.example",
    "endpoint_id": "00000000-0000-4000-8000-000000000001",
    "delivery_id": "00000000-0000-4000-8000-000000000002",
    "person_id": "psn_route_access",
    "resource_id": "res_route_access",
    "offset": "999999999",
    "service": "deals",
    "version": "route-access-none",
    "appeal_id": "apl_route_access",
    "year": "2026",
    "survey_id": "00000000-0000-4000-8000-000000000003",
    "preapproval_id": "pa_route_access",
    "campaign_id": "camp_route_access",
    "manager": "manager-route-access@vendor.example",
}
# A role to try where a route does not admit it, in order of preference.
OUTSIDERS = (Role.SYSTEM, Role.FINANCE, Role.PARTNER_USER, Role.CHANNEL_MANAGER)


@dataclass(frozen=True)
class Route:
    service: str
    method: str
    path: str
    who: str

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(role for role in Role if re.search(rf"\b{role.value}\b", self.who))

    @property
    def open_to_anyone(self) -> bool:
        return self.who.startswith("anyone")

    @property
    def signed_delivery(self) -> bool:
        return self.who.startswith("signed:")

    def url(self, fleet: Fleet, partner: str) -> str:
        path = self.path
        for name, value in PARAMETERS.items():
            path = path.replace(f"{{{name}}}", value.format(partner=partner))
        return fleet.url(self.service) + path

    def __str__(self) -> str:
        return f"{self.service} {self.method} {self.path}"


def table(portal: bool = False) -> list[Route]:
    """The APIs' rows (bearer tokens), or with `portal` the portal's (pages: session cookies)."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("<!-- routes:start", 1)[1].split("<!-- routes:end -->", 1)[0]
    routes: list[Route] = []
    for line in section.splitlines():
        match = ROW.match(line.strip())
        if match is None:
            continue
        if (match["service"] == "portal") != portal:
            continue
        services = SERVICES if match["service"] == "any" else (match["service"],)
        routes += [Route(s, match["method"], match["path"], match["who"]) for s in services]
    return routes


ROUTES = table()
PORTAL_ROUTES = table(portal=True)


def test_the_table_lists_every_route_of_every_service_once() -> None:
    documented = set()
    for service in SERVICES:
        document = json.loads((ROOT / "docs" / "openapi" / f"{service}.json").read_text())
        for path, operations in document["paths"].items():
            documented |= {(service, method.upper(), path) for method in operations}
    listed = [(r.service, r.method, r.path) for r in ROUTES]
    assert len(listed) == len(set(listed))
    assert set(listed) == documented
    for route in ROUTES:
        assert route.open_to_anyone or route.signed_delivery or route.roles, str(route)


async def call(client: httpx.AsyncClient, route: Route, url: str, headers: dict[str, str]) -> Any:
    body = {"json": {}} if route.method in ("POST", "PATCH", "PUT") else {}
    if route.path.endswith("/stream"):
        # A live stream admitted never ends: its status and headers are the answer.
        async with client.stream(route.method, url, headers=headers) as response:
            if response.status_code != 200:
                await response.aread()
            return response
    return await client.request(route.method, url, headers=headers, **body)


@pytest.fixture(scope="module")
async def suspended_partner(fleet: Fleet, infra: Infra) -> str:
    """A partner onboarding suspended, as every service hears it from the lifecycle topic."""
    partner_id = f"ptn_revoked_{uuid.uuid4().hex[:8]}"
    state = partner_state_changed(
        partner_id=partner_id, status=PartnerStatus.SUSPENDED, change=PartnerChange.SUSPENDED
    )
    await publish(infra, PARTNER_LIFECYCLE, [state], subject=partner_id, source="onboarding")
    headers = bearer(token(f"{partner_id}/u", Role.PARTNER_USER, partner_id=partner_id))
    async with httpx.AsyncClient(timeout=10) as client:

        async def refused_everywhere() -> bool:
            probes = [
                await client.get(f"{fleet.url('incentives')}/programs", headers=headers),
                await client.get(f"{fleet.url('deals')}/registrations", headers=headers),
                await client.get(f"{fleet.url('onboarding')}/partners", headers=headers),
                await client.get(
                    f"{fleet.url('attribution')}/partners/{partner_id}/revenue", headers=headers
                ),
                await client.get(
                    f"{fleet.url('notifications')}/partners/{partner_id}/notifications",
                    headers=headers,
                ),
                await client.get(
                    f"{fleet.url('programme')}/partners/{partner_id}/plans", headers=headers
                ),
            ]
            return all(p.status_code == 403 for p in probes)

        await eventually(refused_everywhere, 20, what="every service to hear of the suspension")
    return partner_id


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_each_route_answers_each_caller_as_the_table_says(
    fleet: Fleet, suspended_partner: str, route: Route
) -> None:
    partner = f"ptn_route_{uuid.uuid4().hex[:6]}"
    url = route.url(fleet, partner)
    async with httpx.AsyncClient(timeout=15) as client:
        anonymous = await call(client, route, url, {})
        if route.open_to_anyone:
            assert anonymous.status_code not in (401, 403), anonymous.text
            return
        assert anonymous.status_code == 401, anonymous.text
        if route.signed_delivery:
            return  # their signatures: tests/integration/test_crm_sources_authenticated.py
        assert anonymous.json() == {"detail": "missing bearer token"}

        role = sorted(route.roles)[0]
        partner_id = partner if role in PARTNER_ROLES else None
        stale = await call(client, route, url, bearer(expired("x", role, partner_id=partner_id)))
        assert (stale.status_code, stale.json()) == (401, {"detail": "token expired"})

        others = tuple(s for s in SERVICES if s != route.service)
        misdirected = token("x", role, partner_id=partner_id, audiences=others)
        answer = await call(client, route, url, bearer(misdirected))
        assert (answer.status_code, answer.json()) == (
            401,
            {"detail": f"token not meant for {route.service}"},
        )

        if not route.path.endswith("/run"):  # a run would change other tests' data
            for admitted in sorted(route.roles):
                own = partner if admitted in PARTNER_ROLES else None
                answer = await call(
                    client, route, url, bearer(token("x", admitted, partner_id=own))
                )
                assert answer.status_code not in (401, 403), (admitted, answer.text)

        outsider = next(r for r in OUTSIDERS if r not in route.roles)
        stranger = partner if outsider in PARTNER_ROLES else None
        refused = await call(client, route, url, bearer(token("x", outsider, partner_id=stranger)))
        assert refused.status_code == 403, refused.text
        assert refused.json()["detail"].startswith("this needs "), refused.text

        if route.roles & PARTNER_ROLES:
            revoked = bearer(token("u", Role.PARTNER_USER, partner_id=suspended_partner))
            answer = await call(client, route, url.replace(partner, suspended_partner), revoked)
            assert (answer.status_code, answer.json()) == (
                403,
                {"detail": "partner access revoked: suspended"},
            )
            if "{partner_id}" in route.path and route.method == "GET":
                other = bearer(token("u", Role.PARTNER_USER, partner_id=f"{partner}-other"))
                answer = await call(client, route, url, other)
                assert answer.status_code == 404, answer.text


# The portal's pages: a session cookie instead of a bearer header, CSRF on every form post.
CSRF = "c" * 43


def test_the_table_lists_every_route_of_the_portal_once() -> None:
    listed = [(r.method, r.path) for r in PORTAL_ROUTES]
    assert len(listed) == len(set(listed))
    assert set(listed) == portal_routes()


async def visit(
    portal: str, route: Route, partner: str, session: str | None, csrf: bool = True
) -> Any:
    path = route.path.replace("{path}", "portal.css")
    for name, value in PARAMETERS.items():
        path = path.replace(f"{{{name}}}", value.format(partner=partner))
    cookies = {"pollinate_csrf": CSRF, **(session_cookies(session) if session else {})}
    async with httpx.AsyncClient(timeout=15, cookies=cookies, follow_redirects=False) as client:
        url = portal + path
        if route.method == "POST":
            # Signed in, a form carries the CSRF cookie's value bound to the session.
            value = bound_csrf(CSRF, session)
            return await client.post(url, data={"csrf_token": value} if csrf else {})
        if path.startswith("/live/"):
            async with client.stream("GET", url) as response:
                if response.status_code != 200:
                    await response.aread()
                return response
        return await client.get(url)


def sent_to_sign_in(answer: Any) -> bool:
    return answer.status_code == 303 and answer.headers["location"].startswith("/sign-in")


@pytest.mark.parametrize("route", PORTAL_ROUTES, ids=str)
async def test_each_portal_page_answers_each_caller_as_the_table_says(
    portal: str, suspended_partner: str, route: Route
) -> None:
    partner = f"ptn_route_{uuid.uuid4().hex[:6]}"
    anonymous = await visit(portal, route, partner, None)
    if route.open_to_anyone:
        assert anonymous.status_code not in (401, 403), anonymous.text
        assert not sent_to_sign_in(anonymous) or route.path == "/sign-out"
        return
    if route.path.startswith("/live/"):
        assert anonymous.status_code == 401, anonymous.text
    else:
        assert sent_to_sign_in(anonymous), (anonymous.status_code, anonymous.text)

    role = sorted(route.roles)[0]
    stale = expired("x", role, partner_id=partner if role in PARTNER_ROLES else None)
    answer = await visit(portal, route, partner, stale)
    assert answer.status_code == 401 or answer.headers.get("location", "").endswith("expired")

    for admitted in sorted(route.roles):
        own = partner if admitted in PARTNER_ROLES else None
        answer = await visit(portal, route, partner, token("x", admitted, partner_id=own))
        assert answer.status_code not in (401, 403), (admitted, answer.text)
        assert not sent_to_sign_in(answer), admitted
        if route.method == "POST":
            unsent = await visit(
                portal, route, partner, token("x", admitted, partner_id=own), False
            )
            assert unsent.status_code == 403, unsent.text
            assert "not sent by this portal" in unsent.text

    outsider = next(r for r in OUTSIDERS if r not in route.roles)
    stranger = partner if outsider in PARTNER_ROLES else None
    refused = await visit(portal, route, partner, token("x", outsider, partner_id=stranger))
    assert refused.status_code == 403, refused.text

    if route.roles & PARTNER_ROLES and route.method == "GET" and route.path != "/":
        revoked = token("u", Role.PARTNER_USER, partner_id=suspended_partner)
        answer = await visit(portal, route, partner, revoked)
        assert answer.status_code == 403, answer.text
        assert "partner access revoked: suspended" in answer.text
