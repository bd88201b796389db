"""HTTP API of MDF pre-approvals: a partner asks for a campaign's budget and claims against it
with proof; a channel manager approves (reserving it in the fund) or rejects it. A partner sees
only its own (another partner's answers 404, as a missing one)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query

from services.incentives import mdf_preapprovals, preapproval_views
from services.incentives.api import ProgramsDep
from services.incentives.domain.preapprovals import CampaignBudget
from services.incentives.mdf_preapprovals import PreapprovalPolicy
from services.incentives.preapproval_schemas import (
    PreapprovalDecisionIn,
    PreapprovalIn,
    PreapprovalOut,
    PreapprovedClaimIn,
    PreapprovedClaimOut,
)
from shared.audit import record_action
from shared.db import from_row
from shared.http import (
    AdminDep,
    CallerDep,
    PlatformDep,
    Provided,
    acting_partner,
    api_router,
    partners_own,
)
from shared.inputs import Ident, ListOrder

PolicyDep = Annotated[PreapprovalPolicy, Provided(PreapprovalPolicy)]

preapprovals = api_router(tags=["mdf"])


@preapprovals.post("/mdf/preapprovals", status_code=201)
async def request_preapproval(
    body: PreapprovalIn,
    who: CallerDep,
    platform: PlatformDep,
    programs: ProgramsDep,
    partner_id: Annotated[Ident | None, Query()] = None,
) -> PreapprovalOut:
    """Ask for a campaign's MDF budget before spending it (a channel manager names
    `partner_id`). Retrying with the same `reference` and budget returns the same request."""
    acting = acting_partner(who, partner_id)
    programs.check_amount(body.amount)
    budget = from_row(CampaignBudget, body.model_dump(), activity_kind=body.activity_kind.value)
    async with platform.transaction() as conn:
        row, new = await mdf_preapprovals.request(conn, platform.outbox, programs, acting, budget)
        if new:
            await record_action(conn, who, "mdf_preapproval.request", row["preapproval_id"])
    return PreapprovalOut.model_validate(dict(row))


@preapprovals.get("/mdf/preapprovals")
async def list_preapprovals(
    who: CallerDep,
    platform: PlatformDep,
    campaign_id: Annotated[Ident | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    status: Literal["requested", "approved", "rejected", "expired"] | None = None,
    order: ListOrder = "newest",
) -> list[PreapprovalOut]:
    """The caller's pre-approvals (a channel manager: every partner's), of one campaign or
    status if given, the newest first or the oldest (`order=oldest&status=requested`: the
    budgets waiting for a decision)."""
    return await preapproval_views.preapprovals(
        platform.pool, who.partner_id, campaign_id, limit, status, order == "oldest"
    )


@preapprovals.get("/mdf/preapprovals/{preapproval_id}")
async def get_preapproval(
    preapproval_id: str, who: CallerDep, platform: PlatformDep
) -> PreapprovalOut:
    found = await preapproval_views.preapproval(platform.pool, preapproval_id)
    return partners_own(who, found, f"pre-approval {preapproval_id}")


@preapprovals.post("/mdf/preapprovals/{preapproval_id}/decision")
async def decide_preapproval(
    preapproval_id: str,
    body: PreapprovalDecisionIn,
    who: AdminDep,
    platform: PlatformDep,
    policy: PolicyDep,
) -> PreapprovalOut:
    """Approve (reserves the amount in the partner's fund; 409 if the fund cannot cover it)
    or reject with a reason (`note`). Repeating the decision taken returns it unchanged."""
    async with platform.transaction() as conn:
        row = await mdf_preapprovals.decide(
            conn, platform.outbox, policy, preapproval_id, approve=body.approve, note=body.note
        )
        await record_action(conn, who, "mdf_preapproval.decide", preapproval_id)
    return PreapprovalOut.model_validate(dict(row))


@preapprovals.post("/mdf/preapprovals/{preapproval_id}/claims", status_code=201)
async def claim_against_preapproval(
    preapproval_id: str,
    body: PreapprovedClaimIn,
    who: CallerDep,
    platform: PlatformDep,
    programs: ProgramsDep,
) -> PreapprovedClaimOut:
    """A claim with proof against an approved pre-approval, up to what is left of it; decided
    like any claim (`POST /mdf/claims/{claim_id}/decision`). Once per `proof_reference`, as
    any claim: a repeat answers with the claim recorded under it (201), another amount,
    description or pre-approval under it is a 409."""
    stored = await preapproval_views.preapproval(platform.pool, preapproval_id)
    found = partners_own(who, stored, f"pre-approval {preapproval_id}")
    programs.check_amount(body.amount)
    async with platform.transaction() as conn:
        requested = await mdf_preapprovals.request_claim(
            conn, programs, preapproval_id, body.ask(found.partner_id)
        )
        if requested.new:
            await record_action(conn, who, "mdf_claim.request", requested.claim_id)
    return PreapprovedClaimOut(
        claim_id=requested.claim_id,
        preapproval_id=preapproval_id,
        partner_id=found.partner_id,
        status=requested.status,
        amount=requested.amount,
        currency=programs.currency,
        preapproval_left=requested.preapproval_left,
    )
