from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class DealsSettings(BaseSettings):
    """Deals-only settings (prefix DEALS_)."""

    model_config = SettingsConfigDict(env_prefix="DEALS_", extra="ignore", frozen=True)

    hubspot_client_secret: str = ""  # when set, X-HubSpot-Signature-v3 is required and verified
    expiry_check_seconds: float = 30.0
    # JSON file with rules-of-engagement settings (services/deals/README.md); empty: defaults.
    policy_file: str = ""
