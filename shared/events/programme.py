"""The partner programme as onboarding runs it (topic partners.programme.v1, key: partner id):
enablement measured, the programme year's requalification decisions and appeals, and the
partner account manager. Facts for the services and read models that follow the programme
(attribution's health score reads enablement; a KPI or QBR read model reads the rest); the
partner's own state stays on `partners.lifecycle.v1`."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from shared.events.envelope import EventPayload, UtcDatetime, event_type


@event_type("partner.enablement_measured.v1")
class PartnerEnablementMeasured(EventPayload):
    """A partner's enablement as of a moment: learning, certification and engagement with the
    resource library (onboarding's `GET /partners/{id}/enablement`). Published when the score
    moves, and at least once a day per partner in the programme."""

    partner_id: str
    measured_at: UtcDatetime
    people: int = Field(ge=0, description="current people registered")
    training_completion_rate: Decimal | None = None
    certified_share: Decimal | None = None
    engaged_share: Decimal | None = None
    downloads: int = Field(ge=0, description="resource downloads in the window")
    sandbox_signups: int = Field(ge=0, description="early-access sign-ups in the window")
    window_days: int = Field(ge=1)
    score: Decimal = Field(ge=0, le=100, description="enablement health 0-100")
    reasons: tuple[str, ...] = ()
