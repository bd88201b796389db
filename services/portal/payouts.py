"""The finance team's payouts page: by period and settlement state (owed, settled, overpaid),
from incentives' `GET /payouts`; finance records a payout from it (incentives'
`POST /partners/{partner_id}/payouts`, the balance by default). Channel managers read it too."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from starlette.responses import Response

from services.portal.api import BackendsDep, role_session
from services.portal.backends import Backends, outcome
from services.portal.domain import partners as rules
from services.portal.domain.pages import segment
from services.portal.partners import PARTNER_ID
from services.portal.rendering import form_page
from services.portal.sessions import CsrfDep, Session
from shared.identity import Role

router = APIRouter(prefix="/finance")

PERIOD = r"^([0-9]{4}-(Q[1-4]|0[1-9]|1[0-2]))?$"
STATE = r"^(owed|settled|overpaid)?$"
# What the page says of a payout recorded (fields of incentives' answer).
PAID = "Paid {amount} {currency} to {partner_id} ({reference}); balance after: {balance_after}"

ledger_reader = role_session("this page", Role.FINANCE, Role.CHANNEL_MANAGER)
finance_session = role_session("this", Role.FINANCE)
# The list's cursor as the incentives service hands it out (URL-safe base64).
CURSOR = r"^[A-Za-z0-9_=-]*$"
ReaderDep = Annotated[Session, Depends(ledger_reader)]
FinanceDep = Annotated[Session, Depends(finance_session)]


async def payouts_page(
    request: Request,
    session: Session,
    backends: Backends,
    *,
    period: str = "",
    state: str = "",
    partner: str = "",
    after: str = "",
    payouts_before: str = "",
    message: str = "",
    status: int = 200,
) -> Response:
    view: dict[str, Any] = await backends.get(
        session,
        "incentives",
        "/payouts",
        period=period or None,
        state=state or None,
        partner=partner or None,
        after=after or None,
        limit=rules.PAGE,
        payouts_before=payouts_before or None,
        payouts_limit=rules.PAGE,
    )
    context = {
        "view": view,
        "period": period,
        "state": state,
        "paging": rules.Paging(
            view["partners_before"], len(view["partners"]), view["total_partners"]
        ),
        "after": after,
        "partner": partner,
        "query": {
            k: v for k, v in {"period": period, "state": state, "partner": partner}.items() if v
        },
        "may_pay": session.caller.has(Role.FINANCE),
        "payouts_paged": bool(payouts_before),
    }
    return form_page(request, "finance_payouts.html", context, message, status)


@router.get("/payouts")
async def payouts(
    request: Request,
    session: ReaderDep,
    backends: BackendsDep,
    period: Annotated[str, Query(pattern=PERIOD)] = "",
    state: Annotated[str, Query(pattern=STATE)] = "",
    partner: Annotated[str, Query(pattern=f"({PARTNER_ID})|^$")] = "",
    after: Annotated[str, Query(max_length=400, pattern=CURSOR)] = "",
    payouts_before: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    return await payouts_page(
        request,
        session,
        backends,
        period=period,
        state=state,
        partner=partner,
        after=after,
        payouts_before=payouts_before,
    )


@router.post("/partners/{partner_id}/payouts", dependencies=[CsrfDep])
async def pay_out(
    request: Request,
    partner_id: Annotated[str, Path(pattern=PARTNER_ID)],
    session: FinanceDep,
    backends: BackendsDep,
    reference: Annotated[str, Form(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:/-]+$")],
    amount: Annotated[str, Form(pattern=r"^(\d{1,14}(\.\d{1,2})?)?$")] = "",
    period: Annotated[str, Form(pattern=PERIOD)] = "",
    state: Annotated[str, Form(pattern=STATE)] = "",
    partner: Annotated[str, Form(pattern=f"({PARTNER_ID})|^$")] = "",
    after: Annotated[str, Form(max_length=400, pattern=CURSOR)] = "",
) -> Response:
    body = {"reference": reference, **({"amount": amount} if amount else {})}
    call = backends.call(
        session, "incentives", "POST", f"/partners/{segment(partner_id)}/payouts", json=body
    )
    message, status = await outcome(call, "Not paid", PAID)
    # The page as finance had it (found in review: a payment answered the unfiltered first
    # page, losing the period, state and page being worked through).
    return await payouts_page(
        request,
        session,
        backends,
        period=period,
        state=state,
        partner=partner,
        after=after,
        message=message,
        status=status,
    )
