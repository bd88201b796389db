"""Request and response bodies of the programme HTTP API. Money is a decimal string in the
programme's reporting currency (each row names it); ratios are decimal strings to four places;
durations are hours."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from services.programme.book_schemas import PartnerStandingOut
from services.programme.domain.quarters import QUARTER_PATTERN
from shared.events.partners import PartnerType
from shared.http import Timestamp
from shared.inputs import (
    CurrencyCode,
    Day,
    FreeText,
    Ident,
    Instant,
    Integer,
    Money,
    Name,
    check_money,
)


class KpiFiltersOut(BaseModel):
    from_quarter: str | None
    to_quarter: str | None
    tier: str | None
    partner_type: str | None
    region: str | None
    partner_ids: list[str]
    manager: str | None = Field(default=None, description="only this account manager's book")


class RevenueRow(BaseModel):
    """Attributed revenue net of reversals, by the quarter of the deal's close date and the
    partner's tier and type when the credit was issued."""

    quarter: str
    tier: str
    partner_type: str
    region: str = Field(description="the customer's country (ISO 3166-1 alpha-2), or unknown")
    currency: str
    sourced: Decimal = Field(description="partner-sourced revenue (PSR)")
    influenced: Decimal = Field(description="partner-influenced revenue (PIR)")


class RevenueTotal(BaseModel):
    currency: str
    sourced: Decimal
    influenced: Decimal


class SpendRow(BaseModel):
    """What the programme paid against what partners brought, per quarter."""

    quarter: str
    currency: str
    attributed_revenue: Decimal = Field(description="sourced + influenced revenue")
    incentives: Decimal = Field(description="rebates, kickers and SPIFFs earned, net of clawbacks")
    mdf_claimed: Decimal = Field(description="MDF spent: approved claims")
    mdf_accrued: Decimal = Field(description="MDF accrued to partners' funds, net of clawbacks")
    return_per_dollar: Decimal | None = Field(
        description="attributed_revenue / (incentives + mdf_claimed); null when nothing spent"
    )


class Durations(BaseModel):
    count: int = Field(description="how many waits were measured")
    p50_hours: float | None
    p90_hours: float | None


class DecisionShare(BaseModel):
    decisions: int
    approved: int = Field(
        description="decisions that said yes: applications qualified, registrations approved "
        "(or won, approved after the deal closed won)"
    )
    rejected: int = Field(description="decisions that said no")
    approval_share: Decimal | None = Field(description="approved / decisions")
    automatic: int = Field(description="decided without a person")
    automatic_share: Decimal | None = Field(description="automatic / decisions")
    time_to_decision: Durations


class AutomationOut(BaseModel):
    onboarding: DecisionShare = Field(description="applications decided (qualified or rejected)")
    registrations: DecisionShare = Field(description="deal registrations decided")
    target_share: Decimal = Field(description="the programme's stated goal")
    automatic_share: Decimal | None = Field(description="both kinds of decision together")
    target_met: bool | None


class PartnersOut(BaseModel):
    active: int = Field(description="partners active (or in requalification grace) now")
    suspended: int = Field(description="partners suspended now")
    churned: int = Field(description="partners expelled in the quarters asked for")
    time_to_first_deal: Durations = Field(
        description="from activation to the first credited (won) deal, partners activated in "
        "the quarters asked for"
    )


TOP_PARTNERS = 10  # a dashboard's leaderboard: enough to see who leads, small to read


class TopPartner(BaseModel):
    """One of the partners with the most attributed revenue in one currency."""

    partner_id: str
    currency: str
    tier: str = Field(description="the partner's tier now (unknown before its first event)")
    sourced: Decimal
    influenced: Decimal
    total: Decimal = Field(description="sourced + influenced")


# ---- joint business plans and quarterly business reviews


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


Count = Annotated[Integer, Field(ge=0, le=100_000)]


class GoalsIn(_Request):
    sourced_revenue: Money = Field(description="partner-sourced revenue for the year")
    certifications: Count = Field(description="competencies certified by the year's end")
    new_logos: Count = Field(description="deals won with customers new to the vendor")
    co_marketing_campaigns: Count = Field(
        description="co-marketing campaigns run: completed (not cancelled) within the year"
    )


