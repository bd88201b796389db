from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from services.attribution.domain.config import AttributionConfig


class AttributionSettings(BaseSettings):
    """Attribution-only settings (prefix ATTRIBUTION_)."""

    model_config = SettingsConfigDict(env_prefix="ATTRIBUTION_", extra="ignore", frozen=True)

    # JSON file overriding AttributionConfig's defaults (see the service README); empty: defaults.
    config_file: str = ""
    # How often partner health is scored (each run stores today's score, announcing it only
    # when it moved); the first run comes one period after start.
    health_every_seconds: float = 3600.0


def load_config(path: str) -> AttributionConfig:
    """The attribution policy: code defaults, overridden field by field by the JSON file."""
    if not path:
        return AttributionConfig()
    return AttributionConfig.model_validate_json(Path(path).read_text())
