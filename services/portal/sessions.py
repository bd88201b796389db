"""Signed-in sessions and CSRF protection.

A session is the platform token itself, kept in an HttpOnly, SameSite=Strict cookie (Secure
outside development mode) for the browser's session: the portal holds no session store, every
request verifies the token with the platform's public keys, and every call to a service is made
with it (the services decide what the person may see). A second cookie marks when the session
was last used, bound to it by an HMAC: a session idle past `PORTAL_SESSION_IDLE_MINUTES` is
over.

A form post passes three locks. SameSite=Strict keeps other sites' posts from carrying either
cookie. Its Origin (or, without one, its Referer) must be the portal's own. And it carries a
CSRF value (a hidden field or, for htmx, the `X-CSRF-Token` header): a random value kept in its
own HttpOnly cookie, which, once a person is signed in, forms carry bound to the session (an
HMAC of it keyed by the session's token), so a cookie and field planted together (a sibling
domain can set cookies) pass only without a session, that is on the sign-in form alone.
Outside development mode both cookies carry the `__Host-` prefix: a browser keeps such a cookie
only when it is Secure, for the path `/` and without a Domain, so no sibling subdomain can plant
or overwrite one (a planted session would sign a person in as someone else).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from starlette.responses import Response

from services.portal.settings import BACKENDS, PortalSettings
from shared.identity import Caller, InvalidToken, TokenVerifier

SESSION_COOKIE = "pollinate_session"
SEEN_COOKIE = "pollinate_seen"  # when the session was last used, bound to it
CSRF_COOKIE = "pollinate_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def cookie_name(name: str, secure: bool) -> str:
    """The cookie's name as set and read: `__Host-` prefixed where cookies are Secure."""
    return f"__Host-{name}" if secure else name


def _cookie(request: Request, name: str) -> str | None:
    settings: PortalSettings = request.app.state.settings
    return request.cookies.get(cookie_name(name, not settings.development_mode))


class SignInRequired(Exception):
    """No valid session: pages answer with the sign-in page (303), fragments with 401."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CsrfRefused(Exception):
    """A state-changing request this portal's own page did not send: 403 saying why."""

    def __init__(
        self,
        why: str = "the form was stale or not sent by this portal: reload the page and try again",
    ) -> None:
        super().__init__(why)
        self.why = why


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
    existing = _cookie(request, CSRF_COOKIE) or ""
    if len(existing) == 43 and existing.replace("-", "").replace("_", "").isalnum():
        return existing
    made: str = getattr(request.state, "csrf", "") or secrets.token_urlsafe(32)
    request.state.csrf = made
    return made


def remember_csrf(request: Request, response: Response, secure: bool) -> None:
    if _cookie(request, CSRF_COOKIE) != csrf_of(request):
        response.set_cookie(
            cookie_name(CSRF_COOKIE, secure),
            csrf_of(request),
            httponly=True,
            samesite="strict",
            secure=secure,
            path="/",
        )


