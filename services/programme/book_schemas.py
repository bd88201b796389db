"""Response bodies of the partner projection: a partner's standing now (its tier, type and
status from the lifecycle; its account manager, latest annual review and health score from
the programme's events) and a partner manager's book."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, PlainSerializer, WithJsonSchema

from shared.inputs import Ident

Timestamp = Annotated[
    datetime,
    PlainSerializer(lambda moment: moment.isoformat(), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]

# An account manager as onboarding records one (its e-mail in lower case). Found in review:
# `Alice.Smith@Vendor.com` in a route found no partners (an empty book, KPIs all zero), as the
# lookup compared exactly what onboarding had lower-cased.
ManagerKey = Annotated[Ident, AfterValidator(str.lower)]


class HealthStandingOut(BaseModel):
    score: Decimal = Field(description="0-100, attribution's latest announced score")
    previous_score: Decimal | None
    day: date = Field(description="the day it was scored for")


class ReviewStandingOut(BaseModel):
    review_id: str
    review_on: date
    outcome: str = Field(description="requalified | demoted | probation | expelled")
    standing: str = Field(description="the outcome, or '<outcome> reversed on appeal'")
    reasons: list[str]
    probation_until: date | None
    decided_at: Timestamp
    appeal_upheld: bool | None = Field(description="null: no appeal decided")


class PartnerStandingOut(BaseModel):
    partner_id: str
    tier: str | None = Field(description="now, from partners.lifecycle.v1; null: not heard yet")
    partner_type: str | None
    status: str | None
    account_manager: str | None = Field(description="from partners.programme.v1")
    manager_assigned_at: Timestamp | None
    health: HealthStandingOut | None = Field(description="from attribution.health.v1")
    requalification: ReviewStandingOut | None = Field(
        description="the latest annual review (partners.programme.v1)"
    )


class ManagerBookOut(BaseModel):
    manager: str
    partner_type: str | None = Field(description="the type asked for (now); null: every type")
    partners: list[PartnerStandingOut] = Field(description="a page, by partner id")
    total: int = Field(description="the manager's partners (of the type asked for) in all")
    next_after: str | None = Field(
        description="`after` of the next page (the last partner id shown); null on the last"
    )
