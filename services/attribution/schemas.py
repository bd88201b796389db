"""The HTTP requests and responses of attribution. Money, shares and rates are decimal strings
(never floats); instants are ISO 8601 with their offset."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from services.attribution.domain.config import AttributionConfig
from services.attribution.domain.corrections import Settlement
from services.attribution.domain.touchpoints import ReportedKind
from shared.events.crm import CrmSource
from shared.inputs import AsOf, DealKey, Ident, Instant


class TouchpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deal_key: DealKey
    partner_id: Ident | None = Field(
        default=None, min_length=1, max_length=100, description="required for admin callers"
    )
    kind: ReportedKind
    occurred_at: Instant
    source: Annotated[Ident, Field(max_length=100)] = Field(
        description="reporting system, e.g. crm-x"
    )
    external_id: Ident | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="the source's own id: the same (source, external_id) is recorded once",
    )
    campaign_id: Ident | None = Field(
        default=None,
        max_length=100,
        description="kind campaign only (and required there): the co-marketing campaign",
    )


class IssuedOut(BaseModel):
    partner_id: str
    kind: str
    amount: str


class SettlementOut(BaseModel):
    explanation: str
    locked: bool
    reversed: list[str] = Field(description="credit ids reversed")
    issued: list[IssuedOut]

    @classmethod
    def of(cls, settlement: Settlement, partner_id: str | None) -> SettlementOut:
        """What the settlement moved, as `partner_id` may see it: a partner only its own
        credits (None: a channel manager, everything)."""

        def shown(owner: str) -> bool:
            return partner_id is None or owner == partner_id

        return cls(
            explanation=settlement.explanation,
            locked=settlement.locked,
            reversed=[c.credit_id for c in settlement.reverse if shown(c.partner_id)],
            issued=[
                IssuedOut(partner_id=x.partner_id, kind=x.kind.value, amount=str(x.amount))
                for x in settlement.issue
                if shown(x.partner_id)
            ],
        )


class TouchpointReportOut(BaseModel):
    touchpoint_id: str
    created: bool = Field(description="false: the same (source, external_id) was reported before")
    counted: bool = Field(
        description="false: the partner is not linked to the deal (no approved registration, "
        "no confirmed CRM link), so the touchpoint waits for a channel manager's approval and "
        "takes no credit"
    )
    settlement: SettlementOut | None = Field(
        description="what the touchpoint moved (a partner sees only its own credits); null for "
        "a repeat or a deal not known yet"
    )


class DealStateOut(BaseModel):
    revision: int
    status: str
    deleted: bool
    amount: str | None
    currency: str | None
    close_date: str | None
    last_settlement: str | None = Field(description="why credits last moved; managers only")


class CreditOut(BaseModel):
    credit_id: str
    partner_id: str
    kind: str
    currency: str
    original_currency: str
    model: str
    config_version: str
    deal_revision: int
    replaces: str | None
    reversal_id: str | None
    reversal_reason: str | None
    amount: str
    original_amount: str
    fx_rate: str
    share: str
    close_date: str
    issued_at: str
    reversed_at: str | None
    reasons: list[str]


class DealTouchpointOut(BaseModel):
    touchpoint_id: str
    partner_id: str
    kind: str
    occurred_at: str
    source: str
    origin: str
    external_id: str | None
    active: bool


class WaitingTouchpointOut(DealTouchpointOut):
    """A reported touchpoint waiting for a channel manager's approval."""

    reported_by: str | None
    received_at: str


class DealAttributionOut(BaseModel):
    deal_key: str
    deal: DealStateOut | None
    sourced: str
    influenced: str
    credits: list[CreditOut] = Field(description="active credits")
    history: list[CreditOut] = Field(description="reversed credits")
    touchpoints: list[DealTouchpointOut]


class PeriodRevenueOut(BaseModel):
    period: str
    sourced: str
    influenced: str
    deals: int


class RevenueOut(BaseModel):
    partner_id: str
    currency: str
    sourced: str
    influenced: str
    total: str
    by_period: list[PeriodRevenueOut]


class HealthComponentsOut(BaseModel):
    revenue: str
    win_rate: str
    velocity: str
    penalty: str
    enablement: str | None = Field(
        default=None, description="0-1 from onboarding's enablement; null: not measured yet"
    )
    voice_penalty: str | None = Field(
        default=None,
        description="the part of `penalty` partner voice makes (falling NPS, detractors); "
        "null in the history (its reasons say)",
    )


class VoiceQuarterOut(BaseModel):
    answers: int
    promoters: int
    passives: int
    detractors: int
    nps: str | None = Field(description="% promoters - % detractors; null without answers")


class VoiceOut(BaseModel):
    last_quarter: VoiceQuarterOut
    quarter_before: VoiceQuarterOut


class HealthInputsOut(BaseModel):
    revenue: str
    won: int
    lost: int
    days_to_close: list[int]
    conflicts: int
    rejections: int
    expiries: int
    enablement: str | None = Field(
        default=None, description="onboarding's enablement health 0-100; null: not measured yet"
    )
    voice: VoiceOut | None = Field(
        default=None, description="survey answers of the last two quarters (programme's surveys)"
    )


class HealthOut(BaseModel):
    partner_id: str
    score: str
    components: HealthComponentsOut
    inputs: HealthInputsOut
    reasons: list[str]
    config_version: str


class HealthDayOut(BaseModel):
    day: str
    score: str
    components: HealthComponentsOut
    reasons: list[str]
    config_version: str
    scored_at: str
    announced: bool = Field(description="published on attribution.health.v1 (the score moved)")


class HealthHistoryOut(BaseModel):
    partner_id: str
    days: list[HealthDayOut]


class HealthRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    as_of: AsOf | None = Field(default=None, description="score as of this moment's day")
    partner_ids: list[Ident] | None = Field(default=None, max_length=10_000)


class HealthRunOut(BaseModel):
    day: str
    announced: dict[str, str] = Field(description="partner -> score, for the scores that moved")


class CrmLinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: CrmSource
    external_id: Annotated[Ident, Field(max_length=200)] = Field(
        description="the CRM's partner reference (Partner_Account__c, ACE/Microsoft partner id)"
    )
    partner_id: Ident


class CrmLinkOut(BaseModel):
    source: str
    external_id: str
    partner_id: str
    status: str = Field(description="proposed | confirmed (only confirmed links credit anyone)")
    proposed_by: str
    proposed_at: str
    confirmed_by: str | None
    confirmed_at: str | None


class CrmLinkChangeOut(BaseModel):
    link: CrmLinkOut | None = Field(description="the link now; null once removed")
    changed: bool = Field(description="false: it was confirmed already")
    deals_settled: list[str] = Field(description="deals whose credits were settled again")


class UnmatchedDealOut(BaseModel):
    deal_key: str
    source: str
    partner_ref: str = Field(description="the CRM's partner reference no confirmed link resolves")
    status: str
    amount: str | None
    currency: str | None
    close_date: str | None


class ConfigOut(AttributionConfig):
    """The attribution policy in force (with its `version`)."""
