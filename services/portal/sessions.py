"""Signed-in sessions and CSRF protection.

A session is the platform token itself, kept in an HttpOnly, SameSite=Strict cookie (Secure
outside development mode) that expires with the token: the portal holds no session store, every
request verifies the token with the platform's public keys, and every call to a service is made
with it (the services decide what the person may see). Forms carry a CSRF token (double
submit: a random value in its own HttpOnly cookie, echoed in a hidden field or, for htmx, the
`X-CSRF-Token` header); SameSite=Strict already keeps other sites' posts from carrying either
cookie, the token is the second lock.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from starlette.responses import Response

from services.portal.settings import BACKENDS, PortalSettings
from shared.identity import Caller, InvalidToken, TokenVerifier

SESSION_COOKIE = "pollinate_session"
CSRF_COOKIE = "pollinate_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class SignInRequired(Exception):
    """No valid session: pages answer with the sign-in page (303), fragments with 401."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CsrfRefused(Exception):
    pass


@dataclass(frozen=True)
class Session:
    caller: Caller
    token: str
    expires_at: datetime
    csrf: str


class Verifier:
    """A token is good for the portal when it is good for every service its pages call."""

    def __init__(self, settings: PortalSettings) -> None:
        self._verifiers = [
            TokenVerifier.from_json(service, settings.token_verification_keys)
            for service in BACKENDS
        ]

    def verify(self, token: str) -> tuple[Caller, datetime]:
        caller = None
        for verifier in self._verifiers:
            caller = verifier.verify(token)
        if caller is None or caller.expires_at is None:  # no verifier, or no expiry read
            raise InvalidToken("invalid token")
        return caller, caller.expires_at


def csrf_of(request: Request) -> str:
    """The request's CSRF value (made on first sight; `remember_csrf` sets its cookie)."""
    existing = request.cookies.get(CSRF_COOKIE, "")
    if len(existing) == 43 and existing.replace("-", "").replace("_", "").isalnum():
        return existing
    made: str = getattr(request.state, "csrf", "") or secrets.token_urlsafe(32)
    request.state.csrf = made
    return made


def remember_csrf(request: Request, response: Response, secure: bool) -> None:
    if request.cookies.get(CSRF_COOKIE) != csrf_of(request):
        response.set_cookie(
            CSRF_COOKIE, csrf_of(request), httponly=True, samesite="strict", secure=secure
        )


async def check_csrf(request: Request) -> None:
    """Every state-changing request carries the CSRF value of its own cookie."""
    expected = request.cookies.get(CSRF_COOKIE, "")
    given = request.headers.get(CSRF_HEADER, "")
    if not given:
        form = await request.form()
        value = form.get(CSRF_FIELD, "")
        given = value if isinstance(value, str) else ""
    if not expected or not hmac.compare_digest(expected.encode(), given.encode()):
        raise CsrfRefused()


def session_of(request: Request) -> Session | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    verifier: Verifier = request.app.state.verifier
    try:
        caller, expires_at = verifier.verify(token)
    except InvalidToken:
        return None
    return Session(caller, token, expires_at, csrf_of(request))


async def signed_in(request: Request) -> Session:
    session = session_of(request)
    if session is None:
        reason = "session expired" if request.cookies.get(SESSION_COOKIE) else "sign in first"
        raise SignInRequired(reason)
    return session


SessionDep = Annotated[Session, Depends(signed_in)]
CsrfDep = Depends(check_csrf)


def start_session(response: Response, token: str, expires_at: datetime, secure: bool) -> None:
    max_age = max(int((expires_at - datetime.now(UTC)).total_seconds()), 0)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        expires=expires_at,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )


def end_session(response: Response, secure: bool) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=secure
    )
