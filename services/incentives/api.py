"""HTTP API of incentives: statements and balances (a partner sees only its own), programs,
what-if, MDF claims and their decisions, payouts.

No `from __future__ import annotations` here: FastAPI resolves the dependency annotations
defined inside build_router at definition time.
"""

from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from services.incentives.credits import evaluate, load_context
from services.incentives.domain.programs import IncentivePrograms
from services.incentives.funds import ClaimConflict, decide_claim, now, read_fund, request_claim
from services.incentives.statements import PayoutRefused, balance, record_payout, statement
from shared.auth import Caller, caller_dependency, require_admin
from shared.service import Platform

PERIOD_PATTERN = r"^\d{4}-(Q[1-4]|0[1-9]|1[0-2])$"


class WhatIfIn(BaseModel):
    """A hypothetical credit: what would it earn today?"""

    model_config = ConfigDict(extra="forbid")

    partner_id: str | None = Field(default=None, description="admins only: whose credit")
    amount: Decimal = Field(gt=0, max_digits=16, decimal_places=2)
    kind: Literal["sourced", "influenced"] = "sourced"
    customer_name: str | None = Field(default=None, max_length=200)
    customer_domain: str | None = Field(default=None, max_length=253)
    customer_country: str | None = Field(default=None, pattern="^[A-Z]{2}$")
    products: list[str] = Field(default_factory=list, max_length=50)
    co_sell: bool = False
    close_date: date | None = None
    deal_key: str = Field(default="what-if", max_length=200)
    tier: str | None = Field(default=None, description="assume this tier instead of the current")


class ClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Decimal = Field(gt=0, max_digits=16, decimal_places=2)
    description: str = Field(min_length=3, max_length=500)
    proof_reference: str = Field(
        min_length=1, max_length=500, description="invoice number, document URL, ..."
    )


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approve: bool
    note: str = Field(default="", max_length=500)


class PayoutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Decimal | None = Field(
        default=None, gt=0, max_digits=16, decimal_places=2, description="default: the balance"
    )
    reference: str = Field(min_length=1, max_length=200)


def _claim_out(row: Any) -> dict[str, Any]:
    out = dict(row)
    out["amount"] = str(out["amount"])
    for key in ("requested_at", "decided_at"):
        if out[key] is not None:
            out[key] = out[key].isoformat()
    return out


