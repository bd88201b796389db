"""Hostile inputs against the five services as real processes: a table of the malformed
classes (each answered with its exact 4xx, never 500), a fuzz of every route generated from the
committed OpenAPI documents (no 5xx, only documented statuses), and a look-alike customer name
that still conflicts."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from tests.support.crm import HUBSPOT_PORTAL, CrmSenders
from tests.support.deals import approved, fresh_partners, partners_onboarded, register
from tests.support.fuzz import Operation, operations, requests, unsafe_for_shared_state
from tests.support.infra import Infra
from tests.support.onboarding import strong_application
from tests.support.processes import ADMIN, auth, service_processes
from tests.support.tokens import FINANCE, partner_admin

pytestmark = pytest.mark.integration

PARTNER = "p-hostile"
EXAMPLES = 40  # per route: with 51 routes about 2000 requests, in well under a minute


@pytest.fixture(scope="module")
async def urls(infra: Infra, deals_instances: list[str]) -> AsyncIterator[dict[str, str]]:
    """The six services (deals: the package's instances), and a partner deals knows."""
    async with AsyncExitStack() as stack:
        found = {"deals": deals_instances[0]}
        for service in ("onboarding", "attribution", "incentives", "notifications", "programme"):
            [found[service]] = await stack.enter_async_context(service_processes(infra, service))
        await partners_onboarded(infra, PARTNER)
        yield found


def _registration(**overrides: Any) -> dict[str, Any]:
    body = {
        "customer_name": f"Hostile {uuid.uuid4().hex[:8]} Ltd",
        "products": ["data"],
        "amount": "1000.00",
        "currency": "EUR",
    }
    return {**body, **overrides}


def _raw_registration(fragment: str) -> bytes:
    """A registration body with one field written as raw JSON text (NaN, 1e400, escapes)."""
    return (
        '{"customer_name": "Raw Ltd", "products": ["data"], "currency": "EUR", ' + fragment + "}"
    ).encode()


def _hubspot(**event: Any) -> list[dict[str, Any]]:
    base = {
        "eventId": 1,
        "portalId": HUBSPOT_PORTAL,
        "subscriptionType": "deal.creation",
        "objectId": 42,
        "occurredAt": 1763803500000,
    }
    return [{**base, **event}]


def _salesforce(**header: Any) -> dict[str, Any]:
    base = {
        "entityName": "Opportunity",
        "recordIds": ["006A"],
        "changeType": "CREATE",
        "commitTimestamp": 1763800000000,
    }
    return {"payload": {"ChangeEventHeader": {**base, **header}, "Name": "Deal"}}


def _microsoft(**fields: Any) -> dict[str, Any]:
    base = {
        "Id": "ref-1",
        "CustomerProfile": {"Name": "Fabrikam"},
        "Status": "Active",
        "Substatus": "Accepted",
        "UpdatedDateTime": "2026-11-20T10:00:00Z",
    }
    return {**base, **fields}


def _ace(**fields: Any) -> dict[str, Any]:
    base = {
        "Id": "O1",
        "Customer": {"Account": {"CompanyName": "Contoso"}},
        "LifeCycle": {"Stage": "Qualified"},
        "LastModifiedDate": "2026-11-20T10:00:00Z",
    }
    return {**base, **fields}


PARTNER_AUTH = auth(PARTNER)
J = json.dumps
Case = tuple[str, str, str, dict[str, Any], bytes | None, int, str]


def _as_body(body: Any) -> bytes:
    """Bytes as they are (raw JSON text, malformed on purpose); anything else as its JSON."""
    return body if isinstance(body, bytes) else J(body).encode()


def _registering(body: Any, status: int, detail: str) -> Case:
    """The partner's POST /registrations at deals with `body`."""
    return ("deals", "POST", "/registrations", PARTNER_AUTH, _as_body(body), status, detail)


def _crm_delivery(path: str, body: Any, status: int, detail: str) -> Case:
    """A CRM's delivery to deals' webhook `path` (signed as that CRM signs it when sent)."""
    return ("deals", "POST", path, {}, _as_body(body), status, detail)


def _applying(application: dict[str, Any], status: int, detail: str) -> Case:
    """An application to onboarding's public POST /applications."""
    return ("onboarding", "POST", "/applications", {}, _as_body(application), status, detail)


def _touchpoint(status: int, detail: str, **fields: Any) -> Case:
    """The partner's POST /touchpoints at attribution: a CRM referral, `fields` changed."""
    body = {
        "deal_key": "hubspot:1",
        "kind": "referral",
        "occurred_at": "2026-01-01T00:00:00Z",
        "source": "crm",
    }
    return (
        "attribution",
        "POST",
        "/touchpoints",
        PARTNER_AUTH,
        J(body | fields).encode(),
        status,
        detail,
    )


# (service, method, path, headers, body, status, a part of the answer)
CASES: list[Case] = [
    # strings: NUL, lone surrogates, controls, empty after normalisation, overlong
    _registering(_registration(customer_name="Ac\x00me"), 422, "NUL"),
    _registering(
        _raw_registration('"amount": "1", "customer_name": "Ac\\ud800me"'), 422, "customer_name"
    ),
    _registering(_registration(customer_name="Ac\x1bme"), 422, "control characters"),
    _registering(_registration(customer_name="  ...  "), 422, "letter or a digit"),
    _registering(_registration(products=["x\x00"]), 422, "NUL"),
    _registering(_registration(products=["x"] * 51), 422, "products"),
    # ISO codes, minor units, amounts that overflow the column, non-finite numbers
    _registering(_registration(currency="ABC"), 422, "ISO 4217"),
    _registering(_registration(currency="XAU"), 422, "ISO 4217"),
    _registering(_registration(customer_country="ZZ"), 422, "ISO 3166-1"),
    _registering(_registration(currency="JPY", amount="10.5"), 422, "at most 0 allowed in JPY"),
    _registering(_registration(amount="1e20"), 422, "amount"),
    _registering(_raw_registration('"amount": 1e400'), 422, "amount"),
    _registering(_raw_registration('"amount": NaN'), 422, "amount"),
    _registering(_raw_registration('"amount": 10, "products": "abc"'), 422, "products"),
    # JSON nested tens of thousands deep, a URL with NUL, a non-ASCII bearer token
    _registering(b"[" * 50_000 + b"]" * 50_000, 400, "nested deeper"),
    ("deals", "GET", "/registrations/a%00b", PARTNER_AUTH, None, 400, "control characters"),
    (
        "deals",
        "GET",
        "/registrations",
        {"Authorization": "Bearer t\u00f6ken".encode()},
        None,
        401,
        "invalid token",
    ),
    (
        "deals",
        "POST",
        "/admin/expiry/run?as_of=0001-01-01T00:00:00%2B05:00",
        ADMIN,
        None,
        422,
        "between 1900 and 9999",
    ),
    # CRM deliveries: wrong JSON types, overflowing epochs, year 1, bad bodies. A batch source
    # answers each item (Salesforce's relay 207, HubSpot 202: it never retries a 4xx).
    _crm_delivery(
        "/crm/salesforce",
        _salesforce(recordIds="abc"),
        207,
        "recordIds: expected an array, got str",
    ),
    _crm_delivery(
        "/crm/salesforce", _salesforce(commitTimestamp=10**20), 207, "between 1900 and 9999"
    ),
    _crm_delivery(
        "/crm/salesforce", _salesforce(changeType=["CREATE"]), 207, "expected a string, got list"
    ),
    # found in review: an event asking for a resync bypassed the bound on a source's time, and
    # a snapshot stamped 2100 made every later change of the deal stale
    _crm_delivery(
        "/crm/salesforce",
        _salesforce(changeType="GAP_UPDATE", commitTimestamp=4102444800000),
        207,
        "more than 5 minutes in the future",
    ),
    _crm_delivery(
        "/crm/hubspot",
        _hubspot(
            subscriptionType="deal.associationChange",
            associationType="DEAL_TO_COMPANY",
            fromObjectId=42,
            occurredAt=4102444800000,
        ),
        202,
        "[0].occurredAt is more than 5 minutes in the future",
    ),
    _crm_delivery("/crm/salesforce", {"payload": []}, 207, "payload: expected an object, got list"),
    _crm_delivery(
        "/crm/hubspot",
        _hubspot(objectId={"id": 1}),
        202,
        "[0].objectId: expected a string, got dict",
    ),
    _crm_delivery("/crm/hubspot", [[1]], 202, "[0]: expected an object, got list"),
    _crm_delivery("/crm/hubspot", _hubspot(subscriptionType=5), 202, "expected a string, got int"),
    _crm_delivery(
        "/crm/hubspot",
        _hubspot(
            subscriptionType="deal.propertyChange", propertyName="closedate", propertyValue=None
        ),
        202,
        "expected epoch milliseconds, got null",
    ),
    _crm_delivery(
        "/crm/hubspot",
        _hubspot(
            subscriptionType="deal.propertyChange", propertyName="amount", propertyValue="1e30"
        ),
        202,
        "must be below",
    ),
    _crm_delivery(
        "/crm/hubspot",
        _hubspot(
            subscriptionType="deal.propertyChange",
            propertyName="deal_currency_code",
            propertyValue="ABC",
        ),
        202,
        "ISO 4217",
    ),
    _crm_delivery(
        "/crm/microsoft",
        _microsoft(UpdatedDateTime="0001-01-01T00:00:00+05:00"),
        422,
        "between 1900 and 9999",
    ),
    _crm_delivery(
        "/crm/microsoft", _microsoft(UpdatedDateTime=None), 422, "UpdatedDateTime is required"
    ),
    _crm_delivery(
        "/crm/microsoft",
        _microsoft(Details={"ClosingDateTime": 20261231}),
        422,
        "expected an ISO-8601 date, got int",
    ),
    _crm_delivery(
        "/crm/microsoft", _microsoft(CustomerProfile={"Name": "Fab\x00rikam"}), 422, "NUL"
    ),
    _crm_delivery(
        "/crm/aws-ace",
        _ace(Customer=[]),
        422,
        "opportunity.Customer: expected an object, got list",
    ),
    _crm_delivery(
        "/crm/aws-ace",
        _ace(Project={"ExpectedCustomerSpend": "lots"}),
        422,
        "expected an array, got str",
    ),
    _crm_delivery("/crm/aws-ace", _ace(PrimaryNeedsFromAws=[7]), 422, "expected a string, got int"),
    _crm_delivery("/crm/aws-ace", b'{"Id": "O1", "x": NaN}', 400, "NaN is not a JSON number"),
    _crm_delivery("/crm/aws-ace", b'{"Id": "\xff"}', 400, "malformed JSON"),
    _crm_delivery("/crm/aws-ace", b"[" * 50_000, 400, "nested deeper"),
    # onboarding
    _applying(strong_application("nul.example", company_name="Con\x00toso"), 422, "NUL"),
    # found from outside: it showed "(isv, moc.tfosorcim)" as "(microsoft.com ,vsi)"
    _applying(
        strong_application("bidi.example", company_name="Northwind Traders \u202e"),
        422,
        "bidirectional embedding, override or isolate controls (U+202E)",
    ),
    _applying(strong_application("cc.example", regions=["ZZ"]), 422, "ISO 3166-1"),
    _applying(
        strong_application(
            "mail.example", contacts=[{"name": "Ada", "email": "a\x01@mail.example"}]
        ),
        422,
        "control characters",
    ),
    _applying(strong_application("rev.example", annual_revenue="1e30"), 422, "annual_revenue"),
    # found in review: pydantic took `true` for 1 in an integer field (a survey answer of 1)
    _applying(strong_application("bool.example", years_in_business=True), 422, "valid integer"),
    _applying(strong_application("text.example", certified_staff="5"), 422, "valid integer"),
    (
        "onboarding",
        "POST",
        "/admin/requalification/run",
        ADMIN,
        J({"as_of": "0001-01-01T00:00:00+01:00"}).encode(),
        422,
        "between 1900 and 9999",
    ),
    (
        "onboarding",
        "GET",
        "/partners",
        {"Authorization": "Bearer \u00e9".encode("latin-1")},
        None,
        401,
        "invalid token",
    ),
    # attribution
    _touchpoint(422, "between 1900 and 9999", occurred_at="0001-01-01T00:00:00+05:00"),
    _touchpoint(422, "NUL", deal_key="hubspot:\x00"),
    (
        "attribution",
        "GET",
        f"/partners/{PARTNER}/revenue?since=0001-01-01",
        PARTNER_AUTH,
        None,
        422,
        "between 1900 and 9999",
    ),
    # references to things that cannot exist
    _touchpoint(422, "deal_key", deal_key="nosuchcrm:1"),
    _registering(_registration(crm_deal_key="ledger:1"), 422, "crm_deal_key"),
    # found from outside in session 24: each was a 2xx
    (
        "deals",
        "GET",
        "/registrations?limit=0",
        PARTNER_AUTH,
        None,
        422,
        "greater than or equal to 1",
    ),
    ("deals", "GET", "/admin/reviews?limit=100000000000000000000000", ADMIN, None, 422, "limit"),
    (
        "deals",
        "POST",
        "/registrations?partner_id=",
        ADMIN,
        J(_registration()).encode(),
        422,
        '"loc": ["query", "partner_id"], "msg": "String should have at least 1 character"',
    ),
    # found in review: a partner id of any text (bidi controls, 3,000 characters) was stored
    (
        "deals",
        "POST",
        "/registrations?partner_id=%E2%80%AEp1",
        ADMIN,
        J(_registration()).encode(),
        422,
        "bidirectional",
    ),
    _registering(
        _registration(customer_domain="not a domain"),
        422,
        "customer_domain must be a domain name",
    ),
    _registering(_registration(amount="1_000"), 422, "ASCII digits"),
    # found in review (session 35): each was a 500
    (
        "deals",
        "POST",
        "/admin/policy/versions",
        ADMIN,
        J({"document": {"version": "v-nul"}, "note": "a\x00b"}).encode(),
        422,
        "NUL",
    ),
    (
        "deals",
        "POST",
        "/admin/policy/versions",
        ADMIN,
        J({"document": {"version": "v-key", "review_days": {"\x00": 1}}}).encode(),
        422,
        "NUL",
    ),
    (
        "deals",
        "POST",
        "/admin/policy/validate",
        ADMIN,
        b'{"document": {"version": "v-key", "review_days": {"\\ud800": 1}}}',
        422,
        "lone surrogate",
    ),
    (
        "deals",
        "POST",
        "/registrations/reg-any/review?approve=true&note=%E2%80%AEok",
        ADMIN,
        None,
        422,
        "bidirectional",
    ),
    (
        "onboarding",
        "POST",
        "/admin/partner-tokens/p-any?user=%E2%80%AEx",
        ADMIN,
        None,
        422,
        "bidirectional embedding, override or isolate controls (U+202E)",
    ),
    # incentives
    (
        "incentives",
        "POST",
        "/what-if",
        PARTNER_AUTH,
        J({"amount": "1000", "tier": "diamond"}).encode(),
        422,
        "not one of the programs' tiers",
    ),
    ("incentives", "POST", "/what-if", PARTNER_AUTH, b'{"amount": 1e400}', 422, "amount"),
    (
        "incentives",
        "POST",
        "/what-if",
        PARTNER_AUTH,
        J({"amount": "10", "close_date": "0001-01-01"}).encode(),
        422,
        "between 1900 and 9999",
    ),
    (
        "incentives",
        "POST",
        "/mdf/claims",
        PARTNER_AUTH,
        b'{"amount": "10", "description": "a\\udc00bc", "proof_reference": "x"}',
        422,
        "description",
    ),
    (
        "incentives",
        "POST",
        f"/partners/{PARTNER}/payouts",
        FINANCE,
        J({"reference": "r\x00"}).encode(),
        422,
        "NUL",
    ),
    (  # found from outside: the endpoint's address showed reversed on the webhooks page
        "notifications",
        "POST",
        f"/partners/{PARTNER}/webhooks",
        partner_admin(PARTNER),
        J({"url": "https://hooks.example/\u202egpj.exe"}).encode(),
        422,
        "bidirectional embedding",
    ),
]


# Every class on every service: (route, headers, a valid body, its string field, its number field)
EDGES: dict[str, tuple[str, dict[str, Any], dict[str, Any], str, str]] = {
    "onboarding": (
        "/applications",
        {},
        strong_application("classes.example"),
        "company_name",
        "annual_revenue",
    ),
    "deals": ("/registrations", PARTNER_AUTH, _registration(), "customer_name", "amount"),
    "attribution": (
        "/touchpoints",
        PARTNER_AUTH,
        {
            "deal_key": "salesforce:classes",
            "kind": "referral",
            "occurred_at": "2026-01-01T00:00:00Z",
            "source": "crm",
        },
        "source",
        "occurred_at",
    ),
    "incentives": ("/what-if", PARTNER_AUTH, {"amount": "100.00"}, "customer_name", "amount"),
}
# (class, how the body's string field is written, or its number field, status, answer part)
CLASSES: list[tuple[str, str, str, int, str]] = [
    ("nul", "string", '"Acme\\u0000 Corp"', 422, "NUL"),
    ("lone-surrogate", "string", '"Acme \\ud800 Corp"', 422, "string"),
    ("control", "string", '"Acme\\u0007 Corp"', 422, "control characters"),
    ("c1-control", "string", '"Acme\\u009b Corp"', 422, "control characters"),
    ("bidi-override", "string", '"Acme \\u202e Corp"', 422, "bidirectional embedding"),
    ("bidi-isolate", "string", '"Acme \\u2067 Corp"', 422, "bidirectional embedding"),
    ("wrong-type", "string", "[1, 2]", 422, "string"),
    ("overlong", "string", '"' + "x" * 5000 + '"', 422, "at most"),
    ("infinity", "number", "1e400", 422, ""),
    ("nan", "number", "NaN", 422, ""),
    ("null", "number", "null", 422, ""),
]
for _service, (_path, _headers, _body, _text, _number) in EDGES.items():
    for _name, _where, _raw, _status, _detail in CLASSES:
        _field = _text if _where == "string" else _number
        _fields = [f"{J(k)}: {J(v)}" for k, v in _body.items() if k != _field]
        _content = ("{" + ", ".join([*_fields, f"{J(_field)}: {_raw}"]) + "}").encode()
        CASES.append((_service, "POST", _path, _headers, _content, _status, _detail or _field))
    CASES.append((_service, "POST", _path, _headers, b"[" * 40_000, 400, "nested deeper"))
    CASES.append((_service, "POST", _path, _headers, b"[]", 422, "body"))
    CASES.append((_service, "GET", "/metrics%00", {}, None, 400, "control characters"))
    # A path segment past any id the platform has reached its indexes (a 500 in notifications'
    # owner inbox, found in review): every service refuses it first.
    _long = "/partners/" + "x" * 513
    CASES.append((_service, "GET", _long, {}, None, 400, "a path segment must be at most 512"))
    # /applications is public: onboarding's bearer is checked on its partner list
    _secured = ("GET", "/partners") if _service == "onboarding" else ("POST", _path)
    _bad_token = {"Authorization": "Bearer \u00e4".encode()}
    CASES.append((_service, *_secured, _bad_token, b"{}", 401, "invalid token"))


@pytest.mark.parametrize(
    ("service", "method", "path", "headers", "body", "status", "detail"),
    CASES,
    ids=[f"{c[0]}-{c[2].split('?')[0]}-{i}" for i, c in enumerate(CASES)],
)
async def test_each_malformed_class_gets_its_exact_4xx(
    urls: dict[str, str],
    crm_senders: CrmSenders,
    service: str,
    method: str,
    path: str,
    headers: dict[str, Any],
    body: bytes | None,
    status: int,
    detail: str,
) -> None:
    if path.startswith("/crm/") and body is not None:  # signed: the body is what is wrong
        headers = crm_senders.headers(path, body)
    sent = {"content-type": "application/json", **headers} if body is not None else headers
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.request(
            method, f"{urls[service]}{path}", content=body, headers=sent
        )
    assert response.status_code == status, response.text[:500]
    answer = response.json()
    # A CRM batch answers each item: a refused one carries its reason.
    said = answer["detail"] if "detail" in answer else [i["reason"] for i in answer["items"]]
    assert detail in json.dumps(said, ensure_ascii=False)
    if "items" in answer:
        assert [item["outcome"] for item in answer["items"]] == ["refused"]


async def test_a_422_never_echoes_a_megabyte_back(urls: dict[str, str]) -> None:
    huge = "x" * 450_000  # twice: just under the body limit
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{urls['deals']}/registrations",
            json=_registration(customer_name=huge, currency=huge),
            headers=PARTNER_AUTH,
        )
    assert response.status_code == 422
    assert len(response.content) < 4000
    errors = response.json()["detail"]
    assert {tuple(error["loc"]) for error in errors} == {
        ("body", "customer_name"),
        ("body", "currency"),
    }
    assert all(len(error.get("input", "")) <= 70 for error in errors)


