"""The HTTP requests and responses of attribution. Money, shares and rates are decimal strings
(never floats); instants are ISO 8601 with their offset."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from services.attribution.domain.config import AttributionConfig
from services.attribution.domain.corrections import Settlement
from services.attribution.domain.touchpoints import ReportedKind
from shared.events.crm import CrmSource
from shared.inputs import (
    LONGEST_SOURCE,
    SOURCE_KEY_PATTERN,
    AsOf,
    DealKey,
    Ident,
    Instant,
    as_ident,
)


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
        description="false: the touchpoint takes no credit: the partner is not linked to the "
        "deal (no approved registration, no confirmed CRM link), so it waits for a channel "
        "manager's approval; or the deal is won and it occurred at or after the win (or "
        "outside the lookback window): the settlement's explanation says which"
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


class ParkedCreditOut(BaseModel):
    deal_key: str
    partner_id: str | None = Field(description="null: the whole deal is parked")
    kind: str | None
    amount: str | None = Field(description="the withheld share in the reporting currency")
    currency: str | None
    reason: str
    parked_at: str = Field(description="the settlement that parked it (each one re-parks)")


class DealAttributionOut(BaseModel):
    deal_key: str
    deal: DealStateOut | None
    sourced: str
    influenced: str
    credits: list[CreditOut] = Field(description="active credits")
    history: list[CreditOut] = Field(description="reversed credits")
    touchpoints: list[DealTouchpointOut]
    parked: list[ParkedCreditOut] = Field(
        default_factory=list,
        description="credits the deal does not pay out, and why (managers only; empty for a "
        "partner)",
    )


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


# A run over named partners answers in the request (one transaction each): it is bounded as the
# console's page of partners is (`GET /admin/partner-health`). A run over everyone names none.
HEALTH_RUN_PARTNERS_MAX = 100


class HealthRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    as_of: AsOf | None = Field(default=None, description="score as of this moment's day")
    partner_ids: list[Ident] | None = Field(
        default=None,
        max_length=HEALTH_RUN_PARTNERS_MAX,
        description=f"score these partners only (at most {HEALTH_RUN_PARTNERS_MAX}; a partner "
        "named twice is scored once); omitted: every partner in the programme",
    )


class HealthRunOut(BaseModel):
    day: str
    announced: dict[str, str] = Field(description="partner -> score, for the scores that moved")
    done: dict[str, list[str]] = Field(
        description="partner -> what happened: `scored` (the day's row stored), `announced` "
        "(it moved: published on attribution.health.v1); `superseded`: a run that began to "
        "read later had stored the day, whose newer inputs stay (nothing stored or "
        "published); `not_found`: a partner named that "
        "attribution does not know (nothing stored or published); `error`: logged, rolled back"
    )


def _one_path_segment(reference: str) -> str:
    """A link is confirmed and removed at `/crm-links/{source}/{external_id}/...`: its reference
    must be one path segment there, or the link could never be confirmed nor removed (those
    routes answer 404 before they run): no '/' (uvicorn decodes %2F before routing), not '.'
    or '..' (dot segments: clients resolve them, and per RFC 3986 and WHATWG %2E is a dot).
    Anything else `Ident` lets through (it refuses control characters, as the edge does in a
    URL) travels percent-encoded and arrives exactly: a space, `%`, `?`, `#`, `\\`, `;`, '...',
    any letter (tests/integration/test_attribution_edges.py)."""
    if "/" in reference:
        raise ValueError(
            "must not contain '/': the link is confirmed and removed at "
            "/crm-links/{source}/{external_id}/..., where the reference is one path segment "
            "and a '/' (even as %2F) would split it"
        )
    if reference in (".", ".."):
        raise ValueError(
            f"must not be {reference!r}: as a path segment of /crm-links/{{source}}/"
            "{external_id}/... URLs resolve it to the current or parent folder (browsers and "
            "proxies take %2E for a dot too), so the link could never be confirmed nor removed"
        )
    return reference


LinkReference = Annotated[Ident, Field(max_length=200), AfterValidator(_one_path_segment)]

LinkPosition = Annotated[
    str,
    Field(
        max_length=LONGEST_SOURCE + 1 + 200,
        pattern=SOURCE_KEY_PATTERN,
        description="a link's place in the list: its source:external_id",
        examples=["salesforce:001Ho00000PARTNER"],
    ),
    AfterValidator(as_ident),
]
"""Where a page of links starts: long enough for any source with the longest reference."""


class CrmLinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: CrmSource
    external_id: LinkReference = Field(
        description="the CRM's partner reference (Partner_Account__c, ACE/Microsoft partner id): "
        "one path segment of the confirm and remove routes (no '/', not '.' or '..')"
    )
    partner_id: Ident


class CrmLinkConfirmationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    partner_id: Ident = Field(
        description="the partner the confirming manager approves: 409 when the reference is "
        "proposed for another (a proposal replaced after it was read was confirmed unseen)"
    )


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


class AmountOut(BaseModel):
    amount: str
    currency: str | None


class UnmatchedReferenceOut(BaseModel):
    """A CRM's partner reference no confirmed link resolves, with the deals naming it (each
    parks its credit for the partner the reference stands for until a link is confirmed)."""

    source: str
    partner_ref: str = Field(description="the CRM's partner reference no confirmed link resolves")
    deals: int = Field(description="the CRM's deals naming it (deleted ones left out)")
    open: int
    won: int = Field(description="won deals: each holds its credit for the reference parked")
    won_amounts: list[AmountOut] = Field(
        description="the won deals' amounts, summed per currency (deals without one left out)"
    )
    latest_close_date: str | None
    latest_deals: list[str] = Field(
        description="up to five of its deals, the latest close first: "
        "`GET /crm-links/unmatched/deals` lists them all"
    )
    proposed_partner_id: str | None = Field(
        description="the partner a link waiting for confirmation proposes it stands for"
    )


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
