"""Merged CRM opportunity state, produced by deals (topic deals.opportunities.v1, key: deal key).

`crm.deal.changed.v1` carries partial, possibly out-of-order upstream changes. The deals service
merges them field by field and, after every change that altered the opportunity, publishes the
whole merged state here with a per-deal `revision` that only grows. Downstream services
(attribution, incentives) consume these snapshots and never have to merge partial updates.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from shared.events.bounds import INT32_MAX, Amount4
from shared.events.crm import CrmSource, Customer, DealStage, DealStatus
from shared.events.envelope import EventPayload, UtcDatetime, event_type
from shared.events.registrations import RegistrationStatus


class LinkedRegistration(BaseModel):
    """A partner's deal registration linked to this opportunity (the sourcing partner)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    registration_id: str
    partner_id: str
    status: RegistrationStatus
    submitted_at: UtcDatetime


@event_type("deal.state_changed.v1")
class DealStateChanged(EventPayload):
    deal_key: str = Field(description="source:source_id")
    source: CrmSource
    source_id: str
    revision: int = Field(
        ge=1, le=INT32_MAX, description="grows by one with every published change"
    )
    name: str | None = None
    customer: Customer
    products: tuple[str, ...] = ()
    amount: Amount4 | None = Field(
        default=None, description="as deals keeps it (numeric(20, 4)); never negative"
    )
    currency: str | None = None
    stage: DealStage | None = None
    status: DealStatus
    close_date: date | None = None
    owner: str | None = Field(default=None, description="direct sales rep owning the opportunity")
    partner_ref: str | None = Field(default=None, description="partner named by the CRM")
    co_sell: bool = False
    created_at: UtcDatetime | None = None
    deleted: bool = False
    registrations: tuple[LinkedRegistration, ...] = ()
    changed_at: UtcDatetime
    ingested_at: UtcDatetime | None = Field(
        default=None, description="when the upstream change behind this revision entered Pollinate"
    )
    merged_into: str | None = Field(
        default=None,
        description="the deal key of the deal this one was merged into in the CRM (it is "
        "deleted): what downstream holds for it (reported touchpoints, credits) moves to that deal",
    )
