"""The console's operations and oversight pages, in process (no service answers here): who
reaches them, CSRF on their forms, hostile path and form values, and services that do not
answer (said per service, the page still shown)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from services.portal.app import create_app
from services.portal.settings import PortalSettings
from shared.identity import Role
from shared.topics import SERVICES
from tests.support.local_http import LocalServer, QuietHandler
from tests.support.portal import form_csrf
from tests.support.portal_in_process import portal_settings, signed_in
from tests.support.processes import free_port
from tests.support.tokens import token

PARTNER = token("p/u", Role.PARTNER_USER, partner_id="ptn_console_edges")
MANAGER = token("cm", Role.CHANNEL_MANAGER)
FINANCE = token("fin", Role.FINANCE)
CONSOLE_PAGES = (
    "/console/dead-letters",
    "/console/partners",
    "/console/partners/ptn_x",
    "/console/policy",
    "/console/dashboard",
)


def settings(urls: Mapping[str, str] | None = None) -> PortalSettings:
    # Nothing listens on this port: every call to a service fails to connect at once (unless
    # `urls` names where one answers).
    nowhere = f"http://127.0.0.1:{free_port()}"
    return portal_settings(dict.fromkeys(SERVICES, nowhere) | dict(urls or {}))


def signed_in_to_nowhere(value: str) -> Iterator[TestClient]:
    with signed_in(settings(), value) as client:
        yield client


@pytest.fixture
def manager() -> Iterator[TestClient]:
    yield from signed_in_to_nowhere(MANAGER)


@pytest.fixture
def finance() -> Iterator[TestClient]:
    yield from signed_in_to_nowhere(FINANCE)


@pytest.fixture
def partner() -> Iterator[TestClient]:
    yield from signed_in_to_nowhere(PARTNER)


def form(client: TestClient, **fields: str) -> dict[str, str]:
    return {"csrf_token": form_csrf(client), **fields}


def says_unavailable(answer: httpx.Response, service: str) -> None:
    """The portal's answer when `service` does not answer: a 503 naming it."""
    assert answer.status_code == 503
    assert f"{service} is unavailable" in answer.text


@pytest.mark.parametrize("path", CONSOLE_PAGES)
def test_a_partner_cannot_open_a_console_page(partner: TestClient, path: str) -> None:
    answer = partner.get(path)
    assert answer.status_code == 403
    assert "this page needs the role channel_manager" in answer.text
    assert partner.get("/finance/payouts").status_code == 403


def test_a_partner_cannot_replay_dead_letters(partner: TestClient) -> None:
    answer = partner.post("/console/dead-letters/deals/3/replay", data=form(partner))
    assert answer.status_code == 403
    answer = partner.post("/console/dead-letters/deals/replay", data=form(partner, through="3"))
    assert answer.status_code == 403


def test_dead_letters_of_services_that_do_not_answer_are_said_per_service(
    manager: TestClient,
) -> None:
    answer = manager.get("/console/dead-letters")
    assert answer.status_code == 200
    for service in SERVICES:
        assert f"{service} is unavailable" in answer.text


def test_replays_refuse_hostile_values_and_unsent_forms(manager: TestClient) -> None:
    unsent = manager.post("/console/dead-letters/deals/3/replay")
    assert unsent.status_code == 403
    assert "not sent by this portal" in unsent.text
    for path, fields in (
        ("/console/dead-letters/payroll/3/replay", {}),
        ("/console/dead-letters/deals/-1/replay", {}),
        ("/console/dead-letters/deals/replay", {"through": "soon"}),
        ("/console/dead-letters/deals/replay", {}),
    ):
        answer = manager.post(path, data=form(manager, **fields))
        assert answer.status_code == 422, (path, answer.text)
    assert manager.get("/console/dead-letters", params={"state": "lost"}).status_code == 422
    assert manager.get("/console/dead-letters", params={"service": "x"}).status_code == 422
    down = manager.post("/console/dead-letters/deals/3/replay", data=form(manager))
    says_unavailable(down, "deals")


