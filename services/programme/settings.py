from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ProgrammeSettings(BaseSettings):
    """Programme-only settings (prefix PROGRAMME_)."""

    model_config = SettingsConfigDict(env_prefix="PROGRAMME_", extra="ignore", frozen=True)

    # The incentive rules that mark a new logo (a deal with a customer never credited before):
    # incentives' programs name their new-logo kicker `new_logo` unless configured otherwise.
    new_logo_rules: tuple[str, ...] = Field(default=("kicker:new_logo",), min_length=1)
    # The currency attribution credits every deal in (its config's `reporting_currency`): a
    # business plan's revenue goal is measured against those credits, so a plan is in it.
    reporting_currency: str = Field(default="USD", pattern="^[A-Z]{3}$")
    # How often the current quarter's KPIs are computed for a snapshot (published on
    # programme.kpis.v1 only when a figure changed).
    snapshot_seconds: float = Field(default=300.0, gt=0)
