from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain_verification import DnsTxt, DomainVerifier, WellKnownFile


class OnboardingSettings(BaseSettings):
    """Onboarding-only settings (prefix ONBOARDING_)."""

    model_config = SettingsConfigDict(env_prefix="ONBOARDING_", extra="ignore", frozen=True)

    # JSON file overriding the program configuration (OnboardingConfig); empty: code defaults.
    config_file: str = ""
    # How often the scheduled requalification runs (the first run is one period after start).
    requalification_period_seconds: float = 3600.0
    # How often applications past their review deadline are looked for (and escalated once).
    review_check_seconds: float = 300.0
    # How a claimed domain is checked: its DNS TXT records (asked of `dns_nameserver`), or the
    # well-known file on its site (`verification_site`: a template with {domain}; tests point it
    # at a local server playing the partner's site).
    domain_verification: Literal["dns", "well_known"] = "dns"
    dns_nameserver: str = "1.1.1.1:53"
    verification_site: str = "https://{domain}"


def domain_verifier(settings: OnboardingSettings) -> DomainVerifier:
    if settings.domain_verification == "well_known":
        return WellKnownFile(settings.verification_site)
    return DnsTxt(settings.dns_nameserver)


def load_config(settings: OnboardingSettings) -> OnboardingConfig:
    if not settings.config_file:
        return OnboardingConfig()
    return OnboardingConfig.model_validate_json(Path(settings.config_file).read_text())
