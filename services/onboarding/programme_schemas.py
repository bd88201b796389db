"""HTTP models of the programme: signals announced, the programme year (reviews, notices,
plans, appeals), partner account managers."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AnnouncedOut(BaseModel):
    as_of: str
    announced: dict[str, str] = Field(description="partner -> enablement score announced")
