"""Deal registration contracts produced by deals (topics deals.registrations.v1 and
notifications.partner.v1)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from shared.events.crm import Customer
from shared.events.envelope import EventPayload, event_type


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
    similarity: float
    registered_at: datetime


@event_type("registration.decided.v1")
class RegistrationDecided(EventPayload):
    registration_id: str
    partner_id: str
    customer: Customer
    products: tuple[str, ...]
    amount: Decimal
    currency: str
    status: RegistrationStatus
    reasons: tuple[str, ...]
    conflicts: tuple[ConflictInfo, ...] = ()
    policy_version: str
    decided_at: datetime
    expires_at: datetime | None = None
    crm_deal_key: str | None = None


@event_type("registration.status_changed.v1")
class RegistrationStatusChanged(EventPayload):
    registration_id: str
    partner_id: str
    previous_status: RegistrationStatus
    status: RegistrationStatus
    reason: str
    changed_at: datetime
    expires_at: datetime | None = None
    crm_deal_key: str | None = None
    amount: Decimal | None = None
    currency: str | None = None


@event_type("notification.partner.v1")
class PartnerNotification(EventPayload):
    """A message for a partner app (key: partner id). `recipient` may be the partner or, for
    approvals and direct-sales conflicts, the direct account owner (addressed via the partner)."""

    notification_id: str
    partner_id: str
    recipient: str
    # registration_approved | registration_rejected | conflict | pending_review | expired |
    # direct_sales_conflict | co_sell | overlap_hint
    kind: str
    subject: str
    body: str
    registration_id: str | None = None
    created_at: datetime
