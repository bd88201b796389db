"""The channel-manager console: the review queue of registrations pending review (soonest due first,
with their conflict evidence) and approve/reject with a note; partner applications; MDF claims
beside their fund's remaining balance; CRM-link confirmations, unmatched CRM deals and credits
incentives holds."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request
from starlette.responses import Response

from services.portal.api import (
    BackendsDep,
    RegistrationId,
    page_route,
    registration_page,
    role_session,
)
from services.portal.backends import answered, each, or_missing, outcome
from services.portal.domain.pages import segment
from services.portal.rendering import form_page
from services.portal.sessions import CsrfDep, Session
from shared.identity import Role

router = APIRouter(prefix="/console")


manager_session = role_session("this page", Role.CHANNEL_MANAGER)


ManagerDep = Annotated[Session, Depends(manager_session)]
# Applications on the page: each waiting queue up to a full page of onboarding's, and the
# scoring's latest rejections (public intake: a flood of weak applications must not bury the
# page, nor push the ones waiting out of it).
WAITING_SHOWN = 500
REVIEWS_SHOWN = 500
WAITING_MDF = {"status": "requested", "order": "oldest", "limit": 500}
REJECTED_SHOWN = 20


async def queue_page(
    request: Request, session: Session, backends: BackendsDep, message: str = "", status: int = 200
) -> Response:
    # Deals' review queue itself, soonest deadline first: the newest registrations filtered
    # here lost a waiting one once 500 newer ones had come in.
    queue = await backends.get(session, "deals", "/admin/reviews", limit=REVIEWS_SHOWN)
    context = {"queue": queue}
    return form_page(request, "console.html", context, message, status)


page_route(router, "", queue_page, manager_session)


@router.get("/registrations/{registration_id}")
async def registration(
    request: Request, registration_id: RegistrationId, session: ManagerDep, backends: BackendsDep
) -> Response:
    return await registration_page(request, session, backends, registration_id)


@router.post("/registrations/{registration_id}/review", dependencies=[CsrfDep])
async def review(
    request: Request,
    registration_id: RegistrationId,
    session: ManagerDep,
    backends: BackendsDep,
    decision: Annotated[str, Form(pattern="^(approve|reject)$")],
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    params = {"approve": str(decision == "approve").lower(), "note": note.strip() or decision}
    path = f"/registrations/{segment(registration_id)}/review"
    call = backends.call(session, "deals", "POST", path, params=params)
    message, status = await outcome(call, "Not reviewed", "{registration_id}: {status}")
    return await queue_page(request, session, backends, message, status)


async def decided(
    request: Request,
    session: Session,
    backends: BackendsDep,
    call: tuple[str, str, str],
    again: str,
    done: str,
    **kwargs: Any,
) -> Response:
    """Make one decision through a service, then show the console page `again` with the answer
    (the service's refusal, 409 or 422, in its place)."""
    service, method, path = call
    _, refusal, status = await answered(
        backends.call(session, service, method, path, **kwargs), "Not done"
    )
    return await PAGES[again](request, session, backends, refusal or done, status)


async def applications_page(
    request: Request, session: Session, backends: BackendsDep, message: str = "", status: int = 200
) -> Response:
    # An application the scoring sent to review or recommends waits for a manager (the scoring
    # approves no one by itself); one it rejected is decided, so it is listed without a form.
    outcomes = ("review", "approve")
    *answers, rejected = await asyncio.gather(
        *(
            backends.get(session, "onboarding", "/applications", outcome=o, limit=WAITING_SHOWN)
            for o in outcomes
        ),
        backends.get(
            session, "onboarding", "/applications", outcome="reject", limit=REJECTED_SHOWN
        ),
    )
    waiting = [
        {**application, "recommended": recommended}
        for recommended, listed in zip(outcomes, answers, strict=True)
        for application in listed
    ]
    context = {"applications": waiting, "rejected": rejected, "rejected_shown": REJECTED_SHOWN}
    return form_page(request, "console_applications.html", context, message, status)


async def mdf_page(
    request: Request, session: Session, backends: BackendsDep, message: str = "", status: int = 200
) -> Response:
    claims, budgets = await asyncio.gather(
        # The waiting ones themselves, oldest first: the newest 500 of every status filtered
        # here lost one waiting behind 500 newer ones.
        backends.get(session, "incentives", "/mdf/claims", **WAITING_MDF),
        backends.get(session, "incentives", "/mdf/preapprovals", **WAITING_MDF),
    )
    waiting, budgets_waiting = list(claims), list(budgets)
    # Each claim and budget beside what its partner's fund has left (one read per partner).
    partners = sorted({str(c["partner_id"]) for c in [*waiting, *budgets_waiting]})

    def fund(partner_id: str) -> Callable[[], Awaitable[Any]]:
        return lambda: backends.get(session, "incentives", f"/partners/{segment(partner_id)}/mdf")

    funds = dict(zip(partners, await each(fund(p) for p in partners), strict=True))
    context = {"claims": waiting, "budgets": budgets_waiting, "funds": funds}
    return form_page(request, "console_mdf.html", context, message, status)


async def links_page(
    request: Request, session: Session, backends: BackendsDep, message: str = "", status: int = 200
) -> Response:
    missing: dict[str, str] = {}  # the held credits are incentives': the links show without
    proposed, unmatched, held = await asyncio.gather(
        backends.get(session, "attribution", "/crm-links", status="proposed", limit=500),
        backends.get(session, "attribution", "/crm-links/unmatched"),
        or_missing(
            backends.get(session, "incentives", "/credits/held", limit=200), "incentives", missing
        ),
    )
    context = {"proposed": proposed, "unmatched": unmatched, "held": held, "missing": missing}
    return form_page(request, "console_links.html", context, message, status)


PAGES = {"applications": applications_page, "mdf": mdf_page, "links": links_page}

Decision = Annotated[str, Form(pattern="^(approve|reject)$")]
DECIDED = {"approve": "approved", "reject": "rejected"}
Note = Annotated[str, Form(max_length=500)]


def decision_route(path: str, item: str, service: str, again: str, done: str) -> None:
    """Add the console's `POST path`: a manager approves or rejects (with a note) the item that
    `path` names by `item`; `service` decides at the same path, then the page `again` shows its
    answer (`done`, formatted with the item and what was decided: approved or rejected) or its
    refusal."""

    async def decide(
        request: Request,
        session: ManagerDep,
        backends: BackendsDep,
        decision: Decision,
        note: Note = "",
        item_id: str = Path(alias=item, max_length=200),
    ) -> Response:
        body = {"approve": decision == "approve", "note": note.strip()}
        call = (service, "POST", path.format_map({item: segment(item_id)}))
        message = done.format(item=item_id, decided=DECIDED[decision])
        return await decided(request, session, backends, call, again, message, json=body)

    router.post(path, dependencies=[CsrfDep])(decide)


decision_route(
    "/applications/{partner_id}/decision",
    "partner_id",
    "onboarding",
    "applications",
    "{item}: {decided}",
)
decision_route(
    "/mdf/claims/{claim_id}/decision", "claim_id", "incentives", "mdf", "Claim {item}: {decided}"
)
decision_route(
    "/mdf/preapprovals/{preapproval_id}/decision",
    "preapproval_id",
    "incentives",
    "mdf",
    "Budget {item}: {decided}",
)


page_route(router, "/applications", applications_page, manager_session)
page_route(router, "/mdf", mdf_page, manager_session)
page_route(router, "/crm-links", links_page, manager_session)


@router.post("/crm-links", dependencies=[CsrfDep])
async def propose_link(
    request: Request,
    source: Annotated[str, Form(min_length=1, max_length=64)],
    external_id: Annotated[str, Form(min_length=1, max_length=200)],
    partner_id: Annotated[str, Form(min_length=1, max_length=200)],
    session: ManagerDep,
    backends: BackendsDep,
) -> Response:
    """Propose the partner an unmatched CRM reference stands for: the link then waits on the
    same page for a manager's confirmation (attribution checks the values: its 422 is shown)."""
    link = {"source": source, "external_id": external_id, "partner_id": partner_id.strip()}
    call = ("attribution", "POST", "/crm-links")
    done = f"Proposed: {source} {external_id} for {link['partner_id']}: confirm it to credit"
    return await decided(request, session, backends, call, "links", done, json=link)


@router.post("/crm-links/{source}/{external_id}/confirm", dependencies=[CsrfDep])
async def confirm_link(
    request: Request,
    source: Annotated[str, Path(max_length=64)],
    external_id: Annotated[str, Path(max_length=200)],
    partner_id: Annotated[str, Form(min_length=1, max_length=200)],
    session: ManagerDep,
    backends: BackendsDep,
) -> Response:
    """Confirm the link for the partner the page showed it proposed for: attribution refuses
    (409) a proposal replaced since, so the manager never confirms a partner unseen."""
    # The reference is one path segment there as here: a '?', '#', '%' or space in it would
    # otherwise end or change the path attribution is asked for.
    link = f"{segment(source)}/{segment(external_id)}"
    call = ("attribution", "POST", f"/crm-links/{link}/confirm")
    done = f"Confirmed: {source} {external_id} for {partner_id}"
    approved = {"partner_id": partner_id}
    return await decided(request, session, backends, call, "links", done, json=approved)
