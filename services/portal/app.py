"""Composition root of the portal: settings, the token verifier, one HTTP client for the
services, the routes, static assets and how every failure becomes a page (never a 500)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from services.portal import (
    api,
    campaigns,
    console,
    dashboard,
    dead_letters,
    earnings,
    enablement,
    partners,
    payouts,
    policy,
    webhooks,
)
from services.portal.backends import BackendRefused, Backends, BackendUnavailable
from services.portal.rendering import HERE, page
from services.portal.sessions import (
    CsrfRefused,
    SignInRequired,
    Verifier,
    mark_used,
    session_of,
)
from services.portal.settings import PortalSettings
from shared.http import SHUTDOWN_GRACE_SECONDS, BodyLimit

log = logging.getLogger(__name__)

# Every page and form the portal serves, in the order they are routed.
ROUTERS = (
    api.router,
    earnings.router,
    campaigns.router,
    webhooks.router,
    enablement.router,
    console.router,
    dead_letters.router,
    partners.router,
    payouts.router,
    policy.router,
    dashboard.router,
)

# The pages load nothing from elsewhere: scripts, styles and the live stream are the portal's.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def create_app(settings: PortalSettings | None = None) -> FastAPI:
    settings = settings or PortalSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        timeout = httpx.Timeout(settings.portal_backend_timeout_seconds)
        # Streams wait for no connection: all in use, the next is refused at once.
        streams = httpx.Limits(
            max_connections=settings.portal_max_streams, max_keepalive_connections=0
        )
        async with (
            httpx.AsyncClient(timeout=timeout) as client,
            httpx.AsyncClient(timeout=timeout, limits=streams) as streaming,
        ):
            app.state.backends = Backends(settings, client, streaming)
            yield

    app = FastAPI(
        title="Pollinate portal",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.verifier = Verifier(settings)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    install_error_pages(app)
    # Before any route: a body over the bound or an address with a control character is refused
    # before a form is parsed or a service is called (shared/http.py, as every service does).
    app.add_middleware(BodyLimit, max_bytes=settings.http_max_body_bytes, answer=refusal_page)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        session = session_of(request)
        # A signed-in answer starts the idle time again (sign-in and sign-out set or clear the
        # mark themselves: `mark_used` leaves theirs).
        if session is not None and not request.url.path.startswith("/static/"):
            mark_used(response, session.token, not settings.development_mode)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        # Only an asset is kept by a cache: a 404 page under /static/ carries the person's
        # name and a CSRF cookie (it was marked public for an hour).
        if request.url.path.startswith("/static/") and response.status_code == 200:
            response.headers.setdefault("Cache-Control", "public, max-age=3600")
        else:
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app


def refusal_page(request: Request, status: int, detail: str) -> Response:
    """BodyLimit's refusal (a body too large, an address it cannot serve) as the portal's page."""
    return page(request, "error.html", {"message": detail}, status=status)


def _wants_fragment(request: Request) -> bool:
    return request.headers.get("hx-request") == "true" or request.url.path.startswith("/live/")


def install_error_pages(app: FastAPI) -> None:
    async def sign_in(request: Request, error: Exception) -> Response:
        reason = error.reason if isinstance(error, SignInRequired) else "sign in first"
        if _wants_fragment(request):
            return page(request, "error.html", {"message": reason}, status=401)
        target = "/sign-in?reason=" + ("expired" if "expired" in reason else "required")
        return RedirectResponse(target, status_code=303)

    async def csrf(request: Request, error: Exception) -> Response:
        assert isinstance(error, CsrfRefused)
        return page(request, "error.html", {"message": error.why}, status=403)

    async def refused(request: Request, error: Exception) -> Response:
        assert isinstance(error, BackendRefused)
        return page(request, "error.html", {"message": error.detail}, status=error.status)

    async def unavailable(request: Request, error: Exception) -> Response:
        log.warning("%s", error)
        return page(request, "error.html", {"message": str(error)}, status=503)

    async def invalid(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in error.errors()
        )
        return page(request, "error.html", {"message": problems}, status=422)

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        return page(request, "error.html", {"message": str(error.detail)}, status=error.status_code)

    app.add_exception_handler(SignInRequired, sign_in)
    app.add_exception_handler(CsrfRefused, csrf)
    app.add_exception_handler(BackendRefused, refused)
    app.add_exception_handler(BackendUnavailable, unavailable)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)
    # Starlette answers an unexpected exception outside every middleware: the page sets the
    # headers itself (a plain-text 500 without them was the answer before).
    app.add_exception_handler(Exception, failed)


async def failed(request: Request, error: Exception) -> Response:
    log.error("a page failed", exc_info=error)
    message = "Something went wrong on our side; the page could not be shown. Try again later."
    try:
        response: Response = page(request, "error.html", {"message": message}, status=500)
    except Exception:  # the page itself cannot be drawn: the message alone
        response = PlainTextResponse(message, status_code=500)
    response.headers.update({**SECURITY_HEADERS, "Cache-Control": "no-store"})
    return response


def run() -> None:
    settings = PortalSettings()
    settings.refuse_local_defaults()
    logging.basicConfig(level=settings.log_level)
    if settings.development_mode:
        log.warning("portal in development mode: the session cookie is not Secure")
    # Bounded, as every service's: an open live stream would otherwise hold the stop until the
    # pod is killed (found in review: every portal pod was, at each rollout).
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
