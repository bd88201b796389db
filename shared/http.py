"""The HTTP edge every service shares: who is calling, what the service provides to its routes,
and one mapping from request errors to HTTP answers.

Routes live on module-level `APIRouter`s in each service's `api.py` and declare what they need
as typed dependencies:

    @router.get("/registrations/{registration_id}", response_model=RegistrationOut)
    async def get_registration(registration_id: str, who: CallerDep, platform: PlatformDep): ...

    PolicyDep = Annotated[RulesOfEngagement, Provided(RulesOfEngagement)]

Every service answers the same way: 401 without a valid bearer token, 403 when the caller's role
may not use the route, 404 for another partner's resource exactly as for a missing one, 409 for
a state that does not allow the change, 422 for a request that is well-formed but not
meaningful. Errors are `{"detail": "<precise message>"}`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypeVar
from urllib.parse import unquote_to_bytes

from fastapi import APIRouter, Depends, FastAPI, Request, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, PlainSerializer, WithJsonSchema
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.clock import now
from shared.db import DATABASE_UNAVAILABLE, TRANSACTION_COLLISIONS
from shared.errors import Forbidden, NotFound, RequestError, Unprocessable
from shared.identity import Caller, InvalidToken, Role, TokenVerifier
from shared.inputs import MAX_JSON_DEPTH, TOO_DEEP, MalformedJson, json_depth
from shared.rate_limits import TooManyRequests, anonymous_intake, rate_limits_of
from shared.settings import ServiceSettings

if TYPE_CHECKING:
    from shared.service import Platform

T = TypeVar("T")

# Declared as the OpenAPI security scheme, so /docs "Authorize" takes a token. auto_error is
# off: a missing token is answered by `caller` below with the platform's own 401 message.
bearer = HTTPBearer(
    scheme_name="bearer",
    description="A platform token (a JWT signed by the platform: a partner user's from "
    "onboarding's `POST /admin/partner-tokens/{partner_id}`, or a channel manager's, finance's "
    "or a system client's from the operators' `python -m shared.identity issue`).",
    auto_error=False,
)


class Unauthenticated(RequestError):
    status = 401


DOUBLE_MAX_EXPONENT = 308  # a double ends near 1.8e308


class ExactJsonRequest(Request):
    """A request whose JSON body reads a number with a fraction or an exponent as an exact
    Decimal. Starlette reads it as a double, so an amount sent as a JSON number lost digits
    before any model saw it: 82261615611686.07 arrived as 82261615611686.06, a cent off and
    valid (found reading the money path; about one 16-digit amount in eight)."""

    async def json(self) -> Any:
        """The body as JSON; MalformedJson (400, the parser's reason) when it is none."""
        if not hasattr(self, "_json"):
            try:
                self._json = json.loads(await self.body(), parse_float=_json_number)
            except (ValueError, RecursionError) as error:  # JSONDecodeError, bad UTF-8
                raise MalformedJson.because(error) from error
        return self._json


def _json_number(text: str) -> Decimal | float:
    """A JSON number with a fraction or an exponent: exact, or beyond a double's range what
    it always was, infinity or zero (as a Decimal, 1e5000 reached an int field as 5,001 digits,
    and pydantic's check that 1e-9999999 is whole took seconds of the event loop)."""
    number = Decimal(text)
    if -DOUBLE_MAX_EXPONENT - 16 <= number.adjusted() <= DOUBLE_MAX_EXPONENT:
        return number
    return float(text)


class UnsupportedMediaType(RequestError):
    status = 415


def _is_json(content_type: str | None) -> bool:
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


class ExactJsonRoute(APIRoute):
    """A route whose handler reads its body as an `ExactJsonRequest`. A body for a route that
    takes JSON is read here first, so what FastAPI would answer as a 422 about a dictionary
    (a form, text, no Content-Type: 415) or as "JSON decode error" with the reason dropped
    (400 with the parser's reason, as every JSON the platform reads itself) says what it is."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        field = self.body_field
        takes_json = field is not None and not isinstance(field.field_info, params.Form)
        authenticated = _depends_on(self.dependant, caller)
        public_intake = _depends_on(self.dependant, anonymous_intake)

        async def exact(request: Request) -> Response:
            exact_request = ExactJsonRequest(request.scope, request.receive)
            if public_intake:  # an anonymous caller's allowance, before its body is read
                await anonymous_intake(exact_request)
            if takes_json and authenticated:
                # The token before the body: found in review, an anonymous caller had a
                # service parse up to a megabyte of JSON (60-90 ms of its event loop) before
                # it was answered 401. The dependency reads the caller verified here.
                credentials = await bearer(exact_request)
                request.scope[_VERIFIED_CALLER] = await caller(exact_request, credentials)
            if takes_json and await exact_request.body():
                if not _is_json(request.headers.get("content-type")):
                    raise UnsupportedMediaType(
                        "the body must be JSON, sent with Content-Type: application/json"
                    )
                await exact_request.json()  # parsed here, so a refusal says why (cached)
            return await handler(exact_request)

        return exact


# Where a route's wrapper keeps the caller it verified before reading the body.
_VERIFIED_CALLER = "pollinate.verified_caller"


def _depends_on(dependant: Any, call: Callable[..., Any]) -> bool:
    """Whether a route's dependencies include `call` (`caller`: every route a token opens)."""
    pending = list(dependant.dependencies)
    while pending:
        dependency = pending.pop()
        if dependency.call is call:
            return True
        pending.extend(dependency.dependencies)
    return False


def api_router(**options: Any) -> APIRouter:
    """Every service's router: an `APIRouter` (same options) whose routes read JSON numbers
    exactly (`ExactJsonRoute`). A float or int field takes such a number as it took a double;
    free JSON (`JsonObject`) holds it as a Decimal (xAPI statements turn theirs back into the
    doubles the xAPI specification means)."""
    return APIRouter(route_class=ExactJsonRoute, **options)


# How long a stopping instance (a service, the portal) lets requests in flight finish before
# it cancels them.
SHUTDOWN_GRACE_SECONDS = 10

# A clock a little ahead of the service's is not a run ahead of its time.
_CLOCK_SKEW = timedelta(minutes=5)


def run_moment(as_of: datetime | None, platform: Platform) -> datetime:
    """The moment an admin run acts as of: now, or `as_of`. A moment ahead of now is taken on
    a development stack only (tests and demos drive time forwards): found in review, a channel
    manager's run dated two years ahead reviewed, put on probation and expelled partners now,
    recorded as the scheduled job's doing."""
    at = now()
    if as_of is None:
        return at
    if as_of > at + _CLOCK_SKEW and not platform.settings.development_mode:
        raise Unprocessable(
            f"as_of {as_of.isoformat()} is ahead of now: a run acts on what has happened (ahead,"
            " it would review, expire or expel before their time); only a development stack"
            " runs the clock ahead"
        )
    return as_of


def settings_of(request: Request) -> ServiceSettings:
    settings = request.app.state.settings
    assert isinstance(settings, ServiceSettings)
    return settings


def started_platform(request: Request) -> Platform | None:
    """The running platform (pool, outbox, provisions), or None before the service started."""
    return getattr(request.app.state, "platform", None)


def platform_of(request: Request) -> Platform:
    """The running platform; a route can only be reached once the service has started."""
    platform = started_platform(request)
    if platform is None:
        raise RuntimeError("the service has not started")
    return platform


# The dependencies below are coroutines although they do no I/O: FastAPI runs a plain `def`
# dependency in a worker thread, a hop per request that cost the deals edge about 5% of its
# CPU (measured with py-spy under the chain benchmark).


def verifier_of(request: Request) -> TokenVerifier:
    verifier = request.app.state.token_verifier
    assert isinstance(verifier, TokenVerifier)
    return verifier


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """The bearer token resolved to a verified Caller (shared/identity.py). 401 when missing,
    invalid, expired, signed with an unknown key or meant for another service; 403 when its
    partner's access has been revoked (suspended or expelled), or was after it was issued."""
    verified = request.scope.get(_VERIFIED_CALLER)
    if isinstance(verified, Caller):
        return verified  # verified by the route before its body was read (ExactJsonRoute)
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("missing bearer token")
    token = credentials.credentials.strip()
    if not token.isascii():  # a JWT is ASCII; anything else is refused before parsing
        raise Unauthenticated("invalid token")
    try:
        who = verifier_of(request).verify(token)
    except InvalidToken as error:
        raise Unauthenticated(str(error)) from error
    platform = started_platform(request)
    if who.partner_id is not None and platform is not None:
        refused = platform.partner_access.refused(who.partner_id, who.issued_at)
        if refused is not None:
            raise Forbidden(refused)
    if who.partner_id is not None:
        limits = rate_limits_of(request)
        wait = limits.partners.take(who.partner_id)
        if wait is not None:
            raise TooManyRequests(
                f"too many requests for partner {who.partner_id}: this service takes at most"
                f" {limits.partners.per_minute} a minute from one partner's people and apps;"
                " retry after `Retry-After` seconds",
                wait,
            )
    return who


# A route anyone may call that records something declares it (shared/rate_limits.py).
PublicIntake = Depends(anonymous_intake)


def require_role(*roles: Role) -> Any:
    """A dependency admitting only callers holding one of `roles` (403 otherwise)."""
    names = [role.value for role in roles]
    wanted = f"the role {names[0]}" if len(names) == 1 else f"one of the roles {', '.join(names)}"

    async def role_holder(who: Annotated[Caller, Depends(caller)]) -> Caller:
        if not who.has(*roles):
            raise Forbidden(f"this needs {wanted}")
        return who

    role_holder.__name__ = "requires_" + "_or_".join(role.value for role in roles)
    return Depends(role_holder)


async def platform_dependency(request: Request) -> Platform:
    return platform_of(request)


PlatformDep = Annotated["Platform", Depends(platform_dependency)]
# Who may call a route, by role (the README's route table lists every route's). Most routes
# serve a partner's people (their own partner's data only) and channel managers (everyone's);
# manager routes only channel managers. A route admitting other roles says so with
# require_role (incentives' payouts: finance; onboarding's certifications: system clients).
PARTNER_OR_MANAGER = (Role.PARTNER_USER, Role.PARTNER_ADMIN, Role.CHANNEL_MANAGER)
CallerDep = Annotated[Caller, require_role(*PARTNER_OR_MANAGER)]
AdminDep = Annotated[Caller, require_role(Role.CHANNEL_MANAGER)]


def Provided(kind: type[T]) -> Any:  # noqa: N802 (reads as a dependency marker, like Depends)
    """A dependency on what the service's wiring provided (`platform.provide(...)`)."""

    async def provided(request: Request) -> T:
        return platform_of(request).provisions.get(kind)

    provided.__name__ = f"provided_{kind.__name__}"
    return Depends(provided)


def partner_scope(who: Caller, partner_id: str | None, what: str) -> None:
    """A partner may only reach its own resources; another partner's answers 404, exactly as a
    missing one (so ids cannot be probed)."""
    if partner_id is None or not who.may_see(partner_id):
        raise NotFound(f"{what} not found")


def own_partner(who: Caller, partner_id: str) -> None:
    """A route about one partner (`/partners/{partner_id}/...`): a partner may only name itself;
    naming another partner answers 404 `partner <id> not found`, as an unknown one would."""
    partner_scope(who, partner_id, f"partner {partner_id}")


class PartnersResource(Protocol):
    """Anything a route answers that belongs to one partner."""

    @property
    def partner_id(self) -> str: ...


Resource = TypeVar("Resource", bound=PartnersResource)


def partners_own(who: Caller, found: Resource | None, what: str) -> Resource:
    """`found` when the caller may see it; a missing one and another partner's answer the same
    404 (`partner_scope`)."""
    partner_scope(who, found.partner_id if found is not None else None, what)
    assert found is not None
    return found


def acting_partner(who: Caller, partner_id: str | None) -> str:
    """The partner a write is for: a partner acts only for itself (naming another partner is
    refused, never silently redirected); a channel manager must name the partner."""
    if who.partner_id is not None:
        if partner_id not in (None, who.partner_id):
            raise Forbidden("a partner acts only for itself")
        return who.partner_id
    if partner_id is None or not partner_id.strip():  # ?partner_id= made a partner ""
        raise Unprocessable("a channel manager must name partner_id")
    return partner_id


_URL_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
# No id the platform issues or takes is longer (a deal key is at most about 420 bytes); a
# segment longer reached routes whose audit or key index refused it as a 500 (Postgres' btree
# entries end near 2,700 bytes: found in review).
PATH_SEGMENT_MAX = 512


def _url_problem(scope: Scope) -> str | None:
    """Why the URL cannot be served: a control character (NUL included) in its path or query
    would reach a route as text that Postgres or a log line refuses."""
    raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
    query = scope.get("query_string", b"")
    for part, what in ((raw_path, "path"), (query, "query string")):
        decoded = unquote_to_bytes(part.replace(b"+", b" ") if what != "path" else part)
        if _URL_CONTROL.search(decoded):
            return f"the {what} must not contain control characters"
        if what == "path" and max(map(len, decoded.split(b"/"))) > PATH_SEGMENT_MAX:
            return f"a path segment must be at most {PATH_SEGMENT_MAX} bytes"
        try:
            decoded.decode("utf-8")
        except UnicodeDecodeError:
            return f"the {what} is not valid UTF-8"
    return None


class BodyLimit:
    """Refuses a request body over `max_bytes` with 413 before any route sees it, whether the
    client declared its length or streams it (a plain ASGI middleware: the body is read here,
    up to the bound, and handed on). A JSON body nested deeper than MAX_JSON_DEPTH, and a URL
    with control characters or invalid UTF-8, are refused with 400 here too. A refusal is
    `{"detail": ...}` JSON unless `answer` makes it otherwise (the portal answers a page)."""

    def __init__(self, app: ASGIApp, max_bytes: int, answer: Refusal | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.answer = answer or _json_refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        url_problem = _url_problem(scope)
        if url_problem is not None:
            await self._refuse(scope, receive, send, 400, url_problem)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and not declared.isdigit():
            await self._refuse(scope, receive, send, 400, "Content-Length is not a number")
            return
        if declared is not None and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send, 413, self._too_large())
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message]), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send, 413, self._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        raw = b"".join(chunks)
        if json_depth(raw) > MAX_JSON_DEPTH:
            await self._refuse(scope, receive, send, 400, TOO_DEEP)
            return
        body = {"type": "http.request", "body": raw, "more_body": False}
        await self.app(scope, _replay([body], then=receive), send)

    def _too_large(self) -> str:
        return f"request body over {self.max_bytes} bytes"

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, status: int, detail: str
    ) -> None:
        response = self.answer(Request(scope, receive), status, detail)
        await response(scope, receive, send)


