"""Request and response bodies of the programme HTTP API. Money is a decimal string in the
programme's reporting currency (each row names it); ratios are decimal strings to four places;
durations are hours."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, Field, PlainSerializer, WithJsonSchema

Timestamp = Annotated[
    datetime,
    PlainSerializer(lambda moment: moment.isoformat(), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class KpiFiltersOut(BaseModel):
    from_quarter: str | None
    to_quarter: str | None
    tier: str | None
    partner_type: str | None
    region: str | None
    partner_ids: list[str]


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


class KpiReport(BaseModel):
    filters: KpiFiltersOut
    revenue: list[RevenueRow]
    revenue_totals: list[RevenueTotal]
    spend: list[SpendRow]
    automation: AutomationOut
    partners: PartnersOut
    computed_at: Timestamp
