"""Certification exams of the program (configuration, pure): the learning system's activities
whose `passed` statements certify people (`enablement.py` applies them)."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class CertificationRole(StrEnum):
    SALES = "sales"
    TECHNICAL = "technical"


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


EXAM_BASE = "https://enablement.pollinate.dev/exams/"


def default_exams(tracks: tuple[str, ...]) -> tuple[ExamRule, ...]:
    """One sales and one technical exam per competency track."""
    return tuple(
        ExamRule(activity_id=f"{EXAM_BASE}{track}/{role.value}", track=track, role=role)
        for track in tracks
        for role in CertificationRole
    )
