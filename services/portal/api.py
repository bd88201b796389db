"""The partner portal's routes: sign-in and out, the home page with its live notifications, and
deal registration. Each parses the form at the edge, calls the services through `views` or
`backends` with the person's own token, and renders a page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Header, Path, Query, Request
from pydantic import BaseModel
from starlette.responses import RedirectResponse, Response, StreamingResponse

from services.portal import views
from services.portal.backends import BackendRefused, Backends, outcome
from services.portal.domain import pages
from services.portal.domain.pages import segment
from services.portal.rendering import form_page, page
from services.portal.schemas import CheckAnswer
from services.portal.sessions import (
    CsrfDep,
    Session,
    SessionDep,
    Verifier,
    end_session,
    start_session,
)
from shared.identity import InvalidToken, Role

router = APIRouter()

Text = Annotated[str, Form(max_length=200)]
OptionalText = Annotated[str, Form(max_length=253)]
RegistrationId = Annotated[str, Path(max_length=200)]


class Health(BaseModel):
    status: str


def backends_of(request: Request) -> Backends:
    backends: Backends = request.app.state.backends
    return backends


BackendsDep = Annotated[Backends, Depends(backends_of)]


class NotAPartner(Exception):
    pass


async def partner_session(session: SessionDep) -> Session:
    """Partner pages: a partner's people only (they see their own partner, named by the token)."""
    if session.caller.partner_id is None:
        raise BackendRefused("portal", 403, "this page is for a partner's people")
    return session


PartnerDep = Annotated[Session, Depends(partner_session)]


def role_session(what: str, *roles: Role) -> Callable[[Session], Awaitable[Session]]:
    """A dependency admitting the sessions of people holding one of `roles`: to anyone else,
    `what` (a page, an action) answers 403 naming the roles it needs."""
    needed = " or ".join(roles)

    async def admitted(session: SessionDep) -> Session:
        if not session.caller.has(*roles):
            raise BackendRefused("portal", 403, f"{what} needs the role {needed}")
        return session

    return admitted


# A page drawn for a session: `page_route` shows it as it stands, a form's route with its outcome.
PageOf = Callable[[Request, Session, Backends], Awaitable[Response]]


def page_route(
    router: APIRouter, path: str, page_of: PageOf, admitted: Callable[[Session], Awaitable[Session]]
) -> None:
    """Add `GET path` to `router`: the page `page_of` draws, for the sessions `admitted` lets
    in (`partner_session`, `manager_session`), with no form's outcome above it."""

    async def show(request: Request, session: SessionDep, backends: BackendsDep) -> Response:
        return await page_of(request, await admitted(session), backends)

    router.get(path)(show)


def secure(request: Request) -> bool:
    return not request.app.state.settings.development_mode


@router.get("/health/live")
async def live() -> Health:
    return Health(status="ok")


@router.get("/health/ready")
async def ready() -> Health:
    return Health(status="ready")


@router.get("/")
async def start(session: SessionDep) -> Response:
    landing = pages.landing_page(session.caller)
    if landing is None:
        raise BackendRefused("portal", 403, "the portal has no pages for your roles")
    return RedirectResponse(landing, status_code=303)


@router.get("/sign-in")
async def sign_in_page(request: Request, reason: str = "") -> Response:
    messages = {"expired": "Your session has expired: sign in again.", "required": ""}
    return page(request, "sign_in.html", {"message": messages.get(reason, "")})


@router.post("/sign-in", dependencies=[CsrfDep])
async def sign_in(
    request: Request, token: Annotated[str, Form(min_length=1, max_length=4096)]
) -> Response:
    verifier: Verifier = request.app.state.verifier
    try:
        caller, expires_at = verifier.verify(token.strip())
    except InvalidToken as error:
        return page(request, "sign_in.html", {"message": f"Not signed in: {error}."}, status=401)
    landing = pages.landing_page(caller)
    if landing is None:
        message = (
            "Not signed in: the portal has pages for partners, channel managers and finance only."
        )
        return page(request, "sign_in.html", {"message": message}, status=403)
    response = RedirectResponse(landing, status_code=303)
    start_session(response, token.strip(), expires_at, secure(request))
    return response


@router.post("/sign-out", dependencies=[CsrfDep])
async def sign_out(request: Request) -> Response:
    response = RedirectResponse("/sign-in", status_code=303)
    end_session(response, secure(request))
    return response


@router.get("/home")
async def home(request: Request, session: PartnerDep, backends: BackendsDep) -> Response:
    return page(request, "home.html", {"home": await views.home(backends, session)})


# A cursor as the notifications service hands them out (unpadded URL-safe base64, at most 40
# characters; which ones it takes is its business). Found from outside: a non-ASCII
# Last-Event-ID could not be written into the request to the service (a 500); now a 422 here.
CURSOR = r"^[A-Za-z0-9_-]*$"
CURSOR_MAX = 40


