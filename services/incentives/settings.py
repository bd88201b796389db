from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from services.incentives.domain.programs import IncentivePrograms, load_programs


class IncentivesSettings(BaseSettings):
    """Incentives-only settings (prefix INCENTIVES_)."""

    model_config = SettingsConfigDict(env_prefix="INCENTIVES_", extra="ignore", frozen=True)

    # JSON file overriding the default programs (services/incentives/README.md); empty: defaults.
    programs_file: Path | None = None
    mdf_expiry_check_seconds: float = 60.0

    def programs(self) -> IncentivePrograms:
        text = self.programs_file.read_text() if self.programs_file else None
        return load_programs(text)