def test_the_partners_list_refuses_hostile_filters(manager: TestClient) -> None:
    for params in (
        {"below": "101"},
        {"below": "-1"},
        {"below": "1e3"},
        {"status": "dormant"},
        {"partner_type": "pirate"},
        {"tier": "Gold Plus"},
        {"offset": "-3"},
    ):
        answer = manager.get("/console/partners", params=params)
        assert answer.status_code == 422, (params, answer.text)
    assert manager.get("/console/partners/ptn%23frag").status_code == 422
    assert manager.get("/console/partners/%20x").status_code == 422


def test_partners_pages_say_which_service_did_not_answer(manager: TestClient) -> None:
    answer = manager.get("/console/partners", params={"status": "", "below": ""})
    says_unavailable(answer, "onboarding")
    assert manager.get("/console/partners/ptn_x").status_code == 503


def test_finance_lands_on_the_payouts_and_reaches_nothing_else() -> None:
    with TestClient(create_app(settings()), follow_redirects=False) as client:
        client.get("/sign-in")
        csrf = client.cookies.get("pollinate_csrf")
        answer = client.post("/sign-in", data={"token": FINANCE, "csrf_token": csrf})
        assert (answer.status_code, answer.headers["location"]) == (303, "/finance/payouts")
        assert client.get("/").headers["location"] == "/finance/payouts"
        for path in ("/console", "/console/partners", "/console/dead-letters", "/home"):
            assert client.get(path).status_code == 403, path


def test_only_finance_pays_and_partners_do_not_see_payouts(
    partner: TestClient, manager: TestClient
) -> None:
    assert partner.get("/finance/payouts").status_code == 403
    paid = partner.post("/finance/partners/p1/payouts", data=form(partner, reference="R1"))
    assert paid.status_code == 403
    refused = manager.post("/finance/partners/p1/payouts", data=form(manager, reference="R1"))
    assert refused.status_code == 403
    assert "this needs the role finance" in refused.text


def test_payouts_refuse_hostile_values(finance: TestClient) -> None:
    for params in (
        {"period": "2026-Q5"},
        {"state": "due"},
        {"after": "not a cursor!"},
        {"after": "x" * 401},
    ):
        assert finance.get("/finance/payouts", params=params).status_code == 422, params
    for fields in ({}, {"reference": "has space"}, {"reference": "R", "amount": "-5"}):
        answer = finance.post("/finance/partners/p1/payouts", data=form(finance, **fields))
        assert answer.status_code == 422, (fields, answer.text)
    unsent = finance.post("/finance/partners/p1/payouts", data={"reference": "R1"})
    assert unsent.status_code == 403
    says_unavailable(finance.get("/finance/payouts"), "incentives")


def test_policy_forms_refuse_hostile_values(manager: TestClient) -> None:
    for path, fields in (
        ("/console/policy/validate", {}),
        ("/console/policy/validate", {"document": "x" * 100_001}),
        (
            "/console/policy/backtest",
            {"document": "{}", "since": "yesterday", "until": "2026-01-01"},
        ),
        ("/console/policy/versions/bad%20version/activate", {}),
        ("/console/policy/versions/v1/activate", {"at": "next week"}),
    ):
        answer = manager.post(path, data=form(manager, **fields))
        assert answer.status_code == 422, (path, answer.text)
    unsent = manager.post("/console/policy/versions", data={"document": "{}"})
    assert unsent.status_code == 403
    says_unavailable(manager.get("/console/policy"), "deals")


def test_the_dashboard_says_which_service_did_not_answer(manager: TestClient) -> None:
    answer = manager.get("/console/dashboard")
    assert answer.status_code == 503
    assert "is unavailable" in answer.text


