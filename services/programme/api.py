"""HTTP API of programme: the programme KPIs, for the vendor's channel team and finance (no
partner sees the programme as a whole); a partner's joint business plans and quarterly
reviews, proposed and reviewed by channel managers, answered by the partner's admins and read
by the partner's people."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Path, Query

from services.programme import book, kpis, plans, views, voice
from services.programme.book_schemas import ManagerKey
from services.programme.domain.plans import Goals, check_plan_currency
from services.programme.domain.quarters import QUARTER_PATTERN, Quarter, QuarterRange
from services.programme.schemas import (
    AnswerIn,
    AnswerList,
    CouncilMemberIn,
    CouncilMemberOut,
    CouncilOut,
    KpiFiltersOut,
    KpiReport,
    MeetingIn,
    MeetingOut,
    PlanAnswerIn,
    PlanIn,
    PlanList,
    PlanOut,
    ReviewIn,
    ReviewList,
    ReviewOut,
    SurveyIn,
    SurveyList,
    SurveyOut,
    SurveySentOut,
)
from services.programme.settings import ProgrammeSettings
from services.programme.views import Filters
from shared.clock import now
from shared.db import Connection
from shared.errors import NotFound, Unprocessable
from shared.events.partners import PartnerType
from shared.http import (
    AdminDep,
    CallerDep,
    PlatformDep,
    Provided,
    api_router,
    own_partner,
    require_role,
)
from shared.identity import Caller, Role
from shared.inputs import Ident

router = api_router()

ProgrammeReaderDep = Annotated[Caller, require_role(Role.CHANNEL_MANAGER, Role.FINANCE)]
QuarterParam = Annotated[
    str | None, Query(pattern=QUARTER_PATTERN, description="e.g. 2026-Q1", examples=["2026-Q1"])
]
MAX_PARTNERS = 200


def quarter_range(from_quarter: str | None, to_quarter: str | None) -> QuarterRange:
    try:
        return QuarterRange(
            Quarter.parse(from_quarter) if from_quarter else None,
            Quarter.parse(to_quarter) if to_quarter else None,
        )
    except ValueError as error:
        raise Unprocessable(str(error)) from error


@router.get("/kpis", tags=["kpis"])
async def programme_kpis(
    who: ProgrammeReaderDep,
    platform: PlatformDep,
    from_quarter: QuarterParam = None,
    to_quarter: QuarterParam = None,
    tier: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")] = None,
    partner_type: PartnerType | None = None,
    region: Annotated[
        str | None, Query(pattern=r"^[A-Z]{2}$", description="a country (ISO 3166-1 alpha-2)")
    ] = None,
    partner_id: Annotated[
        list[Ident] | None,
        Query(max_length=MAX_PARTNERS, description="only these partners"),
    ] = None,
    manager: Annotated[
        ManagerKey | None, Query(description="only the partners this account manager has now")
    ] = None,
) -> KpiReport:
    """Programme KPIs over the quarters asked for (both included; none: all time): partner-
    sourced and -influenced revenue by quarter, tier, type and region; incentive and MDF
    spend against attributed revenue; the share of onboarding and registration decisions
    made without a person and the time to decision; active and churned partners and the time
    to a first deal. README "Programme KPIs" defines each figure."""
    quarters = quarter_range(from_quarter, to_quarter)
    partners = sorted(set(partner_id)) if partner_id else None
    if manager is not None:  # a manager's book: the partners asked for that are in it
        async with platform.pool.acquire() as conn:
            in_book = await book.manager_partner_ids(conn, manager)
        partners = sorted(set(in_book) & set(partners) if partners is not None else in_book)
    filters = Filters(
        quarters.starts,
        quarters.ends,
        partners,
        tier,
        partner_type.value if partner_type is not None else None,
        region,
    )
    shown = KpiFiltersOut(
        from_quarter=from_quarter,
        to_quarter=to_quarter,
        tier=tier,
        partner_type=filters.partner_type,
        region=region,
        partner_ids=partners or [],
        manager=manager,
    )
    async with platform.pool.acquire() as conn:
        return await kpis.report(conn, filters, shown)


# ---- joint business plans and quarterly business reviews

SettingsDep = Annotated[ProgrammeSettings, Provided(ProgrammeSettings)]
PartnerAdminDep = Annotated[Caller, require_role(Role.PARTNER_ADMIN)]
Year = Annotated[int, Path(ge=2000, le=2100)]


async def shown_plans(
    conn: Connection, partner_id: str, year: int | None, rules: tuple[str, ...]
) -> list[PlanOut]:
    """The partner's plans (of `year`, else all) as shown: with the partner's standing now."""
    planned = await views.plans(conn, partner_id, year, now().date(), rules)
    return await book.with_standings(conn, partner_id, planned)


async def shown_reviews(conn: Connection, partner_id: str, year: int) -> list[ReviewOut]:
    """The reviews of the partner's plan for `year` as shown: with the partner's standing now."""
    recorded = await views.reviews(conn, partner_id, year)
    return await book.with_standings(conn, partner_id, recorded)


async def one_plan(
    platform: PlatformDep, partner_id: str, year: int, rules: tuple[str, ...]
) -> PlanOut:
    async with platform.pool.acquire() as conn:
        found = await shown_plans(conn, partner_id, year, rules)
    if not found:
        raise NotFound(f"no business plan for {year}")
    return found[0]


@router.put("/partners/{partner_id}/plans/{year}", tags=["plans"])
async def propose_plan(
    partner_id: str,
    year: Year,
    body: PlanIn,
    who: AdminDep,
    platform: PlatformDep,
    settings: SettingsDep,
) -> PlanOut:
    """Propose the partner's plan for the year, or revise it (the next revision is proposed
    again: changed goals need the partner's acceptance again)."""
    goals = Goals(
        body.goals.sourced_revenue,
        body.goals.certifications,
        body.goals.new_logos,
        body.goals.co_marketing_campaigns,
    )
    check_plan_currency(body.currency, settings.reporting_currency)
    async with platform.transaction() as conn:
        await plans.propose(conn, who, partner_id, year, body.currency, goals, body.note, now())
    return await one_plan(platform, partner_id, year, settings.new_logo_rules)


