"""HTTP API of attribution: touchpoints reported by partner apps and CRMs, and the read side
(per-deal split with reasons, per-partner revenue, health score). Partners see only their own:
another partner's figures answer 404, as a missing partner's do."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Response, status

from services.attribution import crm_links, views
from services.attribution.domain.config import AttributionConfig
from services.attribution.domain.crm_links import CrmLink, LinkStatus
from services.attribution.domain.reporting import RevenueQuery
from services.attribution.domain.touchpoints import ReportedTouchpoint
from services.attribution.health_scoring import run_health
from services.attribution.schemas import (
    ConfigOut,
    CrmLinkChangeOut,
    CrmLinkConfirmationIn,
    CrmLinkIn,
    CrmLinkOut,
    DealAttributionOut,
    HealthHistoryOut,
    HealthOut,
    HealthRunIn,
    HealthRunOut,
    LinkPosition,
    ParkedCreditOut,
    RevenueOut,
    SettlementOut,
    TouchpointIn,
    TouchpointReportOut,
    UnmatchedDealOut,
    UnmatchedReferenceOut,
    WaitingTouchpointOut,
)
from services.attribution.touchpoints import TouchpointReport, approve_touchpoint, report_touchpoint
from shared.audit import record_run_asked
from shared.clock import now
from shared.db import Connection
from shared.errors import NotFound, Unprocessable
from shared.events.crm import CrmSource
from shared.http import (
    AdminDep,
    CallerDep,
    PlatformDep,
    Provided,
    api_router,
    own_partner,
    run_moment,
)
from shared.inputs import Day, DealKey, Ident

ConfigDep = Annotated[AttributionConfig, Provided(AttributionConfig)]

router = api_router()


@router.post(
    "/touchpoints",
    status_code=201,
    tags=["touchpoints"],
    responses={200: {"model": TouchpointReportOut, "description": "reported before: as recorded"}},
)
async def post_touchpoint(
    body: TouchpointIn,
    who: CallerDep,
    platform: PlatformDep,
    config: ConfigDep,
    response: Response,
) -> TouchpointReportOut:
    touchpoint = ReportedTouchpoint.report(
        caller_partner_id=who.partner_id,
        named_partner_id=body.partner_id,
        deal_key=body.deal_key,
        kind=body.kind,
        occurred_at=body.occurred_at,
        source=body.source,
        external_id=body.external_id,
        received_at=now(),
        campaign_id=body.campaign_id,
    )
    report = await report_touchpoint(platform.pool, platform.outbox, config, touchpoint, who)
    if not report.created:
        response.status_code = status.HTTP_200_OK
    return _report_out(report, who.partner_id)


@router.post("/touchpoints/{touchpoint_id}/approve", tags=["touchpoints"])
async def post_touchpoint_approval(
    touchpoint_id: str, who: AdminDep, platform: PlatformDep, config: ConfigDep
) -> TouchpointReportOut:
    """A channel manager lets a waiting touchpoint count (its partner is not linked to the deal)."""
    report = await approve_touchpoint(platform.pool, platform.outbox, config, touchpoint_id, who)
    return _report_out(report, None)


@router.get("/touchpoints/waiting", tags=["touchpoints"])
async def get_waiting_touchpoints(
    who: AdminDep,
    platform: PlatformDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    after: Annotated[
        Ident | None, Query(description="the last touchpoint_id of the page before")
    ] = None,
    partner_id: Annotated[Ident | None, Query(description="only this partner's")] = None,
    deal_key: Annotated[DealKey | None, Query(description="only this deal's")] = None,
) -> list[WaitingTouchpointOut]:
    """Touchpoints whose partner is not linked to their deal: they wait for an approval. Oldest
    first, a page of `limit` after the touchpoint `after` names (422 if it names none); found
    in review: only the oldest 500 could be seen, and those never approved stay."""
    async with platform.pool.acquire() as conn:
        return await views.waiting_touchpoints(conn, limit, after, partner_id, deal_key)


def _report_out(report: TouchpointReport, partner_id: str | None) -> TouchpointReportOut:
    """The report as `partner_id` may see it: a partner not linked to the deal is answered as
    for a deal not known (its settlement told a probe whether any deal was open, lost or won,
    and its close date); its touchpoint waits for a channel manager either way."""
    settlement = report.settlement
    if partner_id is not None and partner_id not in report.linked:
        settlement = None
    return TouchpointReportOut(
        touchpoint_id=report.touchpoint_id,
        created=report.created,
        counted=report.counted,
        settlement=None if settlement is None else SettlementOut.of(settlement, partner_id),
    )


@router.get("/deals/{deal_key}/attribution", tags=["queries"])
async def get_deal(deal_key: str, who: CallerDep, platform: PlatformDep) -> DealAttributionOut:
    async with platform.pool.acquire() as conn:
        view = await views.deal_view(conn, deal_key, who.partner_id)
    if view is None:
        raise NotFound(f"deal {deal_key} not found")
    return view


@router.get("/partners/{partner_id}/revenue", tags=["queries"])
async def get_revenue(
    partner_id: str,
    who: CallerDep,
    platform: PlatformDep,
    config: ConfigDep,
    period: str = "month",
    since: Day | None = None,
    until: Day | None = None,
) -> RevenueOut:
    own_partner(who, partner_id)
    query = RevenueQuery.parse(period, since, until)
    async with platform.pool.acquire() as conn:
        return await views.partner_revenue(conn, config, partner_id, query)


@router.get("/partners/{partner_id}/health", tags=["queries"])
async def get_health(
    partner_id: str, who: CallerDep, platform: PlatformDep, config: ConfigDep
) -> HealthOut:
    own_partner(who, partner_id)
    async with platform.pool.acquire() as conn:
        return await views.partner_health(conn, config, partner_id, now().date())


@router.get("/partners/{partner_id}/health/history", tags=["queries"])
async def get_health_history(
    partner_id: str,
    who: CallerDep,
    platform: PlatformDep,
    since: Day | None = None,
    until: Day | None = None,
) -> HealthHistoryOut:
    """The partner's health as stored each day (the daily job, or a run), oldest first."""
    own_partner(who, partner_id)
    if since is not None and until is not None and since > until:
        raise Unprocessable(f"since {since} is after until {until}")
    async with platform.pool.acquire() as conn:
        return await views.health_history(conn, partner_id, since, until)


