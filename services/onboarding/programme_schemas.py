"""HTTP models of the programme: signals announced, the programme year (reviews, notices,
plans, appeals), partner account managers."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from services.onboarding.schemas import Email, ManagersOnly
from shared.inputs import FreeText, Ident, as_text


class AnnouncedOut(BaseModel):
    as_of: str
    announced: dict[str, str] = Field(description="partner -> enablement score announced")


class ProgrammeRunOut(BaseModel):
    as_of: str
    policy_version: str
    done: dict[str, list[str]] = Field(
        description="partner -> what happened: notice:<days>, review:<outcome>, "
        "probation_end:<outcome>"
    )


class AppealIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    review_id: Ident
    grounds: Annotated[str, Field(min_length=3, max_length=4000), AfterValidator(as_text)]


class AppealDecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    upheld: bool
    note: Annotated[str, Field(min_length=3, max_length=4000), AfterValidator(as_text)]


class AppealOut(BaseModel):
    appeal_id: str
    review_id: str
    partner_id: str
    grounds: str
    filed_at: str
    upheld: bool | None = None
    note: str | None = None
    decided_at: str | None = None
    filed_by: ManagersOnly = None
    decided_by: ManagersOnly = None


class ReviewOut(BaseModel):
    review_id: str
    review_on: str
    basis: str = Field(description="annual | probation_end")
    outcome: str
    tier_before: str
    tier_after: str
    status_before: str
    status_after: str
    reasons: list[str]
    plan: list[str]
    probation_until: str | None
    appeal_until: str | None
    decided_at: str
    reversed_at: str | None
    appeal: AppealOut | None = None


class ProgrammeOut(BaseModel):
    """A partner's programme year: its next review, its reviews with their appeals, its
    health as attribution last scored it, its account manager."""

    partner_id: str
    next_review_on: str | None = Field(description="null: not active in the programme yet")
    on_probation_until: str | None
    health_score: str | None
    health_day: str | None
    account_manager: str | None = None
    reviews: list[ReviewOut]


class AccountManagerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    manager: Email = Field(description="the vendor's person who owns the relationship (e-mail)")
    note: FreeText = ""


class AssignmentOut(BaseModel):
    manager: str
    previous: str | None
    note: str
    assigned_by: str
    assigned_at: str


class AccountManagerOut(BaseModel):
    partner_id: str
    account_manager: str | None
    changed: bool = Field(description="false: the same manager again, nothing recorded")
    assignments: list[AssignmentOut] = Field(description="every assignment, oldest first")
