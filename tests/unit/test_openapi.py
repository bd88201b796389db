"""Each service's HTTP API is described without infrastructure, committed, and complete: every
route declares its response model and the bearer scheme is declared for /docs."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from shared.http import ExactJsonRoute
from shared.openapi import build_document, definition_of, document_path, render, service_names
from shared.service import create_app
from shared.settings import ServiceSettings

SERVICES = service_names()


def app_of(service: str) -> Any:
    return create_app(definition_of(service), ServiceSettings(service_name=service), start=False)


def api_routes(service: str) -> list[APIRoute]:
    """Every API route of the service's app. FastAPI keeps an included router as one entry
    that points at the router (its routes are not copied into the app's list since 0.16x):
    reading only `app.routes` saw the docs pages and none of the service's routes."""
    found: list[APIRoute] = []
    pending: list[Any] = list(app_of(service).routes)
    while pending:
        route = pending.pop()
        included = getattr(route, "original_router", None)
        if included is not None:
            pending.extend(included.routes)
        elif isinstance(route, APIRoute):
            found.append(route)
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_the_route_walk_reaches_the_service_routes(service: str) -> None:
    assert len([r for r in api_routes(service) if r.include_in_schema]) >= 8


def test_every_service_is_described() -> None:
    assert SERVICES == [
        "attribution",
        "deals",
        "incentives",
        "notifications",
        "onboarding",
        "programme",
    ]


@pytest.mark.parametrize("service", SERVICES)
def test_the_committed_document_matches_the_code(service: str) -> None:
    path = document_path(service)
    assert path.exists(), f"{path} is missing: run `make contracts`"
    assert path.read_text() == render(build_document(service)), (
        f"{path} is out of date: run `make contracts`"
    )


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_declares_a_pydantic_response_model(service: str) -> None:
    """Every JSON answer is a model; not the Prometheus text, the live streams, nor the xAPI
    statement resource, whose shapes are the xAPI specification's (an array of statement ids;
    a statement as stored, free JSON)."""
    untyped = [
        f"{sorted(route.methods)} {route.path}"
        for route in api_routes(service)
        if route.include_in_schema
        and not _is_model(route.response_model)
        and route.status_code != 204
        and not _answers_other_than_json(route)
        and route.path != "/xapi/statements"
    ]
    assert untyped == []


def _answers_other_than_json(route: APIRoute) -> bool:
    answer = route.response_class
    return isinstance(answer, type) and not issubclass(answer, JSONResponse)


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_with_a_body_reads_json_numbers_exactly(service: str) -> None:
    """A router made with `APIRouter()` instead of `shared.http.api_router()` reads an amount
    sent as a JSON number as a double (a cent off from about 7 x 10^13)."""
    inexact = [
        f"{sorted(route.methods)} {route.path}"
        for route in api_routes(service)
        if route.body_field is not None and not isinstance(route, ExactJsonRoute)
    ]
    assert inexact == []


def _is_model(annotation: Any) -> bool:
    from pydantic import BaseModel

    inner = getattr(annotation, "__args__", None)
    if inner:  # list[Model]
        return all(_is_model(arg) for arg in inner)
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


@pytest.mark.parametrize("service", SERVICES)
def test_the_bearer_scheme_is_declared_for_authorize(service: str) -> None:
    document = build_document(service)
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearer"]["description"],
    }


@pytest.mark.parametrize("service", SERVICES)
async def test_docs_and_redoc_are_served_from_the_service_itself(service: str) -> None:
    transport = httpx.ASGITransport(app=app_of(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        for page in ("/docs", "/redoc"):
            html = (await client.get(page)).text
            assert "cdn." not in html
            assert "https://" not in html.replace("https://fastapi.tiangolo.com", "")
            assets = [
                part.split('"')[0]
                for part in html.split('src="')[1:] + html.split('href="')[1:]
                if part.startswith("/")
            ]
            assert assets, f"{page} loads nothing"
            for asset in assets:
                assert (await client.get(asset)).status_code == 200, asset


@pytest.mark.parametrize(
    ("service", "path", "codes"),
    [
        ("attribution", "/touchpoints", {"200", "201"}),
        ("onboarding", "/partners/{partner_id}/checklist/{item}", {"200", "202"}),
        ("onboarding", "/partners/{partner_id}/certifications", {"200", "201"}),
        ("onboarding", "/partners/{partner_id}/people", {"200", "201"}),
        ("onboarding", "/resources/{resource_id}/engagements", {"200", "201"}),
    ],
)
def test_a_repeat_or_an_accepted_answer_is_documented(
    service: str, path: str, codes: set[str]
) -> None:
    """Found in review: these answer a repeat 200 (or submitted evidence 202) beside their
    usual status, and the documents said only the usual one, so a generated client took the
    answer to a retry for an unexpected one."""
    answers = build_document(service)["paths"][path]["post"]["responses"]
    assert codes <= set(answers)


@pytest.mark.parametrize("service", SERVICES)
def test_a_refusal_is_documented_in_the_shape_it_is_sent(service: str) -> None:
    """A 422 is the platform's message (a string) or pydantic's list, and a body that is no
    JSON 400 or 415: found in review, the documents gave 422 only as FastAPI's list."""
    document = build_document(service)
    for operations in document["paths"].values():
        for operation in operations.values():
            answers = operation["responses"]
            assert answers["422"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/UnprocessableOut"
            }
            assert {"400", "415"} <= set(answers)