@router.post("/admin/health/run", tags=["queries"])
async def run_health_scoring(
    who: AdminDep, platform: PlatformDep, config: ConfigDep, body: HealthRunIn | None = None
) -> HealthRunOut:
    """Score every partner in the programme (or those named, each once) now, or as of
    `as_of`'s day, not waiting for the daily job; answers the scores announced (those that
    moved) and what happened to each partner (`not_found`: not a partner attribution knows)."""
    request = body or HealthRunIn()
    as_of = run_moment(request.as_of, platform)
    await record_run_asked(platform.pool, who, "health.run", as_of.isoformat())
    run = await run_health(platform.pool, platform.outbox, config, as_of, request.partner_ids)
    return HealthRunOut(
        day=as_of.date().isoformat(),
        announced={p: str(s) for p, s in run.announced.items()},
        done=run.done,
    )


@router.get("/config", tags=["config"])
async def get_config(who: AdminDep, config: ConfigDep) -> ConfigOut:
    return ConfigOut.model_validate(config.model_dump())


# -- CRM account -> partner links (channel managers only) ------------------------------------------


@router.post("/crm-links", status_code=201, tags=["crm-links"])
async def post_crm_link(body: CrmLinkIn, who: AdminDep, platform: PlatformDep) -> CrmLinkOut:
    """Propose that a CRM's partner reference stands for a partner (credits no one yet)."""
    link = CrmLink(body.source.value, body.external_id, body.partner_id, LinkStatus.PROPOSED)
    async with platform.transaction() as conn:
        await crm_links.propose(conn, link, who)
        return await _link_out(conn, body.source, body.external_id)