@pytest.mark.parametrize(
    "quarter", ["2026Q1", "2026-Q5", "26-Q1", "2026-Q1 ", "2026-q1", "\uff12\uff10\uff12\uff16-Q1"]
)
def test_the_dashboard_refuses_a_quarter_not_spelt_as_programme_spells_it(
    manager: TestClient, quarter: str
) -> None:
    # Refused before any service is asked (none answers here: asking would be a 503).
    answer = manager.get("/console/dashboard", params={"to_quarter": quarter})
    assert answer.status_code == 422, answer.text
    assert "to_quarter" in answer.text


AWKWARD = "a b?#%x"  # a CRM reference attribution takes: each of these would end or bend a path


def unmatched_reference(source: str, reference: str, won: int, **amounts: str) -> dict[str, Any]:
    """An unmatched reference as attribution lists it (`amounts`: currency=amount)."""
    return {
        **{"source": source, "partner_ref": reference, "deals": won + 1, "open": 1, "won": won},
        "won_amounts": [{"currency": c, "amount": a} for c, a in amounts.items()],
        **{
            "latest_close_date": None,
            "latest_deals": [f"{source}:d1"],
            "proposed_partner_id": None,
        },
    }


class Attribution(QuietHandler):
    """Attribution's links (one proposed, with an awkward reference) and incentives' held
    credits (none) on one port; each confirmation's path as it arrived."""

    confirmed: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/crm-links":
            link = {"source": "salesforce", "external_id": AWKWARD, "partner_id": "p1"}
            self.send_json(200, [{**link, "status": "proposed", "proposed_by": "cm"}])
        elif path == "/crm-links/unmatched":
            self.send_json(200, [unmatched_reference("hubspot", AWKWARD, won=2)])
        else:
            self.send_json(200, [])

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Attribution.confirmed.append(f"{self.path} {body.decode()}")
        self.send_json(200, {"changed": True, "deals_settled": []})


@contextmanager
def links_console() -> Iterator[TestClient]:
    """A manager signed in to a portal in front of `Attribution` (its posts recorded anew)."""
    Attribution.confirmed = []
    with LocalServer(Attribution) as services:
        local = dict.fromkeys(("attribution", "incentives"), services.url)
        with signed_in(settings(local), MANAGER) as client:
            yield client


def test_a_link_is_confirmed_at_its_reference_however_it_is_spelt() -> None:
    with links_console() as client:
        shown = client.get("/console/crm-links")
        action = "/console/crm-links/salesforce/a%20b%3F%23%25x/confirm"
        assert f'action="{action}"' in shown.text, shown.text
        # the partner the page showed the link proposed for travels with the confirmation
        assert 'name="partner_id" value="p1"' in shown.text
        answer = client.post(action, data=form(client, partner_id="p1"))
    assert answer.status_code == 200, answer.text
    assert Attribution.confirmed == [
        '/crm-links/salesforce/a%20b%3F%23%25x/confirm {"partner_id":"p1"}'
    ]


def test_an_unmatched_reference_is_proposed_as_it_was_listed() -> None:
    with links_console() as client:
        shown = client.get("/console/crm-links")
        assert 'name="external_id" value="a b?#%x"' in shown.text, shown.text
        assert "3 deals, 2 won" in shown.text
        link = {"source": "hubspot", "external_id": AWKWARD, "partner_id": " p7 "}
        answer = client.post("/console/crm-links", data=form(client, **link))
    assert answer.status_code == 200, answer.text
    assert "Proposed: hubspot a b?#%x for p7" in answer.text
    proposed = {"source": "hubspot", "external_id": AWKWARD, "partner_id": "p7"}
    assert Attribution.confirmed == [f"/crm-links {json.dumps(proposed, separators=(',', ':'))}"]


class Unknowns(QuietHandler):
    """Attribution's won deal with no amount (its CRM cleared it) and incentives' credit held
    before amounts were bounded (its amount unreadable): both answer null amounts."""

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/crm-links/unmatched":
            self.send_json(200, [unmatched_reference("salesforce", "r1", won=1)])
        elif path == "/credits/held":
            held = {"credit_id": "c1", "partner_id": "p1", "deal_key": "salesforce:d2"}
            self.send_json(200, [{**held, "amount": None, "currency": "USD", "reason": "r"}])
        else:
            self.send_json(200, [])


