"""The partner directory's response models (the console's partners list)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from services.onboarding.schemas import PartnerIdentityOut


class PartnerSummaryOut(PartnerIdentityOut):
    attributed_revenue: str = Field(description="what the tier rules count, reporting currency")
    agreement_valid_until: str | None
    grace_until: str | None
    updated_at: str | None


class PartnerDirectoryOut(BaseModel):
    partners: list[PartnerSummaryOut]
    total: int = Field(description="partners matching the filters")
    offset: int
    limit: int