@router.post("/crm-links/{source}/{external_id}/confirm", tags=["crm-links"])
async def post_crm_link_confirmation(
    source: CrmSource,
    external_id: str,
    body: CrmLinkConfirmationIn,
    who: AdminDep,
    platform: PlatformDep,
    config: ConfigDep,
) -> CrmLinkChangeOut:
    """Confirm a proposed link for the partner named (the one the manager read it proposed
    for: 409 otherwise): the deals naming the reference are settled again. The answer is the
    link as this confirmation committed it."""
    async with platform.transaction() as conn:
        change = await crm_links.confirm(
            conn, platform.outbox, config, source.value, external_id, body.partner_id, who
        )
        link = await _link_out(conn, source, external_id)
    return CrmLinkChangeOut(link=link, changed=change.changed, deals_settled=change.deals_settled)


@router.post("/crm-links/{source}/{external_id}/remove", tags=["crm-links"])
async def post_crm_link_removal(
    source: CrmSource, external_id: str, who: AdminDep, platform: PlatformDep, config: ConfigDep
) -> CrmLinkChangeOut:
    """Remove a link: the deals naming the reference are settled again (unmatched)."""
    async with platform.transaction() as conn:
        change = await crm_links.remove(
            conn, platform.outbox, config, source.value, external_id, who
        )
    return CrmLinkChangeOut(link=None, changed=True, deals_settled=change.deals_settled)


@router.get("/crm-links", tags=["crm-links"])
async def get_crm_links(
    who: AdminDep,
    platform: PlatformDep,
    status: LinkStatus | None = None,
    after: Annotated[
        LinkPosition | None, Query(description="source:external_id of the last link before")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[CrmLinkOut]:
    """Links in (source, external_id) order, a page of `limit` after the one `after` names
    (spelt as a deal key is: `salesforce:001...`)."""
    source, external_id = after.split(":", 1) if after else ("", "")
    async with platform.pool.acquire() as conn:
        return await views.crm_links(
            conn, None if status is None else status.value, (source, external_id), limit
        )


@router.get("/crm-links/unmatched", tags=["crm-links"])
async def get_unmatched_references(
    who: AdminDep, platform: PlatformDep, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[UnmatchedReferenceOut]:
    """CRM partner references no confirmed link resolves, the most won deals first: each won
    deal naming one holds its credit parked until a manager confirms a link."""
    async with platform.pool.acquire() as conn:
        return await views.unmatched_references(conn, limit)


@router.get("/crm-links/unmatched/deals", tags=["crm-links"])
async def get_unmatched_deals(
    who: AdminDep,
    platform: PlatformDep,
    source: Annotated[CrmSource, Query()],
    partner_ref: Annotated[Ident, Query(description="the CRM's partner reference")],
    after: Annotated[DealKey | None, Query(description="the last deal key of the page before")] = (
        None
    ),
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[UnmatchedDealOut]:
    """The deals of one CRM naming an unmatched reference, in key order (none once a confirmed
    link resolves it)."""
    async with platform.pool.acquire() as conn:
        return await views.unmatched_deals(conn, source.value, partner_ref, after or "", limit)


@router.get("/credits/parked", tags=["queries"])
async def get_parked_credits(
    who: AdminDep,
    platform: PlatformDep,
    after: Annotated[DealKey | None, Query(description="the last deal key of the page before")] = (
        None
    ),
    limit: Annotated[int, Query(ge=1, le=500, description="deals on the page")] = 100,
) -> list[ParkedCreditOut]:
    """Credits won deals do not pay out, with why: the share of a partner out of the programme
    when the deal was won (withheld), a deal won without an amount. A page of whole deals in
    key order (all of a deal's rows on one page)."""
    async with platform.pool.acquire() as conn:
        return await views.parked_credits_page(conn, after or "", limit)


async def _link_out(conn: Connection, source: CrmSource, external_id: str) -> CrmLinkOut:
    link = await views.crm_link(conn, source.value, external_id)
    if link is None:
        raise NotFound(f"no link for {source.value} reference {external_id!r}")
    return link
