"""Partner pages about money: earnings (balance and the statement by period), the what-if
calculator, and market development funds (balance, claims, a new claim). Amounts are shown as
the services state them (decimal strings): the portal never does arithmetic on money."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from starlette.responses import Response

from services.portal import views
from services.portal.api import BackendsDep, PartnerDep, page_route, partner_session
from services.portal.backends import BackendRefused, Backends, outcome
from services.portal.domain import pages
from services.portal.domain.pages import segment
from services.portal.rendering import form_page, page
from services.portal.sessions import CsrfDep, Session

router = APIRouter()

PERIOD = r"^[0-9]{4}-(Q[1-4]|0[1-9]|1[0-2])$"
Amount = Annotated[str, Form(min_length=1, max_length=40)]
# What the MDF page says of a claim made (fields of incentives' answer).
CLAIMED = "Claim {claim_id} for {amount} {currency}: {status} (fund available: {fund_available})"
# ... and of a claim against an approved campaign budget (a pre-approval).
CLAIMED_AGAINST_BUDGET = (
    "Claim {claim_id} for {amount} {currency} against budget {preapproval_id}: {status}"
    " ({preapproval_left} {currency} of the budget left)"
)
# A pre-approval's id as incentives makes them (a UUID).
PREAPPROVAL_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


@router.get("/earnings")
async def earnings(
    request: Request,
    session: PartnerDep,
    backends: BackendsDep,
    period: Annotated[str | None, Query(pattern=PERIOD)] = None,
) -> Response:
    """The balance, earnings and revenue by quarter, and the statement of `period` (in the
    form the programme books: incentives answers 422 to another, shown with its reason)."""
    data = await views.earnings(backends, session, period)
    context = {**data, "period": period, "label": pages.entry_label}
    return page(request, "earnings.html", context)


@router.get("/what-if")
async def what_if(
    request: Request,
    session: PartnerDep,
    backends: BackendsDep,
    amount: Annotated[str | None, Query(max_length=40)] = None,
    kind: Annotated[str, Query(pattern="^(sourced|influenced)$")] = "sourced",
    products: Annotated[str, Query(max_length=200)] = "",
    co_sell: bool = False,
) -> Response:
    """What a won deal would earn now (incentives computes; nothing is booked). A read: its form
    is a GET, so the answer has an address a person can share."""
    answer: dict[str, Any] | None = None
    problem = ""
    programs = await backends.get(session, "incentives", "/programs")
    if amount:
        body = {
            "amount": amount.strip(),
            "kind": kind,
            "co_sell": co_sell,
            "products": [p.strip() for p in products.split(",") if p.strip()],
        }
        try:
            answer = await backends.call(session, "incentives", "POST", "/what-if", json=body)
        except BackendRefused as refused:
            if refused.status != 422:
                raise
            problem = refused.detail
    form = {"amount": amount or "", "kind": kind, "products": products, "co_sell": co_sell}
    spiffs = programs.get("active_spiffs") or []
    context = {"answer": answer, "problem": problem, "form": form, "spiffs": spiffs}
    return page(request, "what_if.html", context, status=422 if problem else 200)


async def mdf_page(
    request: Request,
    session: Session,
    backends: Backends,
    message: str = "",
    status: int = 200,
    claim_form: dict[str, str] | None = None,
    plan_form: dict[str, str] | None = None,
    budget_form: dict[str, str] | None = None,
) -> Response:
    """The MDF page, with a form's answer or refusal (`message`) above it; a refused form's
    fields kept as typed (a claim's, a campaign's plan, a budget asked for with its reference,
    so sending it again still asks once: they were emptied, found in review)."""
    context = {
        **await views.mdf(backends, session),
        "claim_form": claim_form or {},
        "plan_form": plan_form or {},
        "budget_form": budget_form or {},
    }
    # A budget asked again keeps its reference (sent twice, it asks once), unless incentives
    # said the reference already names another budget: then the next ask is a new one (found
    # in review: every resend met the same 409 until the page was reloaded).
    reference = (budget_form or {}).get("reference")
    if reference and f"reference {reference} already names" not in message:
        context["budget_reference"] = reference
    return form_page(request, "mdf.html", context, message, status)


page_route(router, "/mdf", mdf_page, partner_session)


async def mdf_form_answered(
    request: Request,
    session: Session,
    backends: Backends,
    call: Awaitable[Any],
    said: tuple[str, str],
    form: str,
    body: dict[str, str],
) -> Response:
    """An MDF form's call answered on the page: `said` is what the page says of a refusal and
    of the answer; refused, the form (`claim_form`, `plan_form`, `budget_form`) keeps `body`."""
    message, status = await outcome(call, *said)
    kept = {form: body} if status >= 400 else {}
    return await mdf_page(request, session, backends, message, status, **kept)


Description = Annotated[str, Form(min_length=3, max_length=500)]
ProofReference = Annotated[str, Form(min_length=1, max_length=500)]


def claim_body(amount: str, description: str, proof_reference: str) -> dict[str, str]:
    return {
        "amount": amount.strip(),
        "description": description.strip(),
        "proof_reference": proof_reference.strip(),
    }


@router.post("/mdf/claims", dependencies=[CsrfDep])
async def claim(
    request: Request,
    session: PartnerDep,
    backends: BackendsDep,
    amount: Amount,
    description: Description,
    proof_reference: ProofReference,
) -> Response:
    body = claim_body(amount, description, proof_reference)
    call = backends.call(session, "incentives", "POST", "/mdf/claims", json=body)
    said = ("Not claimed", CLAIMED)
    return await mdf_form_answered(request, session, backends, call, said, "claim_form", body)


@router.post("/mdf/preapprovals/{preapproval_id}/claims", dependencies=[CsrfDep])
async def claim_against_budget(
    request: Request,
    session: PartnerDep,
    backends: BackendsDep,
    preapproval_id: Annotated[str, Path(pattern=PREAPPROVAL_ID)],
    amount: Amount,
    description: Description,
    proof_reference: ProofReference,
) -> Response:
    """A claim with proof against an approved campaign budget: spent from what its approval
    reserved. Found in review: the page had no way to make one, and a plain claim is checked
    against the fund's available money, which the reservation had taken, so it was refused
    and the approved budget lapsed unspent."""
    body = claim_body(amount, description, proof_reference)
    path = f"/mdf/preapprovals/{segment(preapproval_id)}/claims"
    call = backends.call(session, "incentives", "POST", path, json=body)
    said = ("Not claimed", CLAIMED_AGAINST_BUDGET)
    kept = body | {"preapproval_id": preapproval_id}
    return await mdf_form_answered(request, session, backends, call, said, "claim_form", kept)