async def test_a_look_alike_customer_name_still_conflicts(
    infra: Infra, urls: dict[str, str]
) -> None:
    run, (first, second) = await fresh_partners(infra, "latin", "cyrillic")
    latin = f"Acme{run} Robotics"
    cyrillic = "\u0410\u0441me" + run + " Robotics"  # Cyrillic A and ES
    deals = urls["deals"]
    async with httpx.AsyncClient(timeout=30) as client:
        won = await approved(
            client, deals, first, _registration(customer_name=latin, customer_country="US")
        )
        dodged = await register(
            client, deals, second, _registration(customer_name=cyrillic, customer_country="US")
        )
        assert dodged.status_code == 201
        decision = dodged.json()
        assert decision["status"] == "rejected"
        assert decision["conflicts"][0]["matched_on"] == "name"
        # The partner is not told which registration it conflicts with; a channel manager is.
        stored = await client.get(
            f"{deals}/registrations/{decision['registration_id']}", headers=ADMIN
        )
    assert stored.json()["conflicts"][0]["reference"] == won["registration_id"]


async def test_an_amount_sent_as_a_json_number_is_stored_to_the_cent(
    infra: Infra, urls: dict[str, str]
) -> None:
    """Read as a double, 82261615611686.07 became 82261615611686.06: a cent off, and valid."""
    run, (holder,) = await fresh_partners(infra, "exact")
    body = {**_registration(customer_name=f"Exact{run} Holdings"), "amount": "AMOUNT"}
    raw = json.dumps(body).replace('"AMOUNT"', "82261615611686.07").encode()
    deals = urls["deals"]
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(
            f"{deals}/registrations",
            content=raw,
            headers={**auth(holder), "content-type": "application/json"},
        )
        assert answer.status_code == 201, answer.text
        stored = await client.get(
            f"{deals}/registrations/{answer.json()['registration_id']}", headers=ADMIN
        )
    assert Decimal(stored.json()["amount"]) == Decimal("82261615611686.07")


