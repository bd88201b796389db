"""Onboarding's HTTP requests and responses (the events are in shared/events/partners.py)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.qualification import Application, normalise_domain
from services.onboarding.domain.tiers import Certification, CertificationRole, certification_track
from shared.events.partners import PartnerType
from shared.inputs import (
    AsOf,
    Code,
    CountryCode,
    EmailAddress,
    FreeText,
    Ident,
    Instant,
    Integer,
    Money,
    Name,
    Reference,
    as_ident,
    as_name,
    as_text,
)

Email = EmailAddress
# Who acted on a record: shown to channel managers only (a partner's answer leaves it unset).
ManagersOnly = Annotated[str | None, Field(description="channel managers only")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ContactIn(_In):
    name: Name
    email: Email
    role: Annotated[Ident, Field(max_length=100)] = "primary"


class ApplicationIn(_In):
    company_name: Annotated[str, Field(min_length=2, max_length=200), AfterValidator(as_name)]
    domain: Annotated[str, Field(min_length=4, max_length=253), AfterValidator(as_ident)] = Field(
        description="company web domain"
    )
    partner_type: PartnerType
    regions: list[CountryCode] = Field(min_length=1, max_length=250)
    products: list[Code] = Field(min_length=1, max_length=50)
    competencies_claimed: list[Code] = Field(default_factory=list, max_length=50)
    industries: list[Code] = Field(default_factory=list, max_length=50)
    segments: list[Code] = Field(default_factory=list, max_length=10)
    annual_revenue: Money
    years_in_business: Integer = Field(ge=0, le=500)
    certified_staff: Integer = Field(default=0, ge=0, le=1_000_000)
    contacts: list[ContactIn] = Field(min_length=1, max_length=20)

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        return normalise_domain(value)

    def to_domain(self) -> Application:
        return Application(
            company_name=self.company_name,
            domain=self.domain,
            partner_type=self.partner_type,
            regions=frozenset(self.regions),
            products=frozenset(self.products),
            competencies_claimed=frozenset(self.competencies_claimed),
            industries=frozenset(self.industries),
            segments=frozenset(self.segments),
            annual_revenue=self.annual_revenue,
            years_in_business=self.years_in_business,
            certified_staff=self.certified_staff,
        )


class DecisionIn(_In):
    approve: bool
    note: FreeText = ""
    cultural_fit: Decimal | None = Field(default=None, ge=0, le=100, max_digits=5, decimal_places=2)


class ChecklistIn(_In):
    """Evidence for a checklist item: a partner submits it for a channel manager or the
    enablement system to confirm; a confirmer may give its own."""

    evidence: Reference | None = Field(
        default=None,
        description="a reference to the evidence: the signed agreement's envelope id, the "
        "enablement system's completion record",
    )


class CertificationIn(_In):
    person_email: Email
    person_name: Name | None = None
    role: CertificationRole
    track: Code
    issued_at: Instant
    expires_at: Instant

    @model_validator(mode="after")
    def _dates(self) -> CertificationIn:
        if self.issued_at.tzinfo is None or self.expires_at.tzinfo is None:
            raise ValueError(
                "issued_at and expires_at need a time zone (e.g. 2026-01-01T00:00:00Z)"
            )
        if self.expires_at <= self.issued_at:
            raise ValueError("expires_at must be after issued_at")
        return self

    def to_domain(self, config: OnboardingConfig) -> Certification:
        """The certification, its person keyed by the lower-cased e-mail and its track one of
        the program's competencies (422 otherwise)."""
        return Certification(
            self.person_email.lower(),
            self.role,
            certification_track(config, self.track),
            self.issued_at,
            self.expires_at,
        )


class StatusIn(_In):
    status: Literal["active", "suspended", "expelled", "onboarding"]
    reason: Annotated[str, Field(min_length=3, max_length=2000), AfterValidator(as_text)]


class RequalificationIn(_In):
    as_of: AsOf | None = Field(
        default=None, description="evaluate as of this moment (default: now)"
    )
    partner_ids: list[Annotated[Ident, Field(max_length=100)]] | None = Field(
        default=None, max_length=10_000
    )

    @field_validator("as_of")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("as_of needs a time zone (e.g. 2027-01-01T00:00:00Z)")
        return value


# ---- responses. Times are ISO 8601 strings as Postgres gave them (offset +00:00).


class CriterionOut(BaseModel):
    criterion: str
    score: str = Field(description="0-100, decimal")
    weight: str
    explanation: str


class QualificationOut(BaseModel):
    total: str = Field(description="the weighted score, one decimal")
    outcome: Literal["approve", "review", "reject"]
    explanation: str
    policy_version: str
    criteria: list[CriterionOut]