def build_router(platform: Platform, programs: IncentivePrograms) -> APIRouter:
    router = APIRouter()
    caller = caller_dependency(
        platform.settings.partner_token_secret, platform.settings.admin_token
    )
    AuthenticatedCaller = Annotated[Caller, Depends(caller)]  # noqa: N806 (a type alias)

    def visible(who: Caller, partner_id: str) -> None:
        # Another partner's data is indistinguishable from none at all.
        if not who.may_see(partner_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"partner {partner_id} not found")

    def acting_partner(who: Caller, partner_id: str | None) -> str:
        if who.partner_id is not None:
            if partner_id is not None and partner_id != who.partner_id:
                raise HTTPException(status.HTTP_403_FORBIDDEN, "a partner acts only for itself")
            return who.partner_id
        if partner_id is None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY, "admin requests must name partner_id"
            )
        return partner_id

    @router.get("/programs", tags=["programs"])
    async def list_programs(who: AuthenticatedCaller) -> dict[str, Any]:
        today = now().date()
        return {
            "programs": programs.model_dump(mode="json"),
            "active_spiffs": [s.id for s in programs.spiffs if s.starts <= today <= s.ends],
            "current_period": programs.period_of(today),
        }

    @router.get("/partners/{partner_id}/balance", tags=["ledger"])
    async def get_balance(partner_id: str, who: AuthenticatedCaller) -> dict[str, Any]:
        visible(who, partner_id)
        async with platform.pool.acquire() as conn:
            return await balance(conn, programs, partner_id)

    @router.get("/partners/{partner_id}/statement", tags=["ledger"])
    async def get_statement(
        partner_id: str,
        who: AuthenticatedCaller,
        period: Annotated[str | None, Query(pattern=PERIOD_PATTERN)] = None,
    ) -> dict[str, Any]:
        visible(who, partner_id)
        async with platform.pool.acquire() as conn:
            return await statement(
                conn, programs, partner_id, period or programs.period_of(now().date())
            )

    @router.post("/partners/{partner_id}/payouts", status_code=201, tags=["ledger"])
    async def pay_out(partner_id: str, body: PayoutIn, who: AuthenticatedCaller) -> dict[str, Any]:
        require_admin(who)
        try:
            async with platform.pool.acquire() as conn, conn.transaction():
                return await record_payout(
                    conn, platform.outbox, programs, partner_id, body.amount, body.reference
                )
        except PayoutRefused as error:
            raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error

    @router.post("/what-if", tags=["programs"])
    async def what_if(body: WhatIfIn, who: AuthenticatedCaller) -> dict[str, Any]:
        """What a hypothetical credit would earn now. Nothing is stored."""
        partner_id = acting_partner(who, body.partner_id)
        close_date = body.close_date or now().date()
        async with platform.pool.acquire() as conn:
            context = await load_context(
                conn,
                programs,
                partner_id=partner_id,
                deal_key=body.deal_key,
                domain=body.customer_domain,
                name=body.customer_name,
                country=body.customer_country,
                close_date=close_date,
            )
        if body.tier is not None:
            context = replace(context, tier=body.tier)
        earnings, accrual = evaluate(
            programs,
            context,
            credit_id="what-if",
            partner_id=partner_id,
            kind=body.kind,
            amount=body.amount,
            currency=programs.currency,
            products=frozenset(body.products),
            co_sell=body.co_sell,
            close_date=close_date,
            at=now(),
        )
        return {
            "partner_id": partner_id,
            "programs_version": programs.version,
            "currency": programs.currency,
            "period": earnings.period,
            "tier": context.tier,
            "new_logo": context.new_logo,
            "new_region": context.new_region,
            "lines": [
                {
                    "entry_type": line.entry_type.value,
                    "rule": line.rule,
                    "rate": None if line.rate is None else str(line.rate),
                    "uncapped_amount": str(line.uncapped_amount),
                    "amount": str(line.amount),
                    "note": line.note,
                }
                for line in earnings.lines
            ],
            "total": str(earnings.total),
            "notes": list(earnings.notes),
            "mdf_accrual": None if accrual is None else str(accrual.amount),
        }

    @router.get("/partners/{partner_id}/mdf", tags=["mdf"])
    async def get_fund(partner_id: str, who: AuthenticatedCaller) -> dict[str, Any]:
        visible(who, partner_id)
        async with platform.pool.acquire() as conn:
            return await read_fund(conn, partner_id)

    @router.post("/mdf/claims", status_code=201, tags=["mdf"])
    async def create_claim(
        body: ClaimIn, who: AuthenticatedCaller, partner_id: str | None = None
    ) -> dict[str, Any]:
        acting = acting_partner(who, partner_id)
        async with platform.pool.acquire() as conn, conn.transaction():
            claim_id, reason, available_now = await request_claim(
                conn,
                programs,
                partner_id=acting,
                amount=body.amount,
                description=body.description,
                proof_reference=body.proof_reference,
            )
        if claim_id is None:
            raise HTTPException(status.HTTP_409_CONFLICT, reason)
        return {
            "claim_id": claim_id,
            "partner_id": acting,
            "status": "requested",
            "amount": str(body.amount),
            "currency": programs.currency,
            "fund_available": str(available_now),
        }

    @router.get("/mdf/claims", tags=["mdf"])
    async def list_claims(who: AuthenticatedCaller, limit: int = 100) -> list[dict[str, Any]]:
        rows = await platform.pool.fetch(
            """SELECT * FROM mdf_claims WHERE ($1::text IS NULL OR partner_id = $1)
               ORDER BY requested_at DESC LIMIT $2""",
            who.partner_id,
            min(max(limit, 1), 500),
        )
        return [_claim_out(r) for r in rows]

    @router.get("/mdf/claims/{claim_id}", tags=["mdf"])
    async def get_claim(claim_id: str, who: AuthenticatedCaller) -> dict[str, Any]:
        row = await platform.pool.fetchrow("SELECT * FROM mdf_claims WHERE claim_id = $1", claim_id)
        if row is None or not who.may_see(row["partner_id"]):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"claim {claim_id} not found")
        return _claim_out(row)

    @router.post("/mdf/claims/{claim_id}/decision", tags=["mdf"])
    async def decide(claim_id: str, body: DecisionIn, who: AuthenticatedCaller) -> dict[str, Any]:
        require_admin(who)
        try:
            async with platform.pool.acquire() as conn, conn.transaction():
                decided = await decide_claim(
                    conn, platform.outbox, programs, claim_id, approve=body.approve, note=body.note
                )
        except ClaimConflict as error:
            raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
        if decided is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"claim {claim_id} not found")
        return decided

    return router