@router.post("/partners/{partner_id}/plans/{year}/answer", tags=["plans"])
async def answer_plan(
    partner_id: str,
    year: Year,
    body: PlanAnswerIn,
    who: PartnerAdminDep,
    platform: PlatformDep,
    settings: SettingsDep,
) -> PlanOut:
    """The partner accepts or declines the proposed plan (409 for a plan not proposed)."""
    own_partner(who, partner_id)
    async with platform.transaction() as conn:
        await plans.respond(conn, who, partner_id, year, body, now())
    return await one_plan(platform, partner_id, year, settings.new_logo_rules)


@router.get("/partners/{partner_id}/plans", tags=["plans"])
async def list_plans(
    partner_id: str, who: CallerDep, platform: PlatformDep, settings: SettingsDep
) -> PlanList:
    own_partner(who, partner_id)
    async with platform.pool.acquire() as conn:
        shown = await shown_plans(conn, partner_id, None, settings.new_logo_rules)
    return PlanList(items=shown)


@router.get("/partners/{partner_id}/plans/{year}", tags=["plans"])
async def get_plan(
    partner_id: str, year: Year, who: CallerDep, platform: PlatformDep, settings: SettingsDep
) -> PlanOut:
    """The plan, its history, and its goals against the year's actuals so far."""
    own_partner(who, partner_id)
    return await one_plan(platform, partner_id, year, settings.new_logo_rules)


@router.post("/partners/{partner_id}/plans/{year}/reviews", tags=["plans"], status_code=201)
async def record_review(
    partner_id: str,
    year: Year,
    body: ReviewIn,
    who: AdminDep,
    platform: PlatformDep,
    settings: SettingsDep,
) -> ReviewOut:
    """Record a quarterly business review of the accepted plan (one per quarter)."""
    try:
        quarter = Quarter.parse(body.quarter)
    except ValueError as error:
        raise Unprocessable(str(error)) from error
    async with platform.transaction() as conn:
        review_id = await plans.review(
            conn,
            who,
            partner_id,
            year,
            quarter,
            body.summary,
            body.actions,
            settings.new_logo_rules,
            now(),
        )
        shown = await shown_reviews(conn, partner_id, year)
    return next(r for r in shown if r.review_id == review_id)


@router.get("/partners/{partner_id}/plans/{year}/reviews", tags=["plans"])
async def list_reviews(
    partner_id: str, year: Year, who: CallerDep, platform: PlatformDep
) -> ReviewList:
    own_partner(who, partner_id)
    async with platform.pool.acquire() as conn:
        shown = await shown_reviews(conn, partner_id, year)
    return ReviewList(items=shown)


