"""The partner programme as onboarding runs it (topic partners.programme.v1, key: partner id):
enablement measured, the programme year's requalification decisions and appeals, and the
partner account manager. Facts for the services and read models that follow the programme
(attribution's health score reads enablement; a KPI or QBR read model reads the rest); the
partner's own state stays on `partners.lifecycle.v1`."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from shared.events.bounds import INT32_MAX, Count, Day, Fraction, Score
from shared.events.envelope import EventPayload, UtcDatetime, event_type


@event_type("partner.enablement_measured.v1")
class PartnerEnablementMeasured(EventPayload):
    """A partner's enablement as of a moment: learning, certification and engagement with the
    resource library (onboarding's `GET /partners/{id}/enablement`). Published when the score
    moves, and at least once a day per partner in the programme."""

    partner_id: str
    measured_at: UtcDatetime
    people: Count = Field(description="current people registered")
    training_completion_rate: Fraction | None = None
    certified_share: Fraction | None = None
    engaged_share: Fraction | None = None
    downloads: Count = Field(description="resource downloads in the window")
    sandbox_signups: Count = Field(description="early-access sign-ups in the window")
    window_days: int = Field(ge=1, le=INT32_MAX)
    score: Score = Field(description="enablement health 0-100, one decimal")
    reasons: tuple[str, ...] = ()


class RequalificationOutcome(StrEnum):
    REQUALIFIED = "requalified"
    DEMOTED = "demoted"
    PROBATION = "probation"  # a plan to meet by a deadline
    EXPELLED = "expelled"


@event_type("partner.requalification_decided.v1")
class RequalificationDecided(EventPayload):
    """A partner's annual review (or its probation's deadline) decided, with the reasons; the
    tier and status consequences are on partners.lifecycle.v1 as usual."""

    review_id: str
    partner_id: str
    review_on: Day = Field(description="the review date of the programme year")
    basis: str = Field(description="annual | probation_end")
    outcome: RequalificationOutcome
    tier_before: str
    tier_after: str
    reasons: tuple[str, ...]
    plan: tuple[str, ...] = Field(default=(), description="what a probation must meet")
    probation_until: Day | None = None
    appeal_until: UtcDatetime | None = Field(
        default=None, description="an appeal may be filed until then (None: not appealable)"
    )
    decided_at: UtcDatetime


@event_type("partner.requalification_appeal_decided.v1")
class RequalificationAppealDecided(EventPayload):
    """A channel manager decided a partner's appeal; upheld reverses the review's outcome."""

    appeal_id: str
    review_id: str
    partner_id: str
    upheld: bool
    note: str
    decided_by: str
    decided_at: UtcDatetime


@event_type("partner.account_manager_assigned.v1")
class AccountManagerAssigned(EventPayload):
    """A partner's account manager assigned or changed (the vendor's person who owns the
    relationship): route the partner's notifications and business reviews to them."""

    partner_id: str
    manager: str = Field(description="the manager's identity, e.g. their e-mail")
    previous_manager: str | None = None
    note: str = ""
    assigned_by: str = Field(description="the channel manager who assigned them")
    assigned_at: UtcDatetime
