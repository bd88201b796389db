from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class DealsSettings(BaseSettings):
    """Deals-only settings (prefix DEALS_)."""

    model_config = SettingsConfigDict(env_prefix="DEALS_", extra="ignore", frozen=True)

    # Signs partner API tokens. The default is for local development only.
    token_secret: str = "local-dev-deals-token-secret"  # noqa: S105 (local default)
    admin_token: str = "local-dev-admin-token"  # noqa: S105 (local default)
    hubspot_client_secret: str = ""  # when set, X-HubSpot-Signature-v3 is required and verified
    expiry_check_seconds: float = 30.0
