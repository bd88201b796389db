"""A partner's co-marketing campaigns on its MDF page: planning one (programme's
`POST /campaigns`, for the partner itself) and asking for its budget before spending it
(incentives' `POST /mdf/preapprovals`, with the campaign's own dates). A refusal is shown
beside the forms with the service's reason: a campaign planned a moment ago may not be known
to incentives yet ("retry in a moment")."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from services.portal.api import BackendsDep, PartnerDep
from services.portal.backends import Backends
from services.portal.domain.pages import segment
from services.portal.earnings import mdf_form_answered
from services.portal.sessions import CsrfDep, Session

router = APIRouter(prefix="/mdf")

KIND = "^(webinar|event|content|digital|other)$"
CAMPAIGN_ID = "^[A-Za-z0-9_-]{1,100}$"  # it goes into programme's path: no slash, no dot
Day = Annotated[str, Form(pattern=r"^\d{4}-\d{2}-\d{2}$")]
# What the page says of each answer (fields of the service's answer).
PLANNED = "Campaign {name} ({campaign_id}) planned from {starts_on} to {ends_on}"
ASKED = "Budget of {amount} {currency} for campaign {campaign_id}: {status} ({preapproval_id})"


@router.post("/campaigns", dependencies=[CsrfDep])
async def plan_campaign(
    request: Request,
    session: PartnerDep,
    backends: BackendsDep,
    name: Annotated[str, Form(min_length=1, max_length=200)],
    kind: Annotated[str, Form(pattern=KIND)],
    starts_on: Day,
    ends_on: Day,
    description: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    body = {
        "name": name.strip(),
        "kind": kind,
        "starts_on": starts_on,
        "ends_on": ends_on,
        "description": description.strip(),
    }
    call = backends.call(session, "programme", "POST", "/campaigns", json=body)
    said = ("Not planned", PLANNED)
    return await mdf_form_answered(request, session, backends, call, said, "plan_form", body)


@router.post("/preapprovals", dependencies=[CsrfDep])
async def ask_budget(
    request: Request,
    session: PartnerDep,
    backends: BackendsDep,
    campaign_id: Annotated[str, Form(pattern=CAMPAIGN_ID)],
    activity_kind: Annotated[str, Form(pattern=KIND)],
    description: Annotated[str, Form(min_length=3, max_length=500)],
    amount: Annotated[str, Form(min_length=1, max_length=40)],
    reference: Annotated[str, Form(min_length=1, max_length=200)],
) -> Response:
    """The budget covers the campaign's own dates, in the fund's currency; `reference` comes
    with the form, so sending it twice asks once (incentives returns the same request)."""
    campaign, programs = await _campaign_and_programs(backends, session, campaign_id)
    body = {
        "reference": reference,
        "campaign_id": campaign_id,
        "activity_kind": activity_kind,
        "description": description.strip(),
        "starts_on": campaign["starts_on"],
        "ends_on": campaign["ends_on"],
        "amount": amount.strip(),
        "currency": programs["programs"]["currency"],
    }
    call = backends.call(session, "incentives", "POST", "/mdf/preapprovals", json=body)
    said = ("Not asked", ASKED)
    return await mdf_form_answered(request, session, backends, call, said, "budget_form", body)


async def _campaign_and_programs(
    backends: Backends, session: Session, campaign_id: str
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The campaign as programme shows the partner (another's is programme's 404) and the
    incentive programmes (the fund's currency)."""
    campaign, programs = await asyncio.gather(
        backends.get(session, "programme", f"/campaigns/{segment(campaign_id)}"),
        backends.get(session, "incentives", "/programs"),
    )
    return campaign, programs
