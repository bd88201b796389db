from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.incentives.domain.campaigns import LONGEST_CLAIM_WINDOW_DAYS
from services.incentives.domain.programs import IncentivePrograms, load_programs


class IncentivesSettings(BaseSettings):
    """Incentives-only settings (prefix INCENTIVES_)."""

    model_config = SettingsConfigDict(env_prefix="INCENTIVES_", extra="ignore", frozen=True)

    # JSON file overriding the default programs (services/incentives/README.md); empty: defaults.
    programs_file: Path | None = None
    mdf_expiry_check_seconds: float = 60.0
    # Days after a campaign's end that claims against its MDF pre-approval are still accepted;
    # then what is left of the reservation goes back to the fund.
    preapproval_claim_window_days: int = Field(default=60, ge=0, le=LONGEST_CLAIM_WINDOW_DAYS)
    # Announce each ledger entry of a booking alone (incentive.earned.v1, .mdf_accrued.v1) instead
    # of the booking as one incentive.credit_booked.v1: only while upgrading from a version that
    # did so and a reader of incentives.ledger.v1 still runs it (it would skip the new type).
    ledger_entries_alone: bool = False

    def programs(self) -> IncentivePrograms:
        text = self.programs_file.read_text() if self.programs_file else None
        return load_programs(text)
