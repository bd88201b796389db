"""The onboarding program's configuration: one typed, versioned object with defaults in code.

A channel manager overrides any part of it with a JSON file (`ONBOARDING_CONFIG_FILE`); keys
left out keep their defaults. Validation runs when the file is loaded, so a bad program
(thresholds the wrong way round, tiers out of order, an unknown criterion) stops the service
at start instead of misjudging partners.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.onboarding.domain.programme import (
    ExamRule,
    LearningPath,
    default_exams,
    default_paths,
)
from shared.business_days import MONDAY_TO_FRIDAY, add_business_days
from shared.events.partners import PartnerType
from shared.inputs import InputError, country_code


class Criterion(StrEnum):
    STRATEGIC_FIT = "strategic_fit"
    ICP_OVERLAP = "icp_overlap"
    TECHNICAL_CAPABILITY = "technical_capability"
    GEOGRAPHIC_REACH = "geographic_reach"
    FINANCIAL_STANDING = "financial_standing"
    CULTURAL_FIT = "cultural_fit"  # the channel manager's judgement, never derived from data


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RevenueBand(_Config):
    min_annual_revenue: Decimal = Field(ge=0)
    score: Decimal = Field(ge=0, le=100)


class QualificationConfig(_Config):
    weights: dict[Criterion, Decimal] = Field(
        default_factory=lambda: {
            Criterion.STRATEGIC_FIT: Decimal(25),
            Criterion.ICP_OVERLAP: Decimal(20),
            Criterion.TECHNICAL_CAPABILITY: Decimal(20),
            Criterion.GEOGRAPHIC_REACH: Decimal(10),
            Criterion.FINANCIAL_STANDING: Decimal(15),
            Criterion.CULTURAL_FIT: Decimal(10),
        }
    )
    approve_at: Decimal = Field(default=Decimal(70), ge=0, le=100)
    reject_below: Decimal = Field(default=Decimal(40), ge=0, le=100)
    # Strategic fit: how much the program wants each partner type, and its strategic products.
    partner_type_scores: dict[PartnerType, Decimal] = Field(
        default_factory=lambda: {
            PartnerType.GSI: Decimal(90),
            PartnerType.TECHNOLOGY_ALLIANCE: Decimal(85),
            PartnerType.ISV: Decimal(80),
            PartnerType.MSP: Decimal(75),
            PartnerType.VAR_RESELLER: Decimal(70),
            PartnerType.CONSULTANT_INFLUENCER: Decimal(50),
            PartnerType.REFERRAL_AFFILIATE: Decimal(40),
        }
    )
    strategic_products: tuple[str, ...] = ("data", "ai", "security", "cloud")
    # ICP overlap: the industries and segments the vendor sells into.
    icp_industries: tuple[str, ...] = (
        "financial_services",
        "healthcare",
        "manufacturing",
        "retail",
        "public_sector",
        "technology",
    )
    icp_segments: tuple[str, ...] = ("enterprise", "mid_market")
    # Technical capability: claimed competencies the program recognises, certified staff.
    recognised_competencies: tuple[str, ...] = (
        "data",
        "ai",
        "security",
        "cloud",
        "migration",
        "analytics",
    )
    competencies_for_full_score: int = Field(default=3, ge=1)
    certified_staff_for_full_score: int = Field(default=10, ge=1)
    # Geographic reach: regions (ISO 3166 alpha-2) where the vendor sells.
    target_regions: tuple[str, ...] = (
        "US",
        "CA",
        "BR",
        "GB",
        "DE",
        "FR",
        "NL",
        "IN",
        "JP",
        "SG",
        "AU",
    )
    regions_for_full_score: int = Field(default=3, ge=1)
    # Financial standing: annual revenue bands (reporting currency), young companies penalised.
    revenue_bands: tuple[RevenueBand, ...] = (
        RevenueBand(min_annual_revenue=Decimal(0), score=Decimal(20)),
        RevenueBand(min_annual_revenue=Decimal(1_000_000), score=Decimal(50)),
        RevenueBand(min_annual_revenue=Decimal(10_000_000), score=Decimal(80)),
        RevenueBand(min_annual_revenue=Decimal(100_000_000), score=Decimal(100)),
    )
    young_company_years: int = Field(default=2, ge=0)
    young_company_penalty: Decimal = Field(default=Decimal(20), ge=0, le=100)
    # Cultural fit before a manager has judged it: neutral.
    cultural_fit_default: Decimal = Field(default=Decimal(50), ge=0, le=100)

    @model_validator(mode="after")
    def _consistent(self) -> QualificationConfig:
        if self.reject_below > self.approve_at:
            raise ValueError(
                f"reject_below ({self.reject_below}) must not exceed approve_at ({self.approve_at})"
            )
        if any(w < 0 for w in self.weights.values()) or sum(self.weights.values()) <= 0:
            raise ValueError("criterion weights must be non-negative and not all zero")
        missing = set(PartnerType) - set(self.partner_type_scores)
        if missing:
            raise ValueError(f"partner_type_scores misses {sorted(missing)}")
        try:  # a region in lower case or a typo matched no application's (upper-case) regions
            for region in self.target_regions:
                country_code(region, "target_regions names country")
        except InputError as error:
            raise ValueError(str(error)) from error
        if not self.revenue_bands or self.revenue_bands[0].min_annual_revenue != 0:
            raise ValueError("revenue_bands must start at min_annual_revenue 0")
        bounds = [b.min_annual_revenue for b in self.revenue_bands]
        if bounds != sorted(set(bounds)):
            raise ValueError("revenue_bands must be strictly ascending by min_annual_revenue")
        return self


class CompetencyRule(_Config):
    """A competency is held while enough people hold valid certifications on its track."""

    name: str = Field(min_length=1)
    min_sales: int = Field(default=1, ge=0)
    min_technical: int = Field(default=1, ge=0)


class TierRule(_Config):
    """A tier needs both attributed revenue and competencies."""

    name: str = Field(min_length=1)
    min_revenue: Decimal = Field(ge=0)
    min_competencies: int = Field(default=0, ge=0)
    required_competencies: tuple[str, ...] = ()


class ReviewBasis(StrEnum):
    ANNIVERSARY = "anniversary"  # each year on the partner's activation date
    FIXED_DATE = "fixed_date"  # every partner on the same day (`fixed_review_date`, MM-DD)


class ProgrammeMinimum(_Config):
    """What every partner must meet at its annual review, whatever its tier."""

    min_revenue: Decimal = Field(default=Decimal(0), ge=0)
    min_certifications: int = Field(default=0, ge=0)  # valid certifications of its people
    min_health: Decimal | None = Field(default=None, ge=0, le=100)  # None: health not required
    agreement_required: bool = True


class ProgrammeYear(_Config):
    """The annual requalification (`domain/programme_year.py`)."""

    review_basis: ReviewBasis = ReviewBasis.ANNIVERSARY
    fixed_review_date: str | None = Field(default=None, pattern=r"^\d{2}-\d{2}$")
    notice_days: tuple[int, ...] = (90, 30)
    probation_days: int = Field(default=90, ge=1)
    appeal_days: int = Field(default=30, ge=1)
    minimum: ProgrammeMinimum = Field(default_factory=ProgrammeMinimum)

    @model_validator(mode="after")
    def _consistent(self) -> ProgrammeYear:
        if self.review_basis is ReviewBasis.FIXED_DATE:
            if self.fixed_review_date is None:
                raise ValueError("programme_year: fixed_date needs fixed_review_date (MM-DD)")
            month, day = self.fixed_month_day
            date(2027, month, day)  # a real day of a common year (no 29 February)
        if any(d < 1 for d in self.notice_days) or len(set(self.notice_days)) != len(
            self.notice_days
        ):
            raise ValueError("programme_year: notice_days must be distinct positive days")
        return self

    @property
    def fixed_month_day(self) -> tuple[int, int]:
        month, _, day = (self.fixed_review_date or "01-01").partition("-")
        return int(month), int(day)


def _default_tiers() -> tuple[TierRule, ...]:
    return (
        TierRule(name="registered", min_revenue=Decimal(0)),
        TierRule(name="bronze", min_revenue=Decimal(50_000)),
        TierRule(name="silver", min_revenue=Decimal(250_000), min_competencies=1),
        TierRule(name="gold", min_revenue=Decimal(1_000_000), min_competencies=2),
        TierRule(
            name="platinum",
            min_revenue=Decimal(5_000_000),
            min_competencies=3,
            required_competencies=("security",),
        ),
    )


def _default_competencies() -> tuple[CompetencyRule, ...]:
    return tuple(
        CompetencyRule(name=name)
        for name in ("data", "ai", "security", "cloud", "migration", "analytics")
    )


class OnboardingConfig(_Config):
    version: str = "2026-11-onb-1"
    qualification: QualificationConfig = Field(default_factory=QualificationConfig)
    # Lowest first; the first tier must need nothing (every active partner has a tier).
    tiers: tuple[TierRule, ...] = Field(default_factory=_default_tiers)
    competencies: tuple[CompetencyRule, ...] = Field(default_factory=_default_competencies)
    # Products that need a competency before the partner is authorised to register them.
    gated_products: dict[str, str] = Field(default_factory=dict)
    checklist: tuple[str, ...] = ("agreement_signed", "profile_complete", "first_enablement_done")
    agreement_item: str = "agreement_signed"
    # Items a partner's own tick cannot complete: the partner submits evidence (a reference),
    # a channel manager or a system client (the enablement system) confirms it.
    evidence_items: tuple[str, ...] = ("agreement_signed", "first_enablement_done")
    agreement_term_days: int | None = Field(default=365, ge=1)  # None: agreements never lapse
    grace_days: int = Field(default=30, ge=0)
    expel_after_suspended_days: int = Field(default=90, ge=0)
    revenue_window_days: int = Field(default=365, ge=1)
    reporting_currency: str = Field(default="USD", pattern="^[A-Z]{3}$")
    # The review queue's SLA: an application awaiting a manager is due this many business days
    # after it was made (on this calendar); past it, the reviewers are told once.
    review_days: int = Field(default=3, ge=1)
    business_weekdays: frozenset[int] = Field(default=MONDAY_TO_FRIDAY, min_length=1)
    holidays: frozenset[date] = frozenset()

    def review_due_at(self, applied_at: datetime) -> datetime:
        """When an application awaiting review must be decided."""
        return add_business_days(
            applied_at, self.review_days, self.business_weekdays, self.holidays
        )

    # The learning system's certification exams (xAPI activity ids); None: one sales and one
    # technical exam per competency (`domain/enablement.py`).
    exams: tuple[ExamRule, ...] | None = None
    # Learning paths per role, partner type and tier; None: one per exam and one for customer
    # success (`domain/programme.py`).
    learning_paths: tuple[LearningPath, ...] | None = None
    # Reminders before a certification expires, days before (each sent once; a late run sends
    # only the most urgent one due).
    certification_reminder_days: tuple[int, ...] = (60, 30, 7)
    # Engagement with the resource library counted in the enablement health (trailing days).
    engagement_window_days: int = Field(default=90, ge=1)
    # The annual review of every partner against its tier and the programme minimum.
    programme_year: ProgrammeYear = Field(default_factory=ProgrammeYear)
    # Tier bars per partner type: the same ladder (names, in order) with the type's own
    # thresholds, e.g. a referral partner's bronze at less revenue than a GSI's. A type not
    # listed uses `tiers`.
    type_tiers: dict[PartnerType, tuple[TierRule, ...]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> OnboardingConfig:
        if not self.tiers:
            raise ValueError("at least one tier is required")
        if not self.business_weekdays <= set(range(1, 8)):
            raise ValueError("business_weekdays must name ISO weekdays 1 (Monday) to 7")
        base = self.tiers[0]
        if base.min_revenue != 0 or base.min_competencies or base.required_competencies:
            raise ValueError(f"the first tier ({base.name}) must require nothing")
        names = [t.name for t in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be unique: {names}")
        revenues = [t.min_revenue for t in self.tiers]
        if revenues != sorted(revenues):
            raise ValueError("tiers must be ordered by ascending min_revenue")
        known = {c.name for c in self.competencies}
        for partner_type, ladder in self.type_tiers.items():
            if [t.name for t in ladder] != names:
                raise ValueError(
                    f"type_tiers[{partner_type.value}] must name the tiers {names}, in order"
                )
            first = ladder[0]
            if first.min_revenue != 0 or first.min_competencies or first.required_competencies:
                raise ValueError(
                    f"type_tiers[{partner_type.value}]: the first tier must require nothing"
                )
            bars = [t.min_revenue for t in ladder]
            if bars != sorted(bars):
                raise ValueError(f"type_tiers[{partner_type.value}] must ascend by min_revenue")
        for tier in (*self.tiers, *(t for ladder in self.type_tiers.values() for t in ladder)):
            unknown = set(tier.required_competencies) - known
            if unknown:
                raise ValueError(
                    f"tier {tier.name} requires unknown competencies {sorted(unknown)}"
                )
        unknown_gates = set(self.gated_products.values()) - known
        if unknown_gates:
            raise ValueError(f"gated_products name unknown competencies {sorted(unknown_gates)}")
        if self.agreement_item not in self.checklist:
            raise ValueError(f"agreement_item {self.agreement_item!r} is not a checklist item")
        exam_tracks = {e.track for e in self.certification_exams} - known
        if exam_tracks:
            raise ValueError(f"exams certify on unknown competencies {sorted(exam_tracks)}")
        activities = [e.activity_id for e in self.certification_exams] + [
            e.renewal_activity_id
            for e in self.certification_exams
            if e.renewal_activity_id is not None
        ]
        if len(set(activities)) != len(activities):
            raise ValueError("an exam or renewal activity_id is listed twice")
        self._consistent_paths()
        reminders = self.certification_reminder_days
        if any(d < 1 for d in reminders) or len(set(reminders)) != len(reminders):
            raise ValueError(
                f"certification_reminder_days must be distinct positive days: {list(reminders)}"
            )
        stray = set(self.evidence_items) - set(self.checklist)
        if stray:
            raise ValueError(f"evidence_items name items not on the checklist: {sorted(stray)}")
        return self

    # Cached: the defaults are built once per program, not on every read (a programme-wide read
    # asks once per person).
    @cached_property
    def certification_exams(self) -> tuple[ExamRule, ...]:
        if self.exams is not None:
            return self.exams
        return default_exams(tuple(c.name for c in self.competencies))

    @cached_property
    def paths(self) -> tuple[LearningPath, ...]:
        if self.learning_paths is not None:
            return self.learning_paths
        return default_paths(self.certification_exams)

    def _consistent_paths(self) -> None:
        names = [p.name for p in self.paths]
        if len(set(names)) != len(names):
            raise ValueError(f"learning path names must be unique: {names}")
        exams = {e.activity_id for e in self.certification_exams}
        tiers = {t.name for t in self.tiers}
        for path in self.paths:
            if path.leads_to is not None and path.leads_to not in exams:
                raise ValueError(f"learning path {path.name} leads to unknown exam {path.leads_to}")
            if set(path.tiers) - tiers:
                raise ValueError(
                    f"learning path {path.name} names unknown tiers {sorted(set(path.tiers) - tiers)}"
                )
            modules = [m.activity_id for m in path.modules]
            if len(set(modules)) != len(modules):
                raise ValueError(f"learning path {path.name} lists a module twice")

    def tiers_for(self, partner_type: str | None) -> tuple[TierRule, ...]:
        """The tier bars of a partner type (the program's `tiers` unless the type has its own)."""
        if partner_type is not None and partner_type in self.type_tiers:
            return self.type_tiers[PartnerType(partner_type)]
        return self.tiers

    def tier_rule(self, name: str, partner_type: str | None = None) -> TierRule | None:
        return next((t for t in self.tiers_for(partner_type) if t.name == name), None)

    @property
    def base_tier(self) -> str:
        return self.tiers[0].name

    def tier_rank(self, name: str) -> int:
        """Position of a tier (unknown tiers, e.g. from an older config, rank lowest)."""
        for rank, tier in enumerate(self.tiers):
            if tier.name == name:
                return rank
        return -1