OPERATIONS = [
    op
    for service in (
        "onboarding",
        "deals",
        "attribution",
        "incentives",
        "notifications",
        "programme",
    )
    for op in operations(service)
]


@pytest.mark.parametrize("op", OPERATIONS, ids=str)
def test_fuzzed_requests_get_no_5xx_and_only_documented_statuses(
    urls: dict[str, str], crm_senders: CrmSenders, op: Operation
) -> None:
    tokens: list[dict[str, Any]] = [
        {},
        PARTNER_AUTH,
        {"Authorization": "Bearer \u00fcber".encode()},
        {"Authorization": "Bearer partner.x.y"},
    ]
    if not unsafe_for_shared_state(op):
        tokens += [ADMIN, FINANCE]
    started = time.monotonic()
    with httpx.Client(timeout=30) as client:

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(request=requests(op, urls[op.service], tokens, crm_senders.headers))
        def check(request: Any) -> None:
            with client.stream(
                request.method, request.url, content=request.content, headers=request.headers
            ) as response:
                # A live stream admitted never ends: its status is the answer.
                if response.headers.get("content-type", "").startswith("text/event-stream"):
                    assert response.status_code == 200
                else:
                    response.read()
            sent = (request.content or b"")[:300]
            assert response.status_code < 500, f"{request.url} {sent!r} -> {response.text[:300]}"
            assert response.status_code in op.documented, (
                f"{request.url} {sent!r} -> {response.status_code} {response.text[:300]}"
            )

        check()
    assert time.monotonic() - started < 60
