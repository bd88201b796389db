"""The deals HTTP API's request and response bodies."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from services.deals.domain.rules import RegistrationRequest
from shared.events.registrations import RegistrationStatus
from shared.inputs import (
    CountryCode,
    CurrencyCode,
    DealKey,
    Ident,
    PositiveMoney,
    as_name,
    check_money,
)


class RegistrationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_name: Annotated[str, Field(min_length=2, max_length=200), AfterValidator(as_name)]
    customer_domain: Ident | None = Field(default=None, max_length=253)
    customer_country: CountryCode | None = None
    products: list[Annotated[Ident, Field(max_length=100)]] = Field(min_length=1, max_length=50)
    amount: PositiveMoney
    currency: CurrencyCode
    crm_deal_key: DealKey | None = None

    @model_validator(mode="after")
    def _minor_units(self) -> RegistrationIn:
        check_money(self.amount, self.currency)
        return self

    def request_for(self, partner_id: str, submitted_at: datetime) -> RegistrationRequest:
        """The registration as the rules take it (its customer parsed once, here)."""
        return RegistrationRequest(
            partner_id=partner_id,
            customer_name=self.customer_name,
            customer_domain=self.customer_domain,
            customer_country=self.customer_country,
            products=frozenset(self.products),
            amount=self.amount,
            currency=self.currency,
            submitted_at=submitted_at,
        )


class ConflictOut(BaseModel):
    """A conflict: a partner sees its kind ("conflict with another partner" or "direct sales")
    and how it matched; channel managers also its evidence (the other registration or CRM deal,
    the other partner or direct owner, the similarity and since when)."""

    kind: str = Field(description="partner | direct_sales")
    summary: str
    matched_on: str = Field(description="domain | name")
    reference: str | None = Field(default=None, description="channel managers only")
    party: str | None = Field(default=None, description="channel managers only")
    similarity: float | None = Field(default=None, description="channel managers only")
    registered_at: datetime | None = Field(default=None, description="channel managers only")


class DecisionOut(BaseModel):
    registration_id: str
    status: RegistrationStatus
    reasons: list[str] = Field(description="a partner hears no other partner, registration or rep")
    conflicts: list[ConflictOut] = Field(description="with evidence for channel managers")
    policy_version: str
    expires_at: datetime | None = Field(description="end of the protection window, if any")


class CheckOut(BaseModel):
    """A dry run: what the registration would get now (nothing is stored)."""

    would_be: RegistrationStatus
    reasons: list[str]
    conflicts: list[ConflictOut]
    policy_version: str


class RegistrationOut(BaseModel):
    """A stored registration with its decision and the inputs it was decided on."""

    registration_id: str
    partner_id: str
    customer_name: str
    customer_domain: str | None
    customer_country: str | None
    name_key: str
    products: list[str]
    amount: Decimal
    currency: str
    status: RegistrationStatus
    reasons: list[str]
    conflicts: list[ConflictOut]
    policy_version: str
    inputs: dict[str, Any]
    submitted_at: datetime
    decided_at: datetime
    expires_at: datetime | None
    extensions_used: int
    crm_deal_key: str | None
    updated_at: datetime
    expiry_warned_for: datetime | None


class CrmLinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    crm_deal_key: DealKey


class CrmLinkOut(BaseModel):
    registration_id: str
    crm_deal_key: str
    status: RegistrationStatus = Field(description="pending_review when the link goes to review")
    reason: str


class ExtensionOut(BaseModel):
    registration_id: str
    expires_at: datetime
    reason: str


class ReviewOut(BaseModel):
    registration_id: str
    status: RegistrationStatus


class CrmItemOut(BaseModel):
    index: int = Field(description="the item's position in the delivery (0 for a single item)")
    outcome: str = Field(
        description="accepted (recorded now), duplicate (recorded before, or earlier in this "
        "delivery), stale (newer values are held for every field it carries), ignored (valid, "
        "nothing Pollinate keeps), refused (unreadable: kept with the reason), resync (a gap "
        "or overflow: the records it stands for are fetched from the CRM)"
    )
    deal_key: str | None = Field(default=None, description="the record, for a readable item")
    reason: str | None = Field(default=None, description="why it was ignored or refused")


class IngestedOut(BaseModel):
    accepted: int = Field(
        description="changes recorded now (a repeated delivery, or a repeat within the "
        "request, is not recorded again)"
    )
    duplicate: int = 0
    stale: int = 0
    ignored: int = 0
    refused: int = 0
    resync: int = Field(default=0, description="records (or windows) to fetch from the CRM")
    items: list[CrmItemOut] = Field(
        default_factory=list, description="each item's outcome (one per record), in order"
    )


class ExpiryRunOut(BaseModel):
    as_of: datetime
    warned: int
    expired: int


class PartnerTokenOut(BaseModel):
    partner_id: str
    token: str
