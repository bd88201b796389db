"""What each page shows, shaped from the services' answers (the templates render these)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class Loose(BaseModel):
    # The services own their contracts; the portal reads the fields it shows and ignores others.
    model_config = ConfigDict(extra="ignore")


class PartnerView(Loose):
    partner_id: str
    company_name: str
    status: str
    tier: str
    partner_type: str
    attributed_revenue: str
    grace_until: str | None = None
    agreement_valid_until: str | None = None
    reason: str = ""


class CertificationView(Loose):
    model_config = ConfigDict(extra="allow")


class RegistrationView(Loose):
    registration_id: str
    customer_name: str
    customer_domain: str | None = None
    amount: str
    currency: str
    status: str
    reasons: list[str] = []
    submitted_at: datetime
    expires_at: datetime | None = None
    extensions_used: int = 0
    # Filled by the view from the domain rules:
    countdown: str = ""
    extendable: bool = False


class NotificationView(Loose):
    cursor: str
    notification_id: str
    kind: str
    subject: str
    body: str
    created_at: datetime
    read: bool = False


class HomePage(BaseModel):
    partner: PartnerView
    open_registrations: list[RegistrationView]
    notifications: list[NotificationView]
    unread: int
    last_cursor: str | None
    certifications: list[dict[str, Any]]


class CheckAnswer(Loose):
    would_be: str
    reasons: list[str]
    policy_version: str = ""