def test_an_amount_no_service_knows_is_said_so_not_printed_as_none() -> None:
    with LocalServer(Unknowns) as services:
        local = dict.fromkeys(("attribution", "incentives"), services.url)
        with signed_in(settings(local), MANAGER) as client:
            shown = client.get("/console/crm-links")
    assert shown.status_code == 200, shown.text
    assert "no amount" in shown.text
    assert "amount unreadable" in shown.text
    assert "None" not in shown.text


class Recorder(QuietHandler):
    """A service that knows nothing (404 to everything) and keeps each request's path as it
    arrived."""

    seen: ClassVar[list[str]] = []

    def answer(self) -> None:
        Recorder.seen.append(f"{self.command} {self.path}")
        self.send_json(404, {"detail": "not found"})

    do_GET = do_POST = answer


@pytest.mark.parametrize(
    ("who", "method", "page", "arrived"),
    [
        ("partner", "GET", "/registrations/x%3Flimit%3D1", "GET /registrations/x%3Flimit%3D1"),
        ("partner", "GET", "/registrations/%2E%2E", "GET /registrations/%2E%2E/history"),
        (
            "partner",
            "POST",
            "/registrations/x%23/extension",
            "POST /registrations/x%23/extension",
        ),
        (
            "manager",
            "GET",
            "/console/registrations/x%3Flimit%3D1",
            "GET /registrations/x%3Flimit%3D1",
        ),
        (
            "manager",
            "POST",
            "/console/registrations/x%3Fapprove%3Dtrue%23/review",
            "POST /registrations/x%3Fapprove%3Dtrue%23/review?approve=true&note=approve",
        ),
        (
            "manager",
            "POST",
            "/console/applications/p%3Fx%23/decision",
            "POST /applications/p%3Fx%23/decision",
        ),
        (
            "manager",
            "POST",
            "/console/mdf/claims/c%20%25/decision",
            "POST /mdf/claims/c%20%25/decision",
        ),
    ],
)
def test_an_id_from_a_page_address_is_one_path_segment_at_the_service(
    who: str, method: str, page: str, arrived: str
) -> None:
    """Found from outside: /registrations/x%3Flimit%3D1 made deals answer its list query
    (`/registrations/x?limit=1`) and an extension of `x#` was posted to `/registrations/x`.
    Each id is now escaped into exactly one segment of the service's path."""
    Recorder.seen = []
    tokens = {"partner": PARTNER, "manager": MANAGER}
    with LocalServer(Recorder) as recorder:
        urls = dict.fromkeys(SERVICES, recorder.url)
        with signed_in(settings(urls), tokens[who]) as client:
            fields = form(client, decision="approve")
            answer = client.get(page) if method == "GET" else client.post(page, data=fields)
    assert answer.status_code == 404, answer.text
    assert arrived in Recorder.seen, Recorder.seen


def console_page(answering: type[QuietHandler], service: str, path: str) -> httpx.Response:
    """A console page for a manager, `service` played by a local server `answering`."""
    with (
        LocalServer(answering) as services,
        signed_in(settings({service: services.url}), MANAGER) as client,
    ):
        return client.get(path)


def application(partner_id: str, reason: str) -> dict[str, Any]:
    company = {"company_name": f"Company {partner_id}", "partner_type": "isv"}
    return {
        "partner_id": partner_id,
        **company,
        "domain": f"{partner_id}.example",
        "reason": reason,
    }


class Applications(QuietHandler):
    """Onboarding's applications by outcome (one of each), each query as it arrived."""

    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Applications.asked.append(urlsplit(self.path).query)
        outcome = parse_qs(urlsplit(self.path).query)["outcome"][0]
        self.send_json(200, [application(f"p-{outcome}", f"scored {outcome}")])


