"""The channel-manager console: the review queue of registrations pending review (oldest first,
with their conflict evidence) and approve/reject with a note."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from services.portal.api import BackendsDep
from services.portal.backends import BackendRefused
from services.portal.rendering import page
from services.portal.sessions import CsrfDep, Session, SessionDep
from shared.identity import Role

router = APIRouter(prefix="/console")


async def manager_session(session: SessionDep) -> Session:
    if not session.caller.has(Role.CHANNEL_MANAGER):
        raise BackendRefused("portal", 403, "this page needs the role channel_manager")
    return session


ManagerDep = Annotated[Session, Depends(manager_session)]


def review_queue(registrations: list[Any]) -> list[Any]:
    waiting = [r for r in registrations if r.get("status") == "pending_review"]
    return sorted(waiting, key=lambda r: str(r.get("submitted_at", "")))


async def queue_page(
    request: Request, session: Session, backends: BackendsDep, message: str = "", status: int = 200
) -> Response:
    registrations = await backends.get(session, "deals", "/registrations", limit=500)
    context = {"queue": review_queue(registrations), "message": message, "failed": status != 200}
    return page(request, "console.html", context, status=status)


@router.get("")
async def console(request: Request, session: ManagerDep, backends: BackendsDep) -> Response:
    return await queue_page(request, session, backends)


@router.post("/registrations/{registration_id}/review", dependencies=[CsrfDep])
async def review(
    request: Request,
    registration_id: str,
    session: ManagerDep,
    backends: BackendsDep,
    decision: Annotated[str, Form(pattern="^(approve|reject)$")],
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    params = {"approve": str(decision == "approve").lower(), "note": note.strip() or decision}
    path = f"/registrations/{registration_id}/review"
    try:
        answer = await backends.call(session, "deals", "POST", path, params=params)
    except BackendRefused as refused:
        if refused.status not in (409, 422):
            raise
        message = f"Not reviewed: {refused.detail}"
        return await queue_page(request, session, backends, message, refused.status)
    message = f"{registration_id}: {answer.get('status', decision)}"
    return await queue_page(request, session, backends, message)