# What BodyLimit answers a refused request with: the request, the status and why.
Refusal = Callable[[Request, int, str], Response]


def _json_refusal(request: Request, status: int, detail: str) -> Response:
    return JSONResponse({"detail": detail}, status_code=status)


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    """A `receive` that hands out `messages`, then defers to `then` (a disconnect)."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive


async def _request_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestError)
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    if isinstance(error, TooManyRequests):
        headers = {"Retry-After": str(error.retry_after_seconds)}
    return JSONResponse({"detail": error.message}, status_code=error.status, headers=headers)


_ECHO_MAX = 64  # characters of a refused input echoed back


def _printable(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, with anything JSON cannot carry escaped."""
    cut = text if len(text) <= limit else text[:limit] + "..."
    return cut.encode("utf-8", "backslashreplace").decode("utf-8")


def _echo(value: Any) -> Any:
    """What of a refused input a 422 repeats: a short scalar, cut; never a structure."""
    if isinstance(value, bool | int) and abs(value) < 10**18:
        return value
    if isinstance(value, str):
        return _printable(value, _ECHO_MAX)
    return None


def validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic's errors as a 422 carries them: the field path, the reason and the error type,
    with the input cut short (a megabyte is never echoed back)."""
    shown: list[dict[str, Any]] = []
    for error in errors[:20]:
        item: dict[str, Any] = {
            "type": str(error.get("type", "")),
            "loc": [
                part if isinstance(part, int) else _printable(str(part), _ECHO_MAX)
                for part in error.get("loc", ())
            ],
            "msg": _printable(str(error.get("msg", "")), 500),
        }
        echoed = _echo(error.get("input"))
        if echoed is not None:
            item["input"] = echoed
        shown.append(item)
    return shown


async def _invalid_request(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return JSONResponse({"detail": validation_errors(error.errors())}, status_code=422)


# A stored moment in a response body, as Python writes it (`2026-11-20T12:00:00+00:00`), as
# the services' reads always have.
Timestamp = Annotated[
    datetime,
    PlainSerializer(lambda moment: moment.isoformat(), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class ErrorOut(BaseModel):
    """Every refusal: `detail` says precisely what was wrong with the request."""

    detail: str


class ValidationErrorOut(BaseModel):
    type: str
    loc: list[str | int]
    msg: str
    input: str | int | None = Field(default=None, description="the refused input, cut short")


class UnprocessableOut(BaseModel):
    """A 422: the platform's precise message, or pydantic's list of field errors."""

    detail: str | list[ValidationErrorOut]


# For routes that read their body themselves (no model for FastAPI to document a 422 from).
UNPROCESSABLE_RESPONSE: dict[int | str, dict[str, Any]] = {
    422: {"model": UnprocessableOut, "description": "well-formed but not meaningful"}
}

# The answers any route may give besides its own. 422 is the platform's precise message or
# pydantic's list of field errors (FastAPI would document only the list).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "malformed request (JSON, URL)"},
    415: {"model": ErrorOut, "description": "a body that is not JSON (Content-Type)"},
    422: {"model": UnprocessableOut, "description": "well-formed but not meaningful"},
    401: {"model": ErrorOut, "description": "missing or invalid bearer token"},
    403: {"model": ErrorOut, "description": "the caller's role may not use the route"},
    404: {"model": ErrorOut, "description": "no such resource (or another partner's)"},
    409: {"model": ErrorOut, "description": "the resource's state does not allow the change"},
    413: {"model": ErrorOut, "description": "request body too large"},
    429: {
        "model": ErrorOut,
        "description": "too many requests from the caller's partner (or, on a public route, its "
        "address): retry after `Retry-After` seconds",
    },
    503: {
        "model": ErrorOut,
        "description": "the service's database is unavailable for now, or the request collided "
        "with concurrent work: retry after `Retry-After` seconds (nothing was recorded)",
    },
}
# How long a client should wait before retrying while the database is out of reach.
RETRY_AFTER_SECONDS = 5


async def _database_unavailable(request: Request, error: Exception) -> JSONResponse:
    """A request that needed the database while it was out of reach: 503 with Retry-After,
    not a 500 (the transaction did not commit, so nothing was recorded and a retry is safe)."""
    logging.getLogger(__name__).warning(
        "database unavailable", extra={"path": request.url.path[:200], "error": repr(error)}
    )
    return JSONResponse(
        {"detail": "the service's database is unavailable; retry later"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _collided(request: Request, error: Exception) -> JSONResponse:
    """Postgres ended the request's transaction so that a concurrent one could go on (a
    deadlock's victim, a serialization conflict): 503 with a short Retry-After, not a 500
    (nothing was recorded, and the same request again succeeds)."""
    logging.getLogger(__name__).warning(
        "request collided with concurrent work",
        extra={"path": request.url.path[:200], "error": repr(error)},
    )
    return JSONResponse(
        {"detail": "the request collided with concurrent work and was not recorded; retry"},
        status_code=503,
        headers={"Retry-After": "1"},
    )


def install_error_mapping(app: FastAPI) -> None:
    """The one mapping from request errors to HTTP answers, registered once per app."""
    app.add_exception_handler(RequestError, _request_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    for unavailable in DATABASE_UNAVAILABLE:
        app.add_exception_handler(unavailable, _database_unavailable)
    for collision in TRANSACTION_COLLISIONS:
        app.add_exception_handler(collision, _collided)
