"""Request and response bodies of MDF pre-approvals (the events are in shared/events)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from services.incentives.domain.preapprovals import check_dates
from services.incentives.schemas import ClaimIn
from shared.http import Timestamp
from shared.inputs import CurrencyCode, Day, FreeText, Ident, PositiveMoney, as_text


class ActivityKind(StrEnum):
    """What a co-marketing campaign is."""

    WEBINAR = "webinar"
    EVENT = "event"
    CONTENT = "content"
    DIGITAL = "digital"
    OTHER = "other"


class PreapprovalIn(BaseModel):
    """A budget for one campaign, asked for before spending it."""

    model_config = ConfigDict(extra="forbid")

    reference: Ident = Field(
        description="the partner's own reference: retrying with it returns the same request"
    )
    campaign_id: Ident = Field(description="the campaign (programme's id) it is for")
    activity_kind: ActivityKind
    description: Annotated[str, Field(min_length=3, max_length=500), AfterValidator(as_text)]
    starts_on: Day
    ends_on: Day
    amount: PositiveMoney
    currency: CurrencyCode = Field(description="must be the MDF fund's currency")

    @model_validator(mode="after")
    def _dates_in_order(self) -> Self:
        check_dates(self.starts_on, self.ends_on)
        return self


class PreapprovalDecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approve: bool
    note: Annotated[FreeText, Field(max_length=500)] = Field(
        default="", description="required to reject: the reason"
    )


class PreapprovedClaimIn(ClaimIn):
    # the body of any claim on the fund, under its own name in the OpenAPI document
    pass


class PreapprovedClaimOut(BaseModel):
    claim_id: str
    preapproval_id: str
    partner_id: str
    status: str = Field(
        description="requested; a repeat under a proof reference: what its claim became since"
    )
    amount: Decimal
    currency: str
    preapproval_left: Decimal = Field(description="what further claims may still ask for")


class PreapprovalOut(BaseModel):
    preapproval_id: str
    partner_id: str
    reference: str
    campaign_id: str
    activity_kind: str
    description: str
    starts_on: date
    ends_on: date
    amount: Decimal
    currency: str
    status: str = Field(description="requested | approved | rejected | expired")
    reason: str
    reserved: Decimal = Field(description="what it still holds in the fund")
    claimed: Decimal = Field(description="approved claims against it")
    expires_at: Timestamp | None = Field(description="claims stop and the rest is released")
    requested_at: Timestamp
    decided_at: Timestamp | None
    expired_at: Timestamp | None
