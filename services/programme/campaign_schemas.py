"""Request and response bodies of co-marketing campaigns."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from services.programme.domain.campaigns import CampaignKind, CampaignState, check_dates
from shared.inputs import (
    CurrencyCode,
    FreeText,
    Ident,
    Integer,
    Money,
    Name,
    NearDay,
    as_text,
    check_money,
)


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    kind: CampaignKind
    description: Annotated[FreeText, Field(max_length=2000)] = ""
    starts_on: NearDay
    ends_on: NearDay
    partner_ids: list[Ident] = Field(
        default_factory=list,
        max_length=50,
        description="the partners running it (a partner: itself, the default)",
    )

    @model_validator(mode="after")
    def _dates_in_order(self) -> Self:
        check_dates(self.starts_on, self.ends_on)
        return self


class CampaignEditIn(BaseModel):
    """What changes; a field left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Annotated[FreeText, Field(max_length=2000)] | None = None
    starts_on: NearDay | None = None
    ends_on: NearDay | None = None
    partner_ids: list[Ident] | None = Field(
        default=None,
        min_length=1,
        max_length=50,
        description="channel managers: the partners running it from now on (the whole list)",
    )

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not self.model_fields_set - {k for k, v in self if v is None}:
            raise ValueError("nothing to change: give at least one field")
        return self


class ResultsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    partner_id: Ident | None = Field(default=None, description="a channel manager names it")
    leads: Integer = Field(ge=0, le=10_000_000)
    pipeline: Annotated[Money, Field(ge=0)]
    currency: CurrencyCode

    @model_validator(mode="after")
    def _in_its_currency(self) -> Self:
        check_money(self.pipeline, self.currency, "pipeline")  # a yen has no cents
        return self


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=3, max_length=500), AfterValidator(as_text)]


class PreapprovalFactOut(BaseModel):
    preapproval_id: str
    partner_id: str
    status: str
    amount: Decimal
    reserved: Decimal
    claimed: Decimal
    currency: str


class CurrencyResultsOut(BaseModel):
    currency: str
    pipeline: Decimal = Field(description="reported by the partners (latest report of each)")
    attributed_revenue: Decimal = Field(
        description="credits through the campaign touchpoint, net of reversals"
    )
    mdf_approved: Decimal = Field(description="pre-approved budgets (approved or expired)")
    mdf_reserved: Decimal = Field(description="what those still hold in the partners' funds")
    mdf_claimed: Decimal = Field(description="approved claims against them: the MDF spent")
    return_per_dollar: Decimal | None = Field(
        description="attributed revenue / MDF claimed; null while nothing was spent"
    )


class CampaignResultsOut(BaseModel):
    leads: int
    by_currency: list[CurrencyResultsOut]


class CampaignOut(BaseModel):
    campaign_id: str
    name: str
    kind: str
    description: str
    starts_on: date
    ends_on: date
    state: CampaignState
    partner_ids: list[str]
    created_by: str
    created_at: datetime
    cancelled_at: datetime | None
    cancel_reason: str | None


class CampaignDetailOut(CampaignOut):
    preapprovals: list[PreapprovalFactOut]
    results: CampaignResultsOut