@router.get("/live/notifications")
async def live_notifications(
    session: PartnerDep,
    backends: BackendsDep,
    after: Annotated[str | None, Query(max_length=CURSOR_MAX, pattern=CURSOR)] = None,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=CURSOR_MAX, pattern=CURSOR)
    ] = None,
) -> Response:
    """The partner's notifications stream, passed through from the notifications service
    (a browser's EventSource cannot send the token itself)."""
    path = f"/partners/{segment(session.caller.partner_id)}/notifications/stream"
    if after:
        path += "?" + urlencode({"after": after})
    body = await backends.stream(session, "notifications", path, last_event_id)
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def registrations_page(
    request: Request,
    session: Session,
    backends: Backends,
    message: str = "",
    status: int = 200,
    form: dict[str, Any] | None = None,
) -> Response:
    """The partner's registrations under the form, a page at a time (`?after=` the last one
    of the page before): a refused one's `form` is filled in again."""
    after = request.query_params.get("after") or None
    read = await views.registrations(backends, session, after)
    rows = read[: views.REGISTRATIONS_PAGE]
    # Found in review: exactly a page's worth offered an "Older" link to an empty page.
    older = rows[-1].registration_id if len(read) > len(rows) else None
    context = {
        "rows": rows,
        "form": form or {},
        "older": older,
        "paged": after is not None,
        "after": after,  # an extension asked from this page answers on it (it went to the first)
    }
    return form_page(request, "registrations.html", context, message, status)


page_route(router, "/registrations", registrations_page, partner_session)


def registration_body(
    customer_name: str, customer_domain: str, country: str, product: str, amount: str, currency: str
) -> dict[str, Any]:
    return {
        "customer_name": customer_name.strip(),
        "customer_domain": customer_domain.strip() or None,
        "customer_country": country.strip().upper() or None,
        "products": [p.strip() for p in product.split(",") if p.strip()] or ["-"],
        "amount": amount.strip() or "0",
        "currency": currency.strip().upper(),
    }


@router.post("/registrations/check", dependencies=[CsrfDep])
async def check(
    request: Request,
    session: PartnerDep,
    backends: BackendsDep,
    customer_name: Annotated[str, Form(max_length=200)] = "",
    customer_domain: OptionalText = "",
    customer_country: Annotated[str, Form(max_length=2)] = "",
    products: Annotated[str, Form(max_length=200)] = "",
    amount: Annotated[str, Form(max_length=40)] = "",
    currency: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    """The dry-run answer as the person types (an htmx fragment): what deals would decide now
    for this customer; nothing is written. Before products are chosen it checks every product
    the partner is authorised for (the broadest conflict), before an amount a nominal one."""
    if len(customer_name.strip()) < 2:
        return page(request, "check.html", {"answer": None})
    if not products.strip():
        partner = await backends.get(
            session, "onboarding", f"/partners/{segment(session.caller.partner_id)}"
        )
        products = ",".join(partner.get("products") or ["-"])
    body = registration_body(
        customer_name, customer_domain, customer_country, products, amount or "1", currency or "USD"
    )
    try:
        answer = await backends.call(session, "deals", "POST", "/registrations/check", json=body)
    except BackendRefused as refused:  # a fragment shows the refusal in place of the answer
        return page(request, "check.html", {"answer": None, "problem": refused.detail})
    return page(request, "check.html", {"answer": CheckAnswer.model_validate(answer)})


@router.post("/registrations", dependencies=[CsrfDep])
async def register(
    request: Request,
    session: PartnerDep,
    backends: BackendsDep,
    customer_name: Text,
    amount: Annotated[str, Form(max_length=40)],
    currency: Annotated[str, Form(min_length=3, max_length=3)] = "USD",
    customer_domain: OptionalText = "",
    customer_country: Annotated[str, Form(max_length=2)] = "",
    products: Text = "",
) -> Response:
    body = registration_body(
        customer_name, customer_domain, customer_country, products, amount, currency
    )
    try:
        decision = await backends.call(session, "deals", "POST", "/registrations", json=body)
    except BackendRefused as refused:
        if refused.status not in (409, 422):
            raise
        return await registrations_page(
            request, session, backends, refused.detail, refused.status, form=body
        )
    message = f"Registered: {decision['status']} ({'; '.join(decision['reasons'])})"
    return await registrations_page(request, session, backends, message)


async def registration_page(
    request: Request, session: Session, backends: Backends, registration_id: str
) -> Response:
    """One registration and its decision history, as deals tells this person (a partner what
    it was told, a channel manager the full reasons and evidence)."""
    context = await views.registration(backends, session, registration_id)
    return page(request, "registration.html", context)


@router.get("/registrations/{registration_id}")
async def registration(
    request: Request, registration_id: RegistrationId, session: PartnerDep, backends: BackendsDep
) -> Response:
    return await registration_page(request, session, backends, registration_id)


EXTENDED = "Extended: protected until {expires_at}"  # fields of deals' answer


@router.post("/registrations/{registration_id}/extension", dependencies=[CsrfDep])
async def extend(
    request: Request,
    registration_id: RegistrationId,
    session: PartnerDep,
    backends: BackendsDep,
    read_until: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Extend as the page showed it: deals refuses (409) a window extended since, so a form
    sent twice extends once (found in review: a double click spent two extensions)."""
    path = f"/registrations/{segment(registration_id)}/extension"
    if read_until:
        path += "?" + urlencode({"read_until": read_until})
    call = backends.call(session, "deals", "POST", path)
    message, status = await outcome(call, "Not extended", EXTENDED, (409,))
    return await registrations_page(request, session, backends, message, status)
