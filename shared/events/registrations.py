"""Deal registration contracts produced by deals (topic deals.registrations.v1)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from shared.events.bounds import Amount4
from shared.events.crm import Customer
from shared.events.envelope import EventPayload, UtcDatetime, event_type


class RegistrationStatus(StrEnum):
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    PENDING_REVIEW = "pending_review"
    WON = "won"
    LOST = "lost"
    EXPIRED = "expired"


class ConflictInfo(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: str  # partner | direct_sales
    reference: str  # the other registration id, or the CRM deal key
    party: str  # the other partner id, or the direct owner
    matched_on: str  # domain | name
    similarity: float = Field(ge=0, le=1, allow_inf_nan=False)
    registered_at: UtcDatetime


@event_type("registration.decided.v1")
class RegistrationDecided(EventPayload):
    registration_id: str
    partner_id: str
    customer: Customer
    products: tuple[str, ...]
    amount: Amount4
    currency: str
    status: RegistrationStatus
    reasons: tuple[str, ...]
    conflicts: tuple[ConflictInfo, ...] = ()
    policy_version: str
    decided_at: UtcDatetime
    expires_at: UtcDatetime | None = None
    crm_deal_key: str | None = None


@event_type("registration.status_changed.v1")
class RegistrationStatusChanged(EventPayload):
    registration_id: str
    partner_id: str
    previous_status: RegistrationStatus
    status: RegistrationStatus
    reason: str
    changed_at: UtcDatetime
    expires_at: UtcDatetime | None = None
    crm_deal_key: str | None = None
    amount: Amount4 | None = None
    currency: str | None = None


@event_type("registration.review_escalated.v1")
class RegistrationReviewEscalated(EventPayload):
    """A registration's review passed its deadline undecided (what the policy then does to it
    follows as `registration.status_changed.v1`, if anything)."""

    registration_id: str
    partner_id: str
    review_due_at: UtcDatetime
    acceptance_due_at: UtcDatetime | None = None
    escalated_at: UtcDatetime
    policy_version: str
