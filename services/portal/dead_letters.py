"""The console's dead letters: each service's, with their reasons, and a replay button for one
letter or every waiting letter shown (the services' `GET /admin/dead-letters`,
`POST /admin/dead-letters/{offset}/replay` and `POST /admin/dead-letters/replay`, called with the
manager's own token). A service that does not answer is said so in its own section; the others
still show."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Path, Query, Request
from starlette.responses import Response

from services.portal.api import BackendsDep
from services.portal.backends import BackendRefused, Backends, BackendUnavailable, answered
from services.portal.console import ManagerDep
from services.portal.rendering import form_page
from services.portal.sessions import CsrfDep, Session
from shared.topics import SERVICES

router = APIRouter(prefix="/console/dead-letters")

PAGE = 50
ServiceName = Annotated[str, Path(pattern=f"^({'|'.join(SERVICES)})$")]
State = Literal["waiting", "replayed", "all"]


async def letters_of(
    backends: Backends, session: Session, service: str, state: State, before: int | None
) -> dict[str, Any]:
    """One service's page of dead letters, newest first (what just broke is what a manager
    opens the page for), or why it could not be read."""
    try:
        answer: dict[str, Any] = await backends.get(
            session,
            service,
            "/admin/dead-letters",
            state=state,
            limit=PAGE,
            order="newest",
            before=before,
        )
    except BackendUnavailable as error:
        return {"service": service, "problem": str(error), "letters": []}
    except BackendRefused as refused:
        return {"service": service, "problem": f"{service}: {refused.detail}", "letters": []}
    return answer


async def letters_page(
    request: Request,
    session: Session,
    backends: Backends,
    *,
    state: State = "waiting",
    only: str | None = None,
    before: int | None = None,
    message: str = "",
    status: int = 200,
) -> Response:
    shown = (only,) if only else SERVICES
    sections = await asyncio.gather(
        *(letters_of(backends, session, s, state, before if only else None) for s in shown)
    )
    context = {"sections": sections, "state": state, "only": only}
    return form_page(request, "console_dead_letters.html", context, message, status)


@router.get("")
async def dead_letters(
    request: Request,
    session: ManagerDep,
    backends: BackendsDep,
    state: State = "waiting",
    service: Annotated[str | None, Query(pattern=f"^({'|'.join(SERVICES)})$")] = None,
    before: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    return await letters_page(request, session, backends, state=state, only=service, before=before)


def _outcome(service: str, answer: dict[str, Any]) -> str:
    return f"{service} dead letter {answer['offset']}: {answer['outcome']} ({answer['detail']})"


async def _replayed(
    request: Request, session: Session, backends: Backends, service: str, call: Any
) -> Response:
    """Run one replay call, then the service's letters again with the answer (a refusal,
    e.g. a letter replayed before, in its place)."""
    done, refusal, status = await answered(call, "Not replayed", (404, 409, 422))
    return await letters_page(
        request,
        session,
        backends,
        state="all",
        only=service,
        message=refusal or done,
        status=status,
    )


@router.post("/{service}/{offset}/replay", dependencies=[CsrfDep])
async def replay_one(
    request: Request,
    service: ServiceName,
    offset: Annotated[int, Path(ge=0, le=2**63 - 1)],
    session: ManagerDep,
    backends: BackendsDep,
) -> Response:
    async def call() -> str:
        path = f"/admin/dead-letters/{offset}/replay"
        return _outcome(service, await backends.call(session, service, "POST", path))

    return await _replayed(request, session, backends, service, call())


@router.post("/{service}/replay", dependencies=[CsrfDep])
async def replay_all(
    request: Request,
    service: ServiceName,
    session: ManagerDep,
    backends: BackendsDep,
    through: Annotated[int, Form(ge=0, le=2**63 - 1)],
    since: Annotated[int | None, Form(ge=0, le=2**63 - 1)] = None,
) -> Response:
    async def call() -> str:
        asked = {"through": through} | ({"since": since} if since is not None else {})
        answer = await backends.call(
            session, service, "POST", "/admin/dead-letters/replay", json=asked
        )
        done = [_outcome(service, item) for item in answer["replayed"]]
        left = [f"#{s['offset']} left waiting: {s['reason']}" for s in answer.get("skipped", [])]
        more = " More wait: replay again." if answer["more"] else ""
        return f"{len(done)} replayed. " + " · ".join(done + left) + more

    return await _replayed(request, session, backends, service, call())