def test_only_applications_a_manager_can_decide_carry_a_decision_form() -> None:
    """Found in the code: the page asked for every outcome and gave the scoring's rejections
    (as many as onboarding kept, the oldest first) a decision form that could only answer 409;
    a flood of weak applications through the public intake filled the page."""
    Applications.asked = []
    page = console_page(Applications, "onboarding", "/console/applications")
    assert page.status_code == 200, page.text
    for waiting in ("p-review", "p-approve"):
        assert f'action="/console/applications/{waiting}/decision"' in page.text
    assert 'id="rejected-p-reject"' in page.text
    assert "scored reject" in page.text
    assert "/console/applications/p-reject/decision" not in page.text
    asked = sorted(Applications.asked)
    assert asked == [
        "outcome=approve&limit=500",
        "outcome=reject&limit=20",
        "outcome=review&limit=500",
    ]


class Reviews(QuietHandler):
    """Deals with one registration waiting for review (its queue) behind 500 newer ones that do
    not wait (the newest registrations), each query as it arrived."""

    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Reviews.asked.append(self.path)
        if urlsplit(self.path).path == "/admin/reviews":
            waiting = {"registration_id": "reg-old", "status": "pending_review"}
            self.send_json(200, [{**waiting, "customer_name": "Old Co", "partner_id": "p1"}])
        else:
            newer = [{"registration_id": f"reg-{i}", "status": "approved"} for i in range(500)]
            self.send_json(200, newer)


def test_the_review_queue_is_deals_queue_not_the_newest_registrations_filtered() -> None:
    """Found in the code: the console read the newest 500 registrations and kept those pending
    review, so a registration waiting behind 500 newer ones was never shown to a manager."""
    Reviews.asked = []
    page = console_page(Reviews, "deals", "/console")
    assert page.status_code == 200, page.text
    assert "/console/registrations/reg-old" in page.text
    assert Reviews.asked == ["/admin/reviews?limit=500"]


class WaitingMdf(QuietHandler):
    """Incentives' claims and budgets (the waiting queue asked for: one of each), and the
    fund of their partner; each listing's query as it arrived."""

    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        path, query = urlsplit(self.path).path, urlsplit(self.path).query
        request = {"partner_id": "p1", "amount": "5.00", "currency": "USD", "status": "requested"}
        request["requested_at"] = "2026-12-01T00:00:00+00:00"
        if path == "/mdf/claims":
            WaitingMdf.asked.append(f"claims {query}")
            plain = {**request, "claim_id": "c-old", "description": "Webinar"}
            budgeted = {**plain, "claim_id": "c-budget", "preapproval_id": "b-approved"}
            self.send_json(200, [plain, budgeted])
        elif path == "/mdf/preapprovals":
            WaitingMdf.asked.append(f"budgets {query}")
            self.send_json(200, [{**request, "preapproval_id": "b-old", "description": "Expo"}])
        else:
            self.send_json(200, {"available": "5.00", "ledger_balance": "5.00", "reserved": "0"})


def test_the_mdf_queues_are_the_waiting_requests_oldest_first() -> None:
    """Found in the code: the page read the newest 500 claims and budgets of every status and
    kept the requested ones, so one waiting behind 500 newer ones was never shown."""
    WaitingMdf.asked = []
    page = console_page(WaitingMdf, "incentives", "/console/mdf")
    assert page.status_code == 200, page.text
    assert "/console/mdf/claims/c-old/decision" in page.text
    assert "Expo" in page.text
    waiting = "status=requested&order=oldest&limit=500"
    assert sorted(WaitingMdf.asked) == [f"budgets {waiting}", f"claims {waiting}"]
    # A claim on an approved budget is paid from its reservation, not the fund's available
    # money: the page says so instead of a misleading "fund available" (found in review).
    claimed = page.text.split('id="claim-c-budget"', 1)[1].split("</li>", 1)[0]
    assert "Against approved budget <bdi>b-approved</bdi>" in claimed
    assert "fund-available" not in claimed
    plain = page.text.split('id="claim-c-old"', 1)[1].split("</li>", 1)[0]
    assert 'class="fund-available">5.00<' in plain
