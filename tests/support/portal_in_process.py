"""The portal in process for tests (a FastAPI test client, no portal process): its settings
calling services where a test says, a client signed in with a token, and one in front of a
local server answering as every service."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler

from fastapi.testclient import TestClient

from services.portal.app import create_app
from services.portal.settings import PortalSettings
from shared.topics import SERVICES
from tests.support.local_http import LocalServer
from tests.support.tokens import VERIFICATION_KEYS


def portal_settings(urls: Mapping[str, str]) -> PortalSettings:
    """The portal's settings in development mode (its cookies sent over plain HTTP), checking
    the tests' tokens and calling each service `urls` names (service -> URL) there."""
    return PortalSettings(
        token_verification_keys=VERIFICATION_KEYS,
        development_mode=True,
        **{f"portal_{service}_url": url for service, url in urls.items()},
    )


def sign_in(client: TestClient, value: str) -> None:
    """Sign the client in with the token `value`, through the sign-in form as a person does."""
    client.get("/sign-in")
    csrf = client.cookies.get("pollinate_csrf")
    answer = client.post("/sign-in", data={"token": value, "csrf_token": csrf})
    assert answer.status_code == 303, answer.text


@contextmanager
def signed_in(settings: PortalSettings, value: str) -> Iterator[TestClient]:
    """A test client of the portal under `settings`, signed in with the token `value` (it does
    not follow redirects: a test reads where the portal sends it)."""
    with TestClient(create_app(settings), follow_redirects=False) as client:
        sign_in(client, value)
        yield client


@contextmanager
def signed_in_before(services: type[BaseHTTPRequestHandler], value: str) -> Iterator[TestClient]:
    """A portal client signed in with the token `value`, calling a local server whose handler
    `services` answers as every service."""
    with (
        LocalServer(services) as server,
        signed_in(portal_settings(dict.fromkeys(SERVICES, server.url)), value) as client,
    ):
        yield client