class PlanIn(_Request):
    """A proposal (or a revision: goals changed after acceptance need accepting again)."""

    currency: CurrencyCode
    goals: GoalsIn
    note: Annotated[FreeText, Field(max_length=2000)] = ""

    @model_validator(mode="after")
    def _money_fits_currency(self) -> PlanIn:
        check_money(self.goals.sourced_revenue, self.currency, "goals.sourced_revenue")
        return self


class PlanAnswerIn(_Request):
    accept: bool
    revision: Integer = Field(
        ge=1,
        le=2**31 - 1,
        description="the plan's revision the partner read and answers: 409 when the plan has "
        "been revised since (the partner accepted goals it never saw: found from outside)",
    )
    note: Annotated[FreeText, Field(max_length=2000)] = ""


class GoalsOut(BaseModel):
    sourced_revenue: Decimal
    certifications: int
    new_logos: int
    co_marketing_campaigns: int


class LineOut(BaseModel):
    goal: str = Field(
        description="sourced_revenue | certifications | new_logos | co_marketing_campaigns"
    )
    source: str = Field(description="the service whose events give the actual")
    target: Decimal
    actual: Decimal
    attainment: Decimal | None = Field(description="actual / target; null for a target of 0")


class PlanEventOut(BaseModel):
    revision: int
    state: str
    goals: GoalsOut
    acted_by: str
    note: str
    at: Timestamp


# Shown beside a plan or a review (both are read by the partner's people and its manager).
CurrentStanding = Annotated[
    PartnerStandingOut | None,
    Field(
        description="the partner now (not as of the record): account manager, tier, type, "
        "health and annual review, from the programme's events"
    ),
]


class PlanOut(BaseModel):
    partner_id: str
    year: int
    revision: int
    state: str = Field(description="proposed | accepted | declined")
    currency: str
    goals: GoalsOut
    note: str
    proposed_by: str
    proposed_at: Timestamp
    responded_by: str | None
    responded_at: Timestamp | None
    response_note: str | None
    actuals_through: str = Field(description="the quarter the actuals run to")
    actuals: list[LineOut] = Field(description="the goals against the year's actuals so far")
    mdf_claims_approved: int = Field(
        default=0,
        description="MDF claims approved in the same period (co-marketing the vendor funded, "
        "from incentives), beside the campaigns run; no goal of its own",
    )
    history: list[PlanEventOut]
    standing: CurrentStanding = None


class PlanList(BaseModel):
    items: list[PlanOut]


class ReviewIn(_Request):
    quarter: Annotated[str, Field(pattern=QUARTER_PATTERN, examples=["2026-Q2"])]
    summary: Annotated[FreeText, Field(min_length=1, max_length=4000)]
    actions: list[Annotated[FreeText, Field(min_length=1, max_length=500)]] = Field(
        default_factory=list, max_length=20, description="what each side agreed to do next"
    )


class ReviewOut(BaseModel):
    review_id: uuid.UUID
    partner_id: str
    year: int
    quarter: str
    plan_revision: int
    lines: list[LineOut] = Field(
        description="the goals against the actuals from the year's start to the quarter's end, "
        "as they stood when the review was recorded"
    )
    mdf_claims_approved: int | None = Field(
        description="MDF claims approved from the year's start to the quarter's end, shown "
        "beside the lines when the review was recorded (no goal of its own); null for a review "
        "recorded before reviews kept it"
    )
    summary: str
    actions: list[str]
    recorded_by: str
    recorded_at: Timestamp
    standing: CurrentStanding = None


class ReviewList(BaseModel):
    items: list[ReviewOut]


# ---- partner voice: surveys, NPS, the advisory council


class NpsOut(BaseModel):
    responses: int
    promoters: int = Field(description="scores 9-10")
    passives: int = Field(description="scores 7-8")
    detractors: int = Field(description="scores 0-6")
    nps: Decimal | None = Field(description="% promoters - % detractors (-100 to 100), one decimal")


