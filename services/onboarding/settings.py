from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from services.onboarding.domain.config import OnboardingConfig


class OnboardingSettings(BaseSettings):
    """Onboarding-only settings (prefix ONBOARDING_)."""

    model_config = SettingsConfigDict(env_prefix="ONBOARDING_", extra="ignore", frozen=True)

    # JSON file overriding the program configuration (OnboardingConfig); empty: code defaults.
    config_file: str = ""
    # How often the scheduled requalification runs (the first run is one period after start).
    requalification_period_seconds: float = 3600.0


def load_config(settings: OnboardingSettings) -> OnboardingConfig:
    if not settings.config_file:
        return OnboardingConfig()
    return OnboardingConfig.model_validate_json(Path(settings.config_file).read_text())