def bound_csrf(csrf: str, session_token: str | None) -> str:
    """The CSRF value a form carries: with a session, the CSRF cookie's value bound to it (an
    HMAC keyed by the session's token, which no script and no other site can read); without
    one, the cookie's value itself."""
    if not session_token:
        return csrf
    mac = hmac.new(session_token.encode(), b"pollinate-csrf:" + csrf.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def form_csrf(request: Request) -> str:
    """The CSRF value this request's page puts in its forms."""
    return bound_csrf(csrf_of(request), _cookie(request, SESSION_COOKIE))


def _origin_of(request: Request) -> str | None:
    """Where the browser says the request comes from: its Origin, else its Referer (the
    portal's pages send one to the portal itself: `Referrer-Policy: same-origin`)."""
    sent = request.headers.get("origin") or request.headers.get("referer")
    if sent is None:
        return None
    try:
        parts = urlsplit(sent)
    except ValueError:
        return sent
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.netloc else sent


def _from_elsewhere(request: Request, own_origin: str) -> str | None:
    """The other origin a state-changing request names, or None when it names the portal's own
    or none (a browser sends Origin with every post: a request without one is not a page's).
    The portal's own is `own_origin` when configured; otherwise the address the request was
    sent to, by host and port only (TLS usually ends at an ingress in front of the portal,
    which then sees http where the browser sent https)."""
    origin = _origin_of(request)
    if origin is None:
        return None
    if own_origin:
        return None if origin == own_origin.rstrip("/").lower() else origin
    host = request.headers.get("host", "").lower()
    return None if origin.partition("://")[2] == host and host else origin


async def check_csrf(request: Request) -> None:
    """Every state-changing request comes from the portal's own origin and carries the CSRF
    value of its own cookie, bound to its session if it has one."""
    settings: PortalSettings = request.app.state.settings
    elsewhere = _from_elsewhere(request, settings.portal_public_origin)
    if elsewhere is not None:
        raise CsrfRefused(f"this form was sent from another site ({elsewhere[:100]})")
    cookie = _cookie(request, CSRF_COOKIE) or ""
    given = request.headers.get(CSRF_HEADER, "")
    if not given:
        form = await request.form()
        value = form.get(CSRF_FIELD, "")
        given = value if isinstance(value, str) else ""
    expected = bound_csrf(cookie, _cookie(request, SESSION_COOKIE)) if cookie else ""
    if not expected or not hmac.compare_digest(expected.encode(), given.encode()):
        raise CsrfRefused()


def session_of(request: Request) -> Session | None:
    """The request's session, verified once a request (a page, its guard and the middleware
    that marks its use each ask)."""
    if not hasattr(request.state, "session"):
        request.state.session = _verified_session(request)
    found: Session | None = request.state.session
    return found


def _verified_session(request: Request) -> Session | None:
    token = _cookie(request, SESSION_COOKIE)
    if not token:
        return None
    verifier: Verifier = request.app.state.verifier
    try:
        caller, expires_at = verifier.verify(token)
    except InvalidToken:
        return None
    settings: PortalSettings = request.app.state.settings
    seen = seen_at(token, _cookie(request, SEEN_COOKIE))
    idle = settings.portal_session_idle_minutes * 60
    if seen is None or (datetime.now(UTC) - seen).total_seconds() > idle:
        return None  # not used for longer than the idle limit (or no mark of use at all)
    return Session(caller, token, expires_at, form_csrf(request))


def seen_value(token: str, at: datetime) -> str:
    """The mark of a session's use at `at`: the moment and an HMAC of it keyed by the session's
    token (no script reads the token, so none can make a mark for it)."""
    stamp = str(int(at.timestamp()))
    mac = hmac.new(token.encode(), b"pollinate-seen:" + stamp.encode(), hashlib.sha256)
    return f"{stamp}.{base64.urlsafe_b64encode(mac.digest()).decode().rstrip('=')}"


def seen_at(token: str, value: str | None) -> datetime | None:
    """When the mark says the session was last used, if it is this session's."""
    stamp, _, _ = (value or "").partition(".")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        return None
    if not hmac.compare_digest(
        seen_value(token, datetime.fromtimestamp(int(stamp), UTC)), value or ""
    ):
        return None
    return datetime.fromtimestamp(int(stamp), UTC)


def mark_used(response: Response, token: str, secure: bool) -> None:
    """Start the idle time again (each page and form answered to a signed-in person), unless
    the answer already marks a session of its own (a sign-in over an open session: marked
    for the old one after it, the new one was over at once)."""
    name = cookie_name(SEEN_COOKIE, secure)
    if any(value.startswith(f"{name}=") for value in response.headers.getlist("set-cookie")):
        return
    response.set_cookie(
        name,
        seen_value(token, datetime.now(UTC)),
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )


async def signed_in(request: Request) -> Session:
    session = session_of(request)
    if session is None:
        reason = "session expired" if _cookie(request, SESSION_COOKIE) else "sign in first"
        raise SignInRequired(reason)
    return session


SessionDep = Annotated[Session, Depends(signed_in)]
CsrfDep = Depends(check_csrf)


def start_session(response: Response, token: str, expires_at: datetime, secure: bool) -> None:
    """A cookie for the browser's session only (found in review: kept for the token's life, up
    to a day, a shared machine's next user opened the portal as the last one); the token's
    expiry still ends it sooner, and the idle limit (`mark_used`) on a machine left open."""
    del expires_at  # the token carries it: every request verifies it
    response.set_cookie(
        cookie_name(SESSION_COOKIE, secure),
        token,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )
    mark_used(response, token, secure)


def end_session(response: Response, secure: bool) -> None:
    for name in (SESSION_COOKIE, SEEN_COOKIE):
        response.delete_cookie(
            cookie_name(name, secure), path="/", httponly=True, samesite="strict", secure=secure
        )
