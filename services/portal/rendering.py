"""Pages from templates: every page gets the person (if signed in), the CSRF value its forms
carry, and its cookie."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse

from services.portal.domain.pages import money, segment
from services.portal.sessions import form_csrf, remember_csrf, session_of

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
# A value as one path segment of a form's action or a link (Jinja's urlencode keeps '/').
templates.env.filters["segment"] = segment
# An amount with its currency's places where nothing is lost: `{{ r.amount | money(r.currency) }}`.
templates.env.filters["money"] = money


def page(
    request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> HTMLResponse:
    session = session_of(request)
    response = templates.TemplateResponse(
        request,
        template,
        {
            "who": session.caller if session else None,
            "csrf": form_csrf(request),
            "path": request.url.path,
            **(context or {}),
        },
        status_code=status,
    )
    remember_csrf(request, response, secure=not request.app.state.settings.development_mode)
    return response


def form_page(
    request: Request, template: str, context: dict[str, Any], message: str = "", status: int = 200
) -> HTMLResponse:
    """A page under a form's outcome: `message` says the answer (200) or the service's refusal
    (its status; the template shows it as a problem)."""
    return page(request, template, {**context, "message": message, "failed": status != 200}, status)