# ---- partner voice: surveys and the advisory council

PartnerPeopleDep = Annotated[Caller, require_role(Role.PARTNER_USER, Role.PARTNER_ADMIN)]


@router.post("/surveys", tags=["voice"], status_code=201)
async def send_survey(body: SurveyIn, who: AdminDep, platform: PlatformDep) -> SurveySentOut:
    """Send a satisfaction survey now to the active partners of the audience: each is told
    through the notifications service (kind `survey`)."""
    async with platform.transaction() as conn:
        survey_id, asked = await voice.send_survey(
            conn,
            platform.outbox,
            who,
            body.question,
            body.tiers,
            [t.value for t in body.partner_types],
            body.closes_at,
            now(),
        )
    return SurveySentOut(survey_id=survey_id, recipients=asked)


@router.get("/surveys", tags=["voice"])
async def list_surveys(who: CallerDep, platform: PlatformDep) -> SurveyList:
    """Channel managers: the latest 200 surveys with their results; a partner's people: the
    latest 200 sent to their partner, and whether they answered."""
    async with platform.pool.acquire() as conn:
        return await views.surveys(conn, who)


@router.get("/surveys/{survey_id}", tags=["voice"])
async def get_survey(survey_id: uuid.UUID, who: CallerDep, platform: PlatformDep) -> SurveyOut:
    async with platform.pool.acquire() as conn:
        row = await views.survey_for(conn, survey_id, who.partner_id)
        if row is None:
            raise NotFound(f"survey {survey_id} not found")
        return await views.survey_out(conn, row, who)


@router.post("/surveys/{survey_id}/answers", tags=["voice"], status_code=201)
async def answer_survey(
    survey_id: uuid.UUID, body: AnswerIn, who: PartnerPeopleDep, platform: PlatformDep
) -> SurveyOut:
    """One answer per survey and person, while the survey is open (409 for a second)."""
    async with platform.transaction() as conn:
        await voice.answer(conn, platform.outbox, who, survey_id, body.score, body.comment, now())
        row = await views.survey_for(conn, survey_id, who.partner_id)
        return await views.survey_out(conn, row, who)


@router.get("/surveys/{survey_id}/answers", tags=["voice"])
async def list_answers(
    survey_id: uuid.UUID,
    who: AdminDep,
    platform: PlatformDep,
    after: Annotated[
        uuid.UUID | None, Query(description="`next_after` of the page before (an answer_id)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AnswerList:
    """The answers with their comments, for the channel team to follow up, in the order they
    came, a page at a time."""
    async with platform.pool.acquire() as conn:
        if await views.survey_for(conn, survey_id, None) is None:
            raise NotFound(f"survey {survey_id} not found")
        return await views.answers(conn, survey_id, after, limit)


@router.put("/council/members/{partner_id}", tags=["council"])
async def seat_council_member(
    partner_id: str, body: CouncilMemberIn, who: AdminDep, platform: PlatformDep
) -> CouncilMemberOut:
    """Seat a partner on the advisory council, or change its seat (`left_on`: stepped down)."""
    async with platform.transaction() as conn:
        await voice.seat_member(
            conn,
            who,
            partner_id,
            body.representative,
            body.role,
            body.joined_on,
            body.left_on,
            now(),
        )
    return CouncilMemberOut(partner_id=partner_id, **body.model_dump())


@router.post("/council/meetings", tags=["council"], status_code=201)
async def record_council_meeting(
    body: MeetingIn, who: AdminDep, platform: PlatformDep
) -> MeetingOut:
    """A meeting: who attended (members seated that day), the agenda, notes and decisions."""
    async with platform.transaction() as conn:
        meeting_id = await voice.record_meeting(
            conn,
            who,
            body.held_on,
            body.attendees,
            body.agenda,
            body.notes,
            [d.model_dump(mode="json") for d in body.decisions],
            now(),
        )
        council = await views.council(conn)
    return next(m for m in council.meetings if m.meeting_id == meeting_id)


@router.get("/council", tags=["council"])
async def get_council(who: AdminDep, platform: PlatformDep) -> CouncilOut:
    async with platform.pool.acquire() as conn:
        return await views.council(conn)
