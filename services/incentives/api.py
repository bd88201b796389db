"""HTTP API of incentives: programs and what-if, balances and statements (a partner sees only
its own), payouts, MDF funds, claims and their decisions."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query

from services.incentives import mdf_claims, payouts, views
from services.incentives.domain.programs import IncentivePrograms
from services.incentives.domain.quarters import check_period, last_quarters
from services.incentives.domain.surroundings import Subject
from services.incentives.schemas import (
    PERIOD_PATTERN,
    BalanceOut,
    ClaimDecisionOut,
    ClaimIn,
    ClaimOut,
    ClaimRequestedOut,
    DecisionIn,
    EarningsOut,
    FundOut,
    HeldCreditOut,
    PayoutIn,
    PayoutOut,
    ProgramsOut,
    StatementOut,
    WhatIfIn,
    WhatIfOut,
)
from services.incentives.what_if import Hypothesis, what_if
from shared.audit import record_action
from shared.clock import now
from shared.errors import Unprocessable
from shared.http import (
    PARTNER_OR_MANAGER,
    AdminDep,
    CallerDep,
    PlatformDep,
    Provided,
    acting_partner,
    api_router,
    own_partner,
    partners_own,
    require_role,
)
from shared.identity import Caller, Role
from shared.inputs import Ident, ListOrder

ProgramsDep = Annotated[IncentivePrograms, Provided(IncentivePrograms)]
# Finance records payouts; it reads the ledger as partners and channel managers do.
FinanceDep = Annotated[Caller, require_role(Role.FINANCE)]
LedgerReaderDep = Annotated[Caller, require_role(*PARTNER_OR_MANAGER, Role.FINANCE)]
# What waits to be booked is the programme's view, not a partner's.
ProgrammeReaderDep = Annotated[Caller, require_role(Role.CHANNEL_MANAGER, Role.FINANCE)]

router = api_router()


def asked_period(programs: IncentivePrograms, period: str | None) -> str | None:
    """The period a route is asked for (None: none named), in the form the programme books
    (a quarter, or a month), of a year 1900-9999; else 422 naming the form expected."""
    if period is None:
        return None
    try:
        return check_period(period, programs.period)
    except ValueError as refused:
        raise Unprocessable(str(refused)) from None


# ---- programs


@router.get("/programs", tags=["programs"])
async def list_programs(who: CallerDep, programs: ProgramsDep) -> ProgramsOut:
    today = now().date()
    return ProgramsOut(
        programs=programs,
        active_spiffs=programs.active_spiffs(today),
        current_period=programs.period_of(today),
    )


@router.post("/what-if", tags=["programs"])
async def post_what_if(
    body: WhatIfIn, who: CallerDep, platform: PlatformDep, programs: ProgramsDep
) -> WhatIfOut:
    """What a hypothetical credit would earn now. Nothing is stored."""
    partner_id = acting_partner(who, body.partner_id)
    close_date = body.close_date or now().date()
    hypothesis = Hypothesis(
        subject=Subject.of(
            programs,
            credit_id="what-if",
            partner_id=partner_id,
            deal_key=body.deal_key,
            domain=body.customer_domain,
            name=body.customer_name,
            country=body.customer_country,
            close_date=close_date,
        ),
        kind=body.kind,
        amount=body.amount,
        products=frozenset(body.products),
        co_sell=body.co_sell,
        close_date=close_date,
        tier=body.tier,
        partners_view=who.partner_id is not None,
    )
    async with platform.pool.acquire() as conn:
        return await what_if(conn, programs, hypothesis)


# ---- the ledger


@router.get("/partners/{partner_id}/balance", tags=["ledger"])
async def get_balance(
    partner_id: str, who: LedgerReaderDep, platform: PlatformDep, programs: ProgramsDep
) -> BalanceOut:
    own_partner(who, partner_id)
    async with platform.pool.acquire() as conn:
        return await views.balance(conn, programs, partner_id)


@router.get("/partners/{partner_id}/statement", tags=["ledger"])
async def get_statement(
    partner_id: str,
    who: LedgerReaderDep,
    platform: PlatformDep,
    programs: ProgramsDep,
    period: Annotated[str | None, Query(pattern=PERIOD_PATTERN)] = None,
) -> StatementOut:
    """Opening balance, the period's entries (default: this period), totals, closing balance.
    The period is in the programme's form: 2026-Q4 when it books by quarter, 2026-11 by month."""
    own_partner(who, partner_id)
    asked = asked_period(programs, period) or programs.period_of(now().date())
    async with platform.pool.acquire() as conn:
        return await views.statement(conn, programs, partner_id, asked)


