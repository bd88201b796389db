"""Enablement parts of the program configuration (pure): certification exams (the learning
system's activities whose `passed` statements certify people, applied by `enablement.py`) and
learning paths (modules in order per role, partner type and tier, each leading to an exam;
progress is computed by `learning.py`)."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from shared.events.partners import PartnerType


class CertificationRole(StrEnum):
    SALES = "sales"
    TECHNICAL = "technical"


class PersonRole(StrEnum):
    """What a partner's person does: the role their learning path is chosen by."""

    SALES = "sales"
    TECHNICAL = "technical"  # pre-sales and technical staff
    CUSTOMER_SUCCESS = "customer_success"


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExamRule(_Config):
    """A certification exam in the learning system: passing it certifies on `track` as `role`."""

    activity_id: str = Field(min_length=1, max_length=2000)
    track: str = Field(min_length=1)
    role: CertificationRole
    valid_days: int = Field(default=730, ge=1)
    # A `passed` statement whose scaled score is below this certifies nobody (None: the
    # learning system's pass is enough).
    min_scaled_score: Decimal | None = Field(default=None, ge=-1, le=1)
    # The shorter learning-system module that renews the certification: passing or completing
    # it while the certification is still valid certifies again for `valid_days` from then
    # (None: only the exam renews). An expired certification needs the exam again.
    renewal_activity_id: str | None = Field(default=None, min_length=1, max_length=2000)


EXAM_BASE = "https://enablement.pollinate.dev/exams/"


def default_exams(tracks: tuple[str, ...]) -> tuple[ExamRule, ...]:
    """One sales and one technical exam per competency track, each with its renewal module."""
    return tuple(
        ExamRule(
            activity_id=f"{EXAM_BASE}{track}/{role.value}",
            track=track,
            role=role,
            renewal_activity_id=f"{EXAM_BASE}{track}/{role.value}/renewal",
        )
        for track in tracks
        for role in CertificationRole
    )


class Module(_Config):
    activity_id: str = Field(min_length=1, max_length=2000)  # the learning system's activity
    title: str = Field(min_length=1, max_length=200)


class LearningPath(_Config):
    """Modules a person of `role` takes, in order, at partners of `partner_types` in `tiers`
    (empty: every type, every tier), leading to the certification exam `leads_to` (None: a
    path that certifies nothing, e.g. customer adoption)."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    role: PersonRole
    partner_types: tuple[PartnerType, ...] = ()
    tiers: tuple[str, ...] = ()
    modules: tuple[Module, ...] = Field(min_length=1)
    leads_to: str | None = None  # an exam's activity id

    def applies_to(self, partner_type: str, tier: str) -> bool:
        return (not self.partner_types or partner_type in self.partner_types) and (
            not self.tiers or tier in self.tiers
        )


MODULE_BASE = "https://enablement.pollinate.dev/modules/"


def default_paths(exams: tuple[ExamRule, ...]) -> tuple[LearningPath, ...]:
    """A path per exam (its track's fundamentals then its role's deep dive, leading to it), and
    a customer-success path on adoption that certifies nothing."""
    paths = [
        LearningPath(
            name=f"{exam.track}-{exam.role.value}",
            role=PersonRole(exam.role.value),
            modules=(
                Module(
                    activity_id=f"{MODULE_BASE}{exam.track}/fundamentals",
                    title=f"{exam.track} fundamentals",
                ),
                Module(
                    activity_id=f"{MODULE_BASE}{exam.track}/{exam.role.value}",
                    title=f"{exam.track} for {exam.role.value}",
                ),
            ),
            leads_to=exam.activity_id,
        )
        for exam in exams
    ]
    adoption = LearningPath(
        name="customer-adoption",
        role=PersonRole.CUSTOMER_SUCCESS,
        modules=(
            Module(activity_id=f"{MODULE_BASE}adoption/onboarding", title="customer onboarding"),
            Module(activity_id=f"{MODULE_BASE}adoption/health", title="adoption and health"),
        ),
    )
    return (*paths, adoption)
