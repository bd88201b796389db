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

from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.events.bounds import (
    BigCount,
    Day,
    Fraction,
    Nps,
    Ratio,
    Total4,
    ends_on_or_after_start,
)
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


Hours = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class CurrencyFigures(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    currency: str
    sourced_revenue: Total4
    influenced_revenue: Total4
    incentives: Total4 = Field(description="earned, net of clawbacks")
    mdf_claimed: Total4 = Field(description="approved MDF claims")
    return_per_dollar: Ratio | None


@event_type("programme.kpi_snapshot.v1")
class KpiSnapshot(EventPayload):
    quarter: str = Field(description="e.g. 2026-Q4")
    computed_at: UtcDatetime
    money: tuple[CurrencyFigures, ...] = Field(description="per reporting currency")
    onboarding_decisions: BigCount
    onboarding_automatic_share: Fraction | None
    registration_decisions: BigCount
    registration_automatic_share: Fraction | None
    automatic_share: Fraction | None = Field(description="both kinds together")
    registration_decision_p50_hours: Hours | None
    registration_decision_p90_hours: Hours | None
    active_partners: BigCount
    churned_partners: BigCount
    nps: Nps | None
    nps_responses: BigCount


@event_type("programme.campaign_changed.v1")
class CampaignChanged(EventPayload):
    """A co-marketing campaign as it stands after a change (created, changed, cancelled). Its state
    between changes follows its dates: a consumer computes it for its own day."""

    campaign_id: str
    partner_ids: tuple[str, ...] = Field(description="the partners that run it")
    kind: str = Field(description="webinar | event | content | digital | other")
    starts_on: Day
    ends_on: Day = Field(description="on or after starts_on")
    state: str = Field(
        description="planned | running | completed | cancelled, on the day of the change"
    )
    cancelled_at: UtcDatetime | None = Field(
        default=None, description="set once it is cancelled (a cancellation is final)"
    )
    changed_at: UtcDatetime = Field(description="the change's moment: the newest wins")

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> CampaignChanged:
        return ends_on_or_after_start(self)


@dataclass(frozen=True)
class KnownCampaign:
    """A campaign as programme last announced it: what a consumer keeps of its
    `CampaignChanged` (its kind and its state on the day of the change are left out: a
    consumer computes the state for its own day from the dates)."""

    campaign_id: str
    partner_ids: frozenset[str]
    starts_on: date
    ends_on: date
    cancelled_at: datetime | None
