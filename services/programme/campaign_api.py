"""HTTP API of co-marketing campaigns: channel managers and partners create them, partners (or
their manager) report leads and pipeline, everyone allowed reads the record and its results
(attributed revenue through the campaign touchpoint, MDF cost, return per dollar). A partner
sees only the campaigns it runs, and only its own part of their figures."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from services.programme import campaigns
from services.programme.campaign_schemas import (
    CampaignDetailOut,
    CampaignEditIn,
    CampaignIn,
    CampaignOut,
    CancelIn,
    ResultsIn,
)
from shared.http import AdminDep, CallerDep, PlatformDep, api_router
from shared.inputs import Ident

campaign_router = api_router(tags=["campaigns"])


@campaign_router.post("/campaigns", status_code=201)
async def create_campaign(body: CampaignIn, who: CallerDep, platform: PlatformDep) -> CampaignOut:
    """A channel manager names the partners (known to the programme); a partner creates one
    for itself. MDF for it is asked for in incentives (`POST /mdf/preapprovals` naming the
    campaign id)."""
    async with platform.transaction() as conn:
        return await campaigns.create(conn, platform.outbox, who, body)


@campaign_router.get("/campaigns")
async def list_campaigns(
    who: CallerDep,
    platform: PlatformDep,
    partner_id: Annotated[Ident | None, Query(description="managers: one partner's")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[
        int, Query(ge=0, le=1_000_000, deprecated=True, description="pages by `after` now")
    ] = 0,
    after: Annotated[
        Ident | None, Query(description="the last campaign_id of the page before")
    ] = None,
) -> list[CampaignOut]:
    """The campaigns, latest-starting first, a page of `limit` after the campaign `after`
    names (422 if it names none in this list)."""
    async with platform.pool.acquire() as conn:
        return await campaigns.listing(conn, who, partner_id, limit, offset, after)


@campaign_router.get("/campaigns/{campaign_id}")
async def get_campaign(
    campaign_id: str, who: CallerDep, platform: PlatformDep
) -> CampaignDetailOut:
    async with platform.pool.acquire() as conn:
        return await campaigns.detail(conn, who, campaign_id)


@campaign_router.patch("/campaigns/{campaign_id}")
async def edit_campaign(
    campaign_id: str, body: CampaignEditIn, who: CallerDep, platform: PlatformDep
) -> CampaignDetailOut:
    """Change a campaign before it ends: its name, description, dates (the first day only
    before it comes) and, for a channel manager, its partners (joining any time, leaving only
    before the start and without an MDF pre-approval). 409 when the change is not allowed."""
    async with platform.transaction() as conn:
        return await campaigns.edit(conn, platform.outbox, who, campaign_id, body)


@campaign_router.post("/campaigns/{campaign_id}/results")
async def report_results(
    campaign_id: str, body: ResultsIn, who: CallerDep, platform: PlatformDep
) -> CampaignDetailOut:
    """Leads and pipeline of one of its partners so far (the latest report of each partner
    counts)."""
    async with platform.transaction() as conn:
        return await campaigns.report_results(conn, who, campaign_id, body)


@campaign_router.post("/campaigns/{campaign_id}/cancel")
async def cancel_campaign(
    campaign_id: str, body: CancelIn, who: AdminDep, platform: PlatformDep
) -> CampaignDetailOut:
    """A campaign that has not ended can be cancelled (409 otherwise)."""
    async with platform.transaction() as conn:
        return await campaigns.cancel(conn, platform.outbox, who, campaign_id, body.reason)