class DomainVerificationOut(BaseModel):
    """How the partner proves it controls its domain: publish `record` as a TXT record on the
    domain, or as a line of `well_known_path` on its site; then ask for the check
    (`POST /partners/{id}/domain-verification`). Until then the domain is claimed, not held."""

    domain: str
    state: Literal["claimed", "held"]
    record: str
    well_known_path: str


class ApplicationOut(BaseModel):
    partner_id: str
    status: str
    duplicate: bool = Field(
        default=False,
        deprecated=True,
        description="always false, kept for the clients that read it: an applicant is never "
        "told whether others claim its domain (anyone may apply; a claim blocks no one)",
    )
    qualification: QualificationOut
    domain_verification: DomainVerificationOut


class VersionOut(BaseModel):
    """One version of a partner, from its audit trail."""

    version: int
    change: str
    status: str
    tier: str
    reason: str
    changed_at: str
    acted_by: str | None = Field(
        default=None, description="who made the change (channel managers only)"
    )


class PartnerIdentityOut(BaseModel):
    """What every answer about a partner starts with (its state, the directory's summary)."""

    partner_id: str
    company_name: str
    domain: str
    partner_type: str
    status: str
    tier: str


class PartnerOut(PartnerIdentityOut):
    """A partner's state. Channel managers also get `application`, `qualification`,
    `decision_note` and `suspended_at`; `GET /partners/{id}` adds `history`. Fields a caller
    does not get are left out of the answer (not null)."""

    version: int
    regions: list[str]
    products: list[str]
    competencies: list[str]
    domain_verification: DomainVerificationOut
    checklist: dict[str, str] = Field(description="item -> completed at")
    checklist_evidence: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="evidence item -> reference, submitted_by/at, confirmed_by/at",
    )
    agreement_valid_until: str | None
    attributed_revenue: str
    grace_until: str | None
    reason: str
    policy_version: str
    applied_at: str | None
    updated_at: str | None
    application: dict[str, Any] | None = None
    qualification: QualificationOut | None = None
    decision_note: str | None = None
    suspended_at: str | None = None
    review_due_at: str | None = Field(
        default=None, description="the review queue: when the application must be decided"
    )
    account_manager: str | None = Field(
        default=None, description="the vendor's person who owns the relationship"
    )
    history: list[VersionOut] | None = None


class CertificationOut(BaseModel):
    certification_id: str
    partner_id: str
    person: str
    person_name: str | None
    role: str
    track: str
    issued_at: str
    expires_at: str
    recorded_at: str
    recorded_by: str | None = Field(
        default=None, description="who recorded it (channel managers only)"
    )
    voided_at: str | None = Field(
        default=None, description="when the learning system voided the statement behind it"
    )


class CertificationRecordedOut(BaseModel):
    certification_id: str
    created: bool
    competencies: list[str]
    tier: str
    status: str


class RequalificationOut(BaseModel):
    as_of: str
    policy_version: str
    changes: dict[str, list[str]] = Field(description="partner id -> the changes made")


class PartnerTokenOut(BaseModel):
    partner_id: str
    token: str


class ReviewEscalationsOut(BaseModel):
    as_of: str
    escalated: list[str] = Field(description="applications past their review deadline, told now")


class CompetencyGapOut(BaseModel):
    competency: str
    required: bool = Field(description="the next tier names it (not only counts it)")
    sales_held: int
    sales_needed: int
    technical_held: int
    technical_needed: int
    missing: int = Field(description="certified people still missing for it")
    reason: str


class CompetencyLapseOut(BaseModel):
    competency: str
    lapses_at: str = Field(description="when it is no longer held if nothing is renewed")


class RevenueLeavingOut(BaseModel):
    on: str = Field(description="the first day this revenue no longer counts (a date)")
    amount: str


class NextTierOut(BaseModel):
    """What the partner still lacks for the tier above its own, as of `as_of`, and by when."""

    partner_id: str
    as_of: str
    policy_version: str
    status: str
    tier: str
    next_tier: str | None = Field(description="null: the top of the ladder")
    attributed_revenue: str = Field(description="in the trailing window, as of `as_of`")
    revenue_needed: str | None
    revenue_short: str = Field(description="how much more revenue the next tier needs (0: met)")
    currency: str
    revenue_window_days: int
    competencies: list[str] = Field(description="held now")
    competencies_needed: int
    gaps: list[CompetencyGapOut] = Field(
        description="competencies to gain, with the certifications each still needs"
    )
    unmet: list[str] = Field(description="the next tier's requirements not met, in words")
    keep_unmet: list[str] = Field(
        description="in grace: what the current tier lacks, to cure by `grace_until`"
    )
    grace_until: str | None
    agreement_valid_until: str | None
    lapses: list[CompetencyLapseOut] = Field(
        description="competencies held and when each lapses unrenewed, soonest first"
    )
    revenue_leaving: RevenueLeavingOut | None = Field(
        description="the next attributed revenue to leave the trailing window"
    )
