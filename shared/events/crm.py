"""Canonical CRM deal events: what every upstream CRM adapter produces (topic crm.deals.v1).

Upstream changes are often partial (Salesforce CDC sends only changed fields, HubSpot one property
per event), so a change carries only the fields it knows; absent (None) means "not in this change".
Consumers merge per field, keeping a field's value only if its source timestamp is not older
than the one they hold, so out-of-order deliveries never overwrite newer data.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from shared.events.bounds import Amount4, BigCount, Count
from shared.events.envelope import EventPayload, UtcDatetime, event_type


class CrmSource(StrEnum):
    SALESFORCE = "salesforce"
    HUBSPOT = "hubspot"
    AWS_ACE = "aws_ace"
    MICROSOFT = "microsoft"


class DealStage(StrEnum):
    PROSPECTING = "prospecting"
    QUALIFICATION = "qualification"
    VALIDATION = "validation"
    PROPOSAL = "proposal"
    NEGOTIATION = "negotiation"
    COMMITTED = "committed"
    CLOSED_WON = "closed_won"
    CLOSED_LOST = "closed_lost"

    @property
    def status(self) -> DealStatus:
        if self is DealStage.CLOSED_WON:
            return DealStatus.WON
        if self is DealStage.CLOSED_LOST:
            return DealStatus.LOST
        return DealStatus.OPEN


class DealStatus(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class Customer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str | None = None
    domain: str | None = Field(default=None, description="normalised registrable domain")
    country: str | None = Field(default=None, description="ISO 3166-1 alpha-2 where known")
    folded_name: str | None = Field(
        default=None,
        description="the name as deals compares customers (case, accents, punctuation and legal"
        " form aside, look-alike letters folded): one customer's names meet here. Set by deals'"
        " projection (crm.deals.v1); a service keying customers by name keys them by it",
    )


@event_type("crm.deal.changed.v1")
class CrmDealChanged(EventPayload):
    source: CrmSource
    source_id: str
    source_event_id: str
    source_timestamp: UtcDatetime
    change_type: str = Field(pattern="^(created|updated|deleted)$")
    name: str | None = None
    customer: Customer | None = None
    products: tuple[str, ...] | None = None
    amount: Amount4 | None = Field(
        default=None, description="never negative (the CRM adapters refuse a negative amount)"
    )
    currency: str | None = Field(default=None, pattern="^[A-Z]{3}$")
    stage: DealStage | None = None
    close_date: date | None = None
    owner: str | None = Field(default=None, description="direct sales rep owning the opportunity")
    partner_ref: str | None = Field(default=None, description="partner reference in the CRM")
    co_sell: bool | None = None
    created_at: UtcDatetime | None = None
    cleared: tuple[str, ...] = Field(
        default=(),
        description="fields the CRM emptied (Salesforce nulledFields, a HubSpot property set to "
        "''): name, owner, partner_ref, currency, amount, close_date, products, co_sell, "
        "customer.name, customer.domain, customer.country",
    )
    deleted: bool | None = Field(
        default=None,
        description="the record's deletion state when the change sets it (false: restored, "
        "e.g. Salesforce UNDELETE or HubSpot deal.restore); a 'deleted' change implies true",
    )
    source_commit: BigCount | None = Field(
        default=None, description="Salesforce commitNumber: orders transactions of one moment"
    )
    source_sequence: BigCount | None = Field(
        default=None,
        description="Salesforce sequenceNumber: orders the changes of one record within a "
        "transaction, which share their commit timestamp",
    )
    merged_into: str | None = Field(
        default=None,
        description="the source id of the record this one was merged into (it is deleted); "
        "registrations linked to it move to the survivor",
    )

    @property
    def deal_key(self) -> str:
        return f"{self.source.value}:{self.source_id}"


@event_type("crm.raw.received.v1")
class CrmRawReceived(EventPayload):
    """An upstream item exactly as a CRM delivered it, with where and how it arrived (topics
    `crm.raw.<source>.v1`, one per source): the record of what the CRMs sent, for audit,
    replay into another system, or reading the adapters' input again after a fix."""

    source: CrmSource
    transport: str = Field(description="how it arrived: http (a CRM's delivery) or pull")
    route: str = Field(description="the route it was delivered to, or the API it was pulled from")
    delivery_id: str | None = Field(
        default=None, description="the sender's id of the delivery (Standard Webhooks webhook-id)"
    )
    index: Count = Field(description="its position in the delivery or the page")
    received_at: UtcDatetime
    item: str = Field(description="the item as JSON text, numbers exactly as sent")
    outcomes: tuple[str, ...] = Field(
        description="what became of it: accepted, duplicate, stale, ignored, resync"
    )
    deal_keys: tuple[str, ...] = Field(default=(), description="the deals it changed or named")
