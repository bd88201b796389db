"""Partner pages for webhook endpoints and their delivery log (the notifications service's
API). A partner's admin manages endpoints; its users read them (the notifications service
decides: a user's change is refused with its 403, shown on the page)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from services.portal.api import BackendsDep, PartnerDep, page_route, partner_session
from services.portal.backends import Backends, answered
from services.portal.domain.pages import segment
from services.portal.rendering import form_page
from services.portal.sessions import CsrfDep, Session

router = APIRouter(prefix="/webhooks")

# The notifications service's refusals a page shows beside its form (403: a user, not an admin).
REFUSALS_SHOWN = (403, 409, 422)


def base(session: Session) -> str:
    return f"/partners/{segment(session.caller.partner_id)}/webhooks"


async def list_page(
    request: Request,
    session: Session,
    backends: Backends,
    message: str = "",
    status: int = 200,
    secret: str = "",
    typed: dict[str, str] | None = None,
) -> Response:
    """The endpoints, with a form's answer above them; a refused endpoint's fields kept as
    typed (`typed`: they were emptied, found in review)."""
    endpoints = await backends.get(session, "notifications", base(session))
    context = {"endpoints": endpoints["items"], "secret": secret, "typed": typed or {}}
    return form_page(request, "webhooks.html", context, message, status)


page_route(router, "", list_page, partner_session)


@router.post("", dependencies=[CsrfDep])
async def add(
    request: Request,
    session: PartnerDep,
    backends: BackendsDep,
    url: Annotated[str, Form(min_length=1, max_length=2000)],
    description: Annotated[str, Form(max_length=200)] = "",
    kinds: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    body: dict[str, Any] = {"url": url.strip(), "description": description.strip()}
    chosen = [k.strip() for k in kinds.split(",") if k.strip()]
    if chosen:
        body["kinds"] = chosen
    call = backends.call(session, "notifications", "POST", base(session), json=body)
    made, refusal, status = await answered(call, "Not added", REFUSALS_SHOWN)
    if status != 200:
        typed = {"url": url, "description": description, "kinds": kinds}
        return await list_page(request, session, backends, refusal, status, typed=typed)
    # The signing secret is shown this once (the service shows it again only on rotation).
    message = f"Added {made['url']}"
    return await list_page(request, session, backends, message, 200, secret=made["secret"])


async def endpoint_page(
    request: Request,
    session: Session,
    backends: Backends,
    endpoint_id: uuid.UUID,
    message: str = "",
    status: int = 200,
    after: uuid.UUID | None = None,
    secret: str = "",
) -> Response:
    """The endpoint and a page of 50 of its delivery log, newest first (`after`: the last
    delivery of the page before), with a link to the older ones; a secret just rotated is
    shown this once."""
    path = f"{base(session)}/{endpoint_id}"
    endpoint = await backends.get(session, "notifications", path)
    deliveries = await backends.get(
        session, "notifications", f"{path}/deliveries", limit=50, after=after and str(after)
    )
    context = {
        "endpoint": endpoint,
        "deliveries": deliveries["items"],
        "older": deliveries["next_after"],
        "paged": after is not None,
        "secret": secret,
    }
    return form_page(request, "webhook.html", context, message, status)


@router.get("/{endpoint_id}")
async def endpoint(
    request: Request,
    endpoint_id: uuid.UUID,
    session: PartnerDep,
    backends: BackendsDep,
    after: uuid.UUID | None = None,
) -> Response:
    return await endpoint_page(request, session, backends, endpoint_id, after=after)


async def change(
    request: Request,
    session: Session,
    backends: Backends,
    endpoint_id: uuid.UUID,
    method: str,
    suffix: str,
    done: str,
    **kwargs: Any,
) -> Response:
    path = f"{base(session)}/{endpoint_id}{suffix}"
    call = backends.call(session, "notifications", method, path, **kwargs)
    _, refusal, status = await answered(call, "Not done", REFUSALS_SHOWN)
    return await endpoint_page(request, session, backends, endpoint_id, refusal or done, status)


@router.post("/{endpoint_id}/enabled", dependencies=[CsrfDep])
async def enable(
    request: Request,
    endpoint_id: uuid.UUID,
    session: PartnerDep,
    backends: BackendsDep,
    enabled: Annotated[bool, Form()],
) -> Response:
    done = "Enabled: queued deliveries resume in order." if enabled else "Disabled."
    body = {"enabled": enabled}
    return await change(request, session, backends, endpoint_id, "PATCH", "", done, json=body)


@router.post("/{endpoint_id}/deliveries/{delivery_id}/redeliver", dependencies=[CsrfDep])
async def redeliver(
    request: Request,
    endpoint_id: uuid.UUID,
    delivery_id: uuid.UUID,
    session: PartnerDep,
    backends: BackendsDep,
) -> Response:
    suffix = f"/deliveries/{delivery_id}/redeliver"
    done = f"Delivery {delivery_id} queued again."
    return await change(request, session, backends, endpoint_id, "POST", suffix, done)


@router.post("/{endpoint_id}/rotate-secret", dependencies=[CsrfDep])
async def rotate_secret(
    request: Request, endpoint_id: uuid.UUID, session: PartnerDep, backends: BackendsDep
) -> Response:
    """A new signing secret, shown this once; deliveries are signed with the old one too for
    24 hours. Found in review: the page said rotating shows a new one, and offered no way to,
    so a secret lost (its answer timed out while the endpoint was added) could not be had."""
    path = f"{base(session)}/{endpoint_id}/rotate-secret"
    call = backends.call(session, "notifications", "POST", path)
    rotated, refusal, status = await answered(call, "Not rotated", REFUSALS_SHOWN)
    if status != 200:
        return await endpoint_page(request, session, backends, endpoint_id, refusal, status)
    until = rotated["previous_secret_valid_until"]
    message = f"A new signing secret: deliveries are signed with the old one too until {until}."
    return await endpoint_page(
        request, session, backends, endpoint_id, message, secret=rotated["secret"]
    )


@router.post("/{endpoint_id}/remove", dependencies=[CsrfDep])
async def remove(
    request: Request, endpoint_id: uuid.UUID, session: PartnerDep, backends: BackendsDep
) -> Response:
    """The endpoint goes, with its queue and delivery log (the notifications service's DELETE;
    found in review: the portal could add endpoints and not remove one)."""
    path = f"{base(session)}/{endpoint_id}"
    call = backends.call(session, "notifications", "DELETE", path)
    _, refusal, status = await answered(call, "Not removed", REFUSALS_SHOWN)
    if status != 200:
        return await endpoint_page(request, session, backends, endpoint_id, refusal, status)
    return await list_page(request, session, backends, "Endpoint removed.")