@router.get("/credits/held", tags=["ledger"])
async def list_held_credits(
    who: ProgrammeReaderDep,
    platform: PlatformDep,
    partner_id: Annotated[Ident | None, Query(description="one partner's only")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[HeldCreditOut]:
    """Credits waiting for their partner to be active: booked (or refused, with the reason)
    when onboarding's next state of that partner arrives."""
    return await views.held_credits(platform.pool, partner_id, limit)


@router.post("/partners/{partner_id}/payouts", status_code=201, tags=["ledger"])
async def pay_out(
    partner_id: str, body: PayoutIn, who: FinanceDep, platform: PlatformDep, programs: ProgramsDep
) -> PayoutOut:
    """Pay the partner out of its balance (all of it when no amount is named). Once per
    `reference`: a retry asking for the same amount (or again for the whole balance) answers
    with the payout recorded under it (201, as the first time; nothing is paid again); another
    amount under it is a 409. A partner that lost access (suspended, expelled, rejected) is
    not paid: 409, its balance held."""
    programs.check_amount(body.amount)
    async with platform.transaction() as conn:
        paid, new = await payouts.record_payout(
            conn, platform.outbox, programs, partner_id, body.amount, body.reference
        )
        if new:
            await record_action(conn, who, "payout.record", f"{partner_id}/{body.reference}")
    return PayoutOut.model_validate(paid.model_dump())


# ---- MDF


@router.get("/partners/{partner_id}/mdf", tags=["mdf"])
async def get_fund(partner_id: str, who: CallerDep, platform: PlatformDep) -> FundOut:
    own_partner(who, partner_id)
    async with platform.pool.acquire() as conn:
        return await views.fund(conn, partner_id)


@router.post("/mdf/claims", status_code=201, tags=["mdf"])
async def create_claim(
    body: ClaimIn,
    who: CallerDep,
    platform: PlatformDep,
    programs: ProgramsDep,
    partner_id: Annotated[Ident | None, Query(description="a channel manager's: whose")] = None,
) -> ClaimRequestedOut:
    """Claim money from the fund with proof (409 if more than the fund has available now).
    Once per `proof_reference`: the same reference asking for the same amount and description
    answers with the claim recorded under it (201, as the first time, with its status now;
    nothing is claimed again); another amount or description under it is a 409."""
    acting = acting_partner(who, partner_id)
    programs.check_amount(body.amount)
    async with platform.transaction() as conn:
        requested = await mdf_claims.request_claim(conn, programs, body.ask(acting))
        if requested.new:
            await record_action(conn, who, "mdf_claim.request", requested.claim_id)
    return ClaimRequestedOut(
        claim_id=requested.claim_id,
        partner_id=acting,
        status=requested.status,
        amount=requested.amount,
        currency=programs.currency,
        fund_available=requested.fund_available,
    )


@router.get("/mdf/claims", tags=["mdf"])
async def list_claims(
    who: CallerDep,
    platform: PlatformDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    status: Literal["requested", "approved", "rejected"] | None = None,
    order: ListOrder = "newest",
) -> list[ClaimOut]:
    """The caller's claims (a channel manager: every partner's), the newest first or the
    oldest (`order=oldest&status=requested`: the queue waiting for a decision)."""
    return await views.claims(platform.pool, who.partner_id, limit, status, order == "oldest")


@router.get("/mdf/claims/{claim_id}", tags=["mdf"])
async def get_claim(claim_id: str, who: CallerDep, platform: PlatformDep) -> ClaimOut:
    return partners_own(who, await views.claim(platform.pool, claim_id), f"claim {claim_id}")


@router.post("/mdf/claims/{claim_id}/decision", tags=["mdf"])
async def decide(
    claim_id: str, body: DecisionIn, who: AdminDep, platform: PlatformDep, programs: ProgramsDep
) -> ClaimDecisionOut:
    async with platform.transaction() as conn:
        decided = await mdf_claims.decide_claim(
            conn, platform.outbox, programs, claim_id, approve=body.approve, note=body.note
        )
        await record_action(conn, who, "mdf_claim.decide", claim_id)
    return ClaimDecisionOut.model_validate(decided.model_dump())


@router.get("/partners/{partner_id}/earnings", tags=["ledger"])
async def get_earnings(
    partner_id: str,
    who: LedgerReaderDep,
    platform: PlatformDep,
    programs: ProgramsDep,
    quarters: Annotated[int, Query(ge=1, le=40)] = 8,
) -> EarningsOut:
    """Earnings by calendar quarter, the last `quarters` up to this one (oldest first, zero
    where nothing was booked): earned, taken back and net; payouts are not earnings."""
    own_partner(who, partner_id)
    wanted = last_quarters(now().date(), quarters)
    async with platform.pool.acquire() as conn:
        return await views.earnings_by_quarter(conn, programs, partner_id, wanted)