class NpsRow(NpsOut):
    quarter: str = Field(description="the quarter of the answers")
    tier: str = Field(description="the partner's tier when it answered")


class NpsReport(BaseModel):
    overall: NpsOut
    by_quarter_and_tier: list[NpsRow]


class SurveyIn(_Request):
    """A survey sent now to the active partners of the audience (no tier or type listed:
    every one), through their notifications."""

    question: Annotated[FreeText, Field(min_length=1, max_length=500)] | None = Field(
        default=None, description="default: the programme's NPS question"
    )
    tiers: list[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]] = Field(
        default_factory=list, max_length=20
    )
    partner_types: list[PartnerType] = Field(default_factory=list, max_length=7)
    closes_at: Instant


class SurveySentOut(BaseModel):
    survey_id: uuid.UUID
    recipients: int = Field(description="partners asked")


class SurveyOut(BaseModel):
    survey_id: uuid.UUID
    question: str
    closes_at: Timestamp
    created_at: Timestamp
    answered: bool = Field(description="whether the caller has answered it")
    results: NpsOut | None = Field(description="channel managers only: the answers so far")
    recipients: int | None = Field(description="channel managers only: partners asked")


class SurveyList(BaseModel):
    items: list[SurveyOut]


class AnswerIn(_Request):
    score: Annotated[
        Integer, Field(ge=0, le=10, description="0 = not at all likely, 10 = extremely")
    ]
    comment: Annotated[FreeText, Field(max_length=2000)] = ""


class AnswerOut(BaseModel):
    answer_id: uuid.UUID
    survey_id: uuid.UUID
    partner_id: str
    respondent: str
    score: int
    category: str
    comment: str
    tier: str | None
    answered_at: Timestamp


class AnswerList(BaseModel):
    items: list[AnswerOut]
    next_after: uuid.UUID | None = Field(
        description="`after` for the next page; null: this page is the last"
    )


class CouncilMemberIn(_Request):
    representative: Name
    role: Name = Field(description="e.g. chair, member")
    joined_on: Day
    left_on: Day | None = None

    @model_validator(mode="after")
    def _order(self) -> CouncilMemberIn:
        if self.left_on is not None and self.left_on < self.joined_on:
            raise ValueError("left_on must not be before joined_on")
        return self


class CouncilMemberOut(BaseModel):
    partner_id: str
    representative: str
    role: str
    joined_on: date
    left_on: date | None


class DecisionIn(_Request):
    decision: Annotated[FreeText, Field(min_length=1, max_length=1000)]
    owner: Name = Field(description="who carries it out")
    due_on: Day | None = None


class MeetingIn(_Request):
    held_on: Day
    attendees: list[Ident] = Field(min_length=1, max_length=100, description="member partners")
    agenda: Annotated[FreeText, Field(min_length=1, max_length=4000)]
    notes: Annotated[FreeText, Field(max_length=2000)] = ""
    decisions: list[DecisionIn] = Field(default_factory=list, max_length=50)


class DecisionOut(BaseModel):
    decision: str
    owner: str
    due_on: date | None


class MeetingOut(BaseModel):
    meeting_id: uuid.UUID
    held_on: date
    attendees: list[str]
    agenda: str
    notes: str
    decisions: list[DecisionOut]
    recorded_by: str
    recorded_at: Timestamp


class CouncilOut(BaseModel):
    members: list[CouncilMemberOut] = Field(description="current and former members")
    meetings: list[MeetingOut] = Field(description="newest first")


class KpiReport(BaseModel):
    filters: KpiFiltersOut
    revenue: list[RevenueRow]
    revenue_totals: list[RevenueTotal]
    spend: list[SpendRow]
    automation: AutomationOut
    partners: PartnersOut
    nps: NpsReport = Field(description="partner voice: survey answers in the quarters asked for")
    top_partners: list[TopPartner] = Field(
        description=f"per currency, the {TOP_PARTNERS} partners with the most attributed revenue "
        "(sourced + influenced, net of reversals) under the same filters, most first; a tie "
        "goes to the smaller partner id"
    )
    computed_at: Timestamp
