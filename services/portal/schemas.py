"""What each page shows, shaped from the services' answers (the templates render these)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

from services.portal.domain import enablement
from services.portal.domain.enablement import Expiring


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
    extensions_left: int = 0
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


class GapView(Loose):
    competency: str
    required: bool = False
    missing: int
    reason: str


class LapseView(Loose):
    competency: str
    lapses_at: datetime


class NextTierView(Loose):
    """Onboarding's answer on what the tier above still needs, and by when."""

    tier: str
    next_tier: str | None = None
    attributed_revenue: str
    revenue_needed: str | None = None
    revenue_short: str
    currency: str
    revenue_window_days: int
    competencies: list[str] = []
    competencies_needed: int = 0
    gaps: list[GapView] = []
    unmet: list[str] = []
    keep_unmet: list[str] = []
    grace_until: datetime | None = None
    agreement_valid_until: datetime | None = None
    lapses: list[LapseView] = []
    revenue_leaving: dict[str, str] | None = None

    @property
    def revenue_met(self) -> bool:
        return Decimal(self.revenue_short) <= 0


class LotView(Loose):
    """A lot of the partner's MDF fund as incentives states it (`GET /partners/{p}/mdf`): what
    is left of it, when it expires, and the amount of it that expired unused (`expired`, "0.00"
    when none did: an amount, not a flag)."""

    lot_id: str
    amount: str
    remaining: str
    expired: str
    expires_at: datetime
    # Filled by the view: whether its expiry has passed (nothing left of it is available then).
    lapsed: bool = False

    @property
    def expired_unused(self) -> bool:
        """Whether some of the lot expired unused."""
        return Decimal(self.expired) > 0


class HomePage(BaseModel):
    partner: PartnerView
    open_registrations: list[RegistrationView]
    notifications: list[NotificationView]
    unread: int
    last_cursor: str | None
    notifications_problem: str = ""  # why they cannot be shown now (the service is down)
    certifications: list[dict[str, Any]]
    expiring: list[Expiring] = []
    next_tier: NextTierView | None = None


class CheckAnswer(Loose):
    would_be: str
    reasons: list[str]
    policy_version: str = ""


class ModuleView(Loose):
    activity_id: str
    title: str
    state: str
    completed_at: datetime | None = None


class ProgressView(Loose):
    person_id: str
    email: str
    name: str | None = None
    modules: list[ModuleView]
    done: int
    complete: bool
    exam_passed_at: datetime | None = None
    # Filled by the view: the signed-in person's own, and until when they hold the certification
    # the path leads to.
    mine: bool = False
    certified_until: datetime | None = None

    @property
    def next_module(self) -> ModuleView | None:
        return next((m for m in self.modules if m.state == "next"), None)


class PathView(Loose):
    name: str
    role: str
    leads_to: str | None = None
    certification_track: str | None = None
    certification_role: str | None = None
    modules: int
    people: list[ProgressView]


class ResourceView(Loose):
    resource_id: str
    kind: str
    title: str
    url: str
    partner_types: list[str] = []
    tiers: list[str] = []
    published_at: datetime

    @property
    def openable(self) -> bool:
        """A browser can be sent to it (one stored before onboarding checked addresses may
        not be: the page offers no download of it)."""
        return enablement.openable(self.url)
