"""Events produced by the programme service.

- programme.voice.v1 (key: partner id): every answer to a satisfaction survey, so a health
  signal can follow a partner's mood: the score and its NPS category, never the comment or the
  person who answered.
- programme.kpis.v1 (key: quarter): a quarter's headline KPIs for dashboards, whenever they
  change (services/programme/README.md defines each figure).
- programme.campaigns.v1 (key: campaign id): each co-marketing campaign as it is created,
  changed and cancelled, so incentives can check the campaign an MDF pre-approval names and
  attribution the campaign a touchpoint names."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.envelope import EventPayload, UtcDatetime, event_type


@event_type("programme.survey_answered.v1")
class SurveyAnswered(EventPayload):
    answer_id: str
    survey_id: str
    partner_id: str
    score: int = Field(ge=0, le=10, description="how likely the person is to recommend (0-10)")
    category: str = Field(description="promoter (9-10) | passive (7-8) | detractor (0-6)")
    tier: str | None = Field(description="the partner's tier when it answered, if known")
    partner_type: str | None = None
    answered_at: UtcDatetime


class CurrencyFigures(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    currency: str
    sourced_revenue: Decimal
    influenced_revenue: Decimal
    incentives: Decimal = Field(description="earned, net of clawbacks")
    mdf_claimed: Decimal = Field(description="approved MDF claims")
    return_per_dollar: Decimal | None


@event_type("programme.kpi_snapshot.v1")
class KpiSnapshot(EventPayload):
    quarter: str = Field(description="e.g. 2026-Q4")
    computed_at: UtcDatetime
    money: tuple[CurrencyFigures, ...] = Field(description="per reporting currency")
    onboarding_decisions: int
    onboarding_automatic_share: Decimal | None
    registration_decisions: int
    registration_automatic_share: Decimal | None
    automatic_share: Decimal | None = Field(description="both kinds together")
    registration_decision_p50_hours: float | None
    registration_decision_p90_hours: float | None
    active_partners: int
    churned_partners: int
    nps: Decimal | None
    nps_responses: int


@event_type("programme.campaign_changed.v1")
class CampaignChanged(EventPayload):
    """A co-marketing campaign as it stands after a change (created, changed, cancelled). Its state
    between changes follows its dates: a consumer computes it for its own day."""

    campaign_id: str
    partner_ids: tuple[str, ...] = Field(description="the partners that run it")
    kind: str = Field(description="webinar | event | content | digital | other")
    starts_on: date
    ends_on: date
    state: str = Field(
        description="planned | running | completed | cancelled, on the day of the change"
    )
    cancelled_at: UtcDatetime | None = Field(
        default=None, description="set once it is cancelled (a cancellation is final)"
    )
    changed_at: UtcDatetime = Field(description="the change's moment: the newest wins")
