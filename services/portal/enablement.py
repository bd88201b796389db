"""Partner pages about enablement: the learning paths with each person's progress and the
certification each leads to, and the resource library (what the partner's type and tier may
see), where a download or a sandbox sign-up is recorded with onboarding before anything else."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import RedirectResponse, Response

from services.portal import views
from services.portal.api import BackendsDep, PartnerDep, page_route, partner_session
from services.portal.backends import Backends, BackendUnavailable, answered
from services.portal.domain import enablement
from services.portal.domain.pages import segment
from services.portal.rendering import form_page, page
from services.portal.sessions import CsrfDep, Session

router = APIRouter()

ResourceId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")]


@router.get("/learning")
async def learning(request: Request, session: PartnerDep, backends: BackendsDep) -> Response:
    context = {
        **await views.learning(backends, session),
        "state": enablement.module_state,
    }
    return page(request, "learning.html", context)


def _with_form_targets(response: Response, urls: list[str]) -> Response:
    """The library's download buttons post here, then the browser follows the redirect to the
    resource: the page's policy lets its forms reach those resources' origins too."""
    from services.portal.app import SECURITY_HEADERS  # the one policy, widened for this page

    targets = " ".join(["'self'", *enablement.form_targets(urls)])
    policy = SECURITY_HEADERS["Content-Security-Policy"].replace(
        "form-action 'self'", f"form-action {targets}"
    )
    response.headers["Content-Security-Policy"] = policy
    return response


async def library_page(
    request: Request,
    session: Session,
    backends: Backends,
    message: str = "",
    status: int = 200,
) -> Response:
    rows = await views.resources(backends, session)
    context = {"resources": rows, "kind": enablement.resource_kind}
    response = form_page(request, "resources.html", context, message, status)
    return _with_form_targets(response, [r.url for r in rows])


page_route(router, "/resources", library_page, partner_session)


@router.post("/resources/{resource_id}/download", dependencies=[CsrfDep])
async def download(
    request: Request, resource_id: ResourceId, session: PartnerDep, backends: BackendsDep
) -> Response:
    """The download is recorded as the person's engagement (onboarding counts one a day), then
    the browser goes to the resource itself."""
    path = f"/resources/{segment(resource_id)}/engagements"
    answer = await backends.call(session, "onboarding", "POST", path, json={"action": "download"})
    url = str(answer["resource"]["url"])
    if not enablement.openable(url):  # stored before onboarding checked addresses
        raise BackendUnavailable("onboarding", "answered a resource address no browser opens")
    return RedirectResponse(url, status_code=303)


@router.post("/resources/{resource_id}/sandbox", dependencies=[CsrfDep])
async def sandbox(
    request: Request, resource_id: ResourceId, session: PartnerDep, backends: BackendsDep
) -> Response:
    """A sign-up for an SDK/API early-access sandbox, recorded with onboarding (once per
    person); a resource that is not an early-access programme is onboarding's 422."""
    path = f"/resources/{segment(resource_id)}/engagements"
    call = backends.call(session, "onboarding", "POST", path, json={"action": "sandbox_signup"})
    answer, refusal, status = await answered(call, "Not signed up", (422,))
    if status != 200:
        return await library_page(request, session, backends, refusal, status)
    title = answer["resource"]["title"]
    message = (
        f"Signed up for {title}."
        if answer["recorded"]
        else f"You had already signed up for {title}."
    )
    return await library_page(request, session, backends, message)
