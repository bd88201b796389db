"""The deals HTTP API's request and response bodies."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from services.deals.domain.customers import normalise_domain
from services.deals.domain.rules import RegistrationRequest
from shared.events.registrations import RegistrationStatus
from shared.inputs import (
    CountryCode,
    CurrencyCode,
    DealKey,
    FreeText,
    Ident,
    Instant,
    Integer,
    JsonObject,
    PositiveMoney,
    as_ident,
    as_name,
    check_money,
)


def _customer_domain(value: str) -> str:
    """The customer's web domain as given (the rules take its registrable part), refused when
    it holds none: one dropped silently was never compared with other registrations'."""
    as_ident(value)
    if normalise_domain(value) is None:
        raise ValueError(
            "customer_domain must be a domain name or web address, like northwind.example"
        )
    return value


class RegistrationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_name: Annotated[str, Field(min_length=2, max_length=200), AfterValidator(as_name)]
    customer_domain: (
        Annotated[str, Field(min_length=1, max_length=253), AfterValidator(_customer_domain)] | None
    ) = None
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


class HistoryEntryOut(BaseModel):
    """One decision or status change of a registration (its decision ledger)."""

    seq: int = Field(description="grows with every entry of the ledger")
    at: datetime
    what: str = Field(
        description="decided | reviewed | linked | extended | expired | closed | escalated"
        " | auto_decided"
    )
    previous_status: RegistrationStatus | None
    status: RegistrationStatus
    principal_kind: str = Field(description="partner | manager | system | crm")
    principal: str | None = Field(
        description="the partner, the manager's subject (channel managers only), the job, or "
        "the CRM opportunity"
    )
    policy_version: str
    reasons: list[str] = Field(description="a partner reads what it was told")
    evidence: dict[str, Any] = Field(description="a partner sees only the kinds of conflicts")


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
    extensions_left: int = Field(
        default=0,
        description="extensions the policy in force still allows (0 unless approved; the "
        "partner's standing and the window are checked when it asks)",
    )
    crm_deal_key: str | None
    updated_at: datetime
    expiry_warned_for: datetime | None
    review_due_at: datetime | None = Field(
        default=None, description="pending review: when it must be decided (business days)"
    )
    acceptance_due_at: datetime | None = Field(
        default=None, description="a hyperscaler referral: when AWS ACE / Microsoft need an answer"
    )
    deal_outcome: str | None = Field(
        default=None, description="won: the linked CRM deal closed while awaiting review"
    )
    decision: HistoryEntryOut | None = Field(
        default=None, description="the current decision: the newest entry of its history"
    )


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


class PolicyIn(BaseModel):
    """A proposed rules-of-engagement version: its whole document (it names its `version`;
    settings left out keep their defaults, unknown ones are refused) and why."""

    model_config = ConfigDict(extra="forbid")

    # Storable JSON as every free object the platform keeps: a NUL or a lone surrogate in a
    # key (review_days' and auto_approve_limits' are free) answered 500 (found in review).
    document: JsonObject = Field(description='e.g. {"version": "acme-2027-01", ...}')
    # Free text as every other note: a NUL Postgres cannot keep answered 500 (found in review).
    note: Annotated[FreeText, Field(max_length=1000)] = ""


class PolicyCheckOut(BaseModel):
    """A document validated against the version in force (nothing is stored)."""

    version: str
    document: dict[str, Any] = Field(description="every setting, defaults filled in")
    in_force: str = Field(description="the version in force now")
    changes: dict[str, list[Any]] = Field(description="setting -> [in force, proposed]")


class PolicyVersionOut(BaseModel):
    version: str
    document: dict[str, Any]
    note: str
    proposed_by: str
    proposed_at: datetime


class PolicyActivationOut(BaseModel):
    version: str
    active_from: datetime
    activated_by: str
    activated_at: datetime


class PolicyOut(BaseModel):
    """The version in force now, and activations scheduled later."""

    version: str
    document: dict[str, Any]
    active_from: datetime
    activated_by: str
    scheduled: list[PolicyActivationOut]


class PolicyHistoryOut(BaseModel):
    versions: list[PolicyVersionOut] = Field(description="oldest first; never edited")
    activations: list[PolicyActivationOut] = Field(description="in the order they were made")


class ReviewRunOut(BaseModel):
    as_of: datetime
    reminded: int
    escalated: int
    decided: int


class DriftOut(BaseModel):
    deal_key: str
    kind: str = Field(description="missing_here, stale_here or deleted_upstream")
    fields: list[str] = Field(description="stale_here: the fields whose values differ")


class ReconciliationOut(BaseModel):
    """One reconciliation of a CRM's window: what it checked and what drifted."""

    id: int
    source: str
    started_at: datetime
    finished_at: datetime
    since: datetime = Field(description="the window: records the CRM changed since then")
    checked: int
    in_sync: int
    missing_here: int
    stale_here: int
    deleted_upstream: int
    resyncs_queued: int
    drift: list[DriftOut] = Field(description="the drifted records (at most 500 listed)")
    unreadable: list[str] = Field(description="records the adapter could not read, and why")
    error: str | None = Field(description="what cut the run short (the CRM down, a limit)")


class BacktestIn(BaseModel):
    """A proposed policy document and the period whose registrations to replay through it."""

    model_config = ConfigDict(extra="forbid")

    document: JsonObject = Field(description="a whole policy document, as proposed")
    since: Instant = Field(description="registrations submitted at or after this moment")
    until: Instant = Field(description="... and before this one")
    limit: Integer = Field(default=1000, ge=0, le=100_000, description="changes listed at most")

    @model_validator(mode="after")
    def _period(self) -> BacktestIn:
        if self.since.tzinfo is None or self.until.tzinfo is None:
            raise ValueError("since and until need a time zone (e.g. ...Z)")
        if self.until <= self.since:
            raise ValueError("until must be after since")
        return self


class KindCountOut(BaseModel):
    before: int = Field(description="decided this way originally")
    after: int = Field(description="decided this way under the proposed policy")
    changed: int = Field(description="decided this way originally and otherwise now")


class BacktestChangeOut(BaseModel):
    registration_id: str
    partner_id: str
    submitted_at: datetime
    before: str
    after: str = Field(description="a status, or refused_repeat (a repeat would be refused)")
    reasons_before: list[str]
    reasons_after: list[str]


class BacktestOut(BaseModel):
    """What the proposed policy would have decided differently (nothing is changed)."""

    proposed_version: str
    since: datetime
    until: datetime
    replayed: int
    kinds: dict[str, KindCountOut]
    changed: int
    changes: list[BacktestChangeOut] = Field(description="in submission order, up to `limit`")
    elapsed_ms: float
