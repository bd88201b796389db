"""The console's policy page: the versioned registration policy (rules of engagement) in force
and scheduled, every version and activation; a new version's document validated against the
one in force, backtested over past registrations, proposed, and a stored version scheduled
(deals' `GET /policy`, `GET /admin/policy/history`, `POST /admin/policy/validate|backtest|
versions` and `POST /admin/policy/versions/{version}/activate`, with the manager's token)."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from starlette.responses import Response

from services.portal.api import BackendsDep, page_route
from services.portal.backends import BackendRefused, Backends
from services.portal.console import ManagerDep, manager_session
from services.portal.domain.pages import segment
from services.portal.rendering import form_page
from services.portal.sessions import CsrfDep, Session
from shared.inputs import MAX_JSON_DEPTH, json_depth, refuse_json_constant

router = APIRouter(prefix="/console/policy")

DOCUMENT_MAX = 100_000
DOCUMENT_DEPTH = MAX_JSON_DEPTH - 1
VERSION = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$"
# A browser's datetime-local value (minutes, optionally seconds), read as UTC.
LOCAL_TIME = r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?)?$"
DAY = r"^\d{4}-\d{2}-\d{2}$"

Document = Annotated[str, Form(min_length=2, max_length=DOCUMENT_MAX)]
Note = Annotated[str, Form(max_length=1000)]


class NotADocument(ValueError):
    pass


def document_of(text: str) -> dict[str, Any]:
    """The textarea's JSON object, or why it is not one. It is sent on as JSON, so it must be
    JSON that can be written again: no NaN or Infinity, no number beyond a float, no half of a
    UTF-16 surrogate pair, no nesting past the services' bound (each of these answered 500
    when found from outside)."""
    # It goes on inside a body of its own (`{"document": ...}`), which the services bound: the
    # draft is measured as that body, or deals would refuse what passed here.
    if json_depth(b'{"document": ' + text.encode("utf-8", "surrogatepass") + b"}") > MAX_JSON_DEPTH:
        raise NotADocument(f"the document is nested deeper than {DOCUMENT_DEPTH} levels")
    try:
        value = json.loads(text, parse_constant=refuse_json_constant, parse_float=_finite)
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as error:
        raise NotADocument("the document holds half of a UTF-16 surrogate pair alone") from error
    except ValueError as error:
        raise NotADocument(f"the document is not JSON: {error}") from error
    if not isinstance(value, dict):
        raise NotADocument("the document must be a JSON object (its settings by name)")
    return value


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text[:40]} is beyond the numbers a document may hold")
    return number


async def policy_page(
    request: Request,
    session: Session,
    backends: Backends,
    *,
    draft: str | None = None,
    note: str = "",
    outcome: dict[str, Any] | None = None,
    message: str = "",
    status: int = 200,
    span: tuple[str, str] | None = None,
) -> Response:
    """The policy page; `span`: the backtest's days as asked (kept, so a backtest again runs
    over them: found in review, it fell back to the last 90 days without a word)."""
    in_force, history = await asyncio.gather(
        backends.get(session, "deals", "/policy"),
        backends.get(session, "deals", "/admin/policy/history"),
    )
    versions = list(reversed(history["versions"]))
    today = datetime.now(UTC).date()
    context = {
        "in_force": in_force,
        "in_force_text": json.dumps(in_force["document"], indent=2, sort_keys=True),
        "versions": versions,
        "activations": list(reversed(history["activations"])),
        "draft": draft
        if draft is not None
        else json.dumps(in_force["document"], indent=2, sort_keys=True),
        "note": note,
        "outcome": outcome,
        "since": span[0] if span else (today - timedelta(days=90)).isoformat(),
        "until": span[1] if span else (today + timedelta(days=1)).isoformat(),
    }
    return form_page(request, "console_policy.html", context, message, status)


async def _answered(
    request: Request,
    session: Session,
    backends: Backends,
    call: Any,
    *,
    draft: str | None = None,
    note: str = "",
    span: tuple[str, str] | None = None,
) -> Response:
    """Run one call to deals and show the page again with its answer, or its refusal (422
    with deals' exact reason, 409) beside the draft (and a backtest's days) kept as typed."""
    try:
        outcome, message = await call
    except (BackendRefused, NotADocument) as refused:
        if isinstance(refused, BackendRefused) and refused.status not in (404, 409, 422):
            raise
        detail = refused.detail if isinstance(refused, BackendRefused) else str(refused)
        status = refused.status if isinstance(refused, BackendRefused) else 422
        return await policy_page(
            request,
            session,
            backends,
            draft=draft,
            note=note,
            message=detail,
            status=status,
            span=span,
        )
    return await policy_page(
        request,
        session,
        backends,
        draft=draft,
        note=note,
        outcome=outcome,
        message=message,
        span=span,
    )


page_route(router, "", policy_page, manager_session)


@router.post("/validate", dependencies=[CsrfDep])
async def validate(
    request: Request,
    session: ManagerDep,
    backends: BackendsDep,
    document: Document,
    note: Note = "",
) -> Response:
    async def call() -> tuple[dict[str, Any], str]:
        body = {"document": document_of(document)}
        checked = await backends.call(session, "deals", "POST", "/admin/policy/validate", json=body)
        changed = len(checked["changes"])
        return {"check": checked}, f"{checked['version']} is valid: {changed} setting(s) change"

    return await _answered(request, session, backends, call(), draft=document, note=note)


@router.post("/backtest", dependencies=[CsrfDep])
async def backtest(
    request: Request,
    session: ManagerDep,
    backends: BackendsDep,
    document: Document,
    since: Annotated[str, Form(pattern=DAY)],
    until: Annotated[str, Form(pattern=DAY)],
    note: Note = "",
) -> Response:
    async def call() -> tuple[dict[str, Any], str]:
        body = {
            "document": document_of(document),
            "since": f"{since}T00:00:00Z",
            "until": f"{until}T00:00:00Z",
            "limit": 50,
        }
        tested = await backends.call(session, "deals", "POST", "/admin/policy/backtest", json=body)
        return {"backtest": tested}, (
            f"{tested['proposed_version']} replayed {tested['replayed']} registration(s)"
            f" submitted from {since} to {until}: {tested['changed']} would be decided otherwise"
        )

    return await _answered(
        request, session, backends, call(), draft=document, note=note, span=(since, until)
    )


@router.post("/versions", dependencies=[CsrfDep])
async def propose(
    request: Request,
    session: ManagerDep,
    backends: BackendsDep,
    document: Document,
    note: Note = "",
) -> Response:
    async def call() -> tuple[dict[str, Any], str]:
        body = {"document": document_of(document), "note": note}
        stored = await backends.call(session, "deals", "POST", "/admin/policy/versions", json=body)
        return {}, f"Version {stored['version']} stored: it decides nothing until scheduled"

    return await _answered(request, session, backends, call(), draft=document, note=note)


@router.post("/versions/{version}/activate", dependencies=[CsrfDep])
async def activate(
    request: Request,
    version: Annotated[str, Path(pattern=VERSION)],
    session: ManagerDep,
    backends: BackendsDep,
    at: Annotated[str, Form(pattern=LOCAL_TIME)] = "",
) -> Response:
    async def call() -> tuple[dict[str, Any], str]:
        params = {"at": f"{at}Z" if len(at) > 16 else f"{at}:00Z"} if at else {}
        path = f"/admin/policy/versions/{segment(version)}/activate"
        await backends.call(session, "deals", "POST", path, params=params)
        when = f"from {params['at']}" if at else "now"
        return {}, f"Version {version} in force {when}"

    return await _answered(request, session, backends, call())
