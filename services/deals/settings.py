from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.deals.adapters import hubspot, salesforce
from services.deals.adapters.common import custom_stages
from services.deals.adapters.partner_programs import MICROSOFT_REFERRALS_API
from shared.events.crm import DealStage
from shared.inputs import InputError, currency_code

# Committed so that a developer's machine (and the tests) can sign CRM deliveries without
# setup; outside development mode the service refuses to start with them.
LOCAL_HUBSPOT_CLIENT_SECRET = "local-dev-hubspot-client-secret-0000"  # noqa: S105
LOCAL_HUBSPOT_PORTAL_IDS = "44556677"  # the portal of the stored HubSpot sample
LOCAL_SALESFORCE_WEBHOOK_SECRET = "whsec_bG9jYWwtZGV2LXNhbGVzZm9yY2UtcmVsYXkta2V5ISE="  # noqa: S105
LOCAL_AWS_ACE_API_KEY = "local-dev-aws-ace-api-key-000000000"
MIN_CRM_SECRET_LENGTH = 32
MIN_WEBHOOK_KEY_BYTES = 24  # Standard Webhooks: secrets of 24 to 64 bytes
# Where Partner Center's signing certificate is published (its webhooks documentation).
MICROSOFT_CERTIFICATE_ORIGIN = "https://3psostorageacct.blob.core.windows.net"


class DealsSettings(BaseSettings):
    """Deals-only settings (prefix DEALS_). Every CRM source has its own credential; a source
    whose credential is empty is closed (its route answers 401)."""

    model_config = SettingsConfigDict(env_prefix="DEALS_", extra="ignore", frozen=True)

    expiry_check_seconds: float = 30.0
    # JSON file with rules-of-engagement settings (services/deals/README.md); empty: defaults.
    policy_file: str = ""

    # The URL the CRMs call this service at (scheme, host, port, path prefix), as configured
    # in HubSpot; HubSpot signs that URL. Empty: the URL the request arrived at.
    public_base_url: str = ""
    # HubSpot: the app's client secret (v3 signature) and the portals (accounts) ingested.
    hubspot_client_secret: SecretStr = SecretStr(LOCAL_HUBSPOT_CLIENT_SECRET)
    hubspot_portal_ids: str = LOCAL_HUBSPOT_PORTAL_IDS  # comma-separated
    # Salesforce CDC through a relay signing with Standard Webhooks: its whsec_ secret.
    salesforce_webhook_secret: SecretStr = SecretStr(LOCAL_SALESFORCE_WEBHOOK_SECRET)
    # AWS Partner Central through an EventBridge API destination: the connection's API key.
    aws_ace_api_key_header: str = "x-api-key"
    aws_ace_api_key: SecretStr = SecretStr(LOCAL_AWS_ACE_API_KEY)
    # Microsoft Partner Center: where its signing certificate may be fetched from
    # (comma-separated origins), the CA certificates (PEM file) it must be issued by, and the
    # organisation its issuer names. No issuers: Microsoft is closed.
    microsoft_certificate_origins: str = MICROSOFT_CERTIFICATE_ORIGIN
    microsoft_certificate_issuers: str = ""
    microsoft_certificate_organization: str = "Microsoft Corporation"
    # The deployment's own deal stages, as JSON objects of a stage's id (HubSpot: another
    # pipeline's stages are numbers it generates) or name (Salesforce) -> open, won, lost or a
    # canonical stage (services/deals/README.md, "Deal stages"). Parsed once, at start.
    hubspot_stages: dict[str, DealStage] = {}
    salesforce_stages: dict[str, DealStage] = {}
    # A Salesforce org with multiple currencies off (Salesforce's default) has no
    # CurrencyIsoCode: its one currency, as an ISO 4217 code. Empty: multiple currencies on.
    salesforce_currency: str = ""
    # Salesforce REST, to fetch records a gap or overflow event stands for: the org's instance
    # URL (e.g. https://example.my.salesforce.com) and an OAuth access token. Empty: records
    # wait in the resync queue until it is configured.
    salesforce_instance_url: str = ""
    salesforce_access_token: SecretStr = SecretStr("")
    salesforce_api_version: str = "61.0"
    # Pulled sources (no relay needed): AWS Partner Central Selling API (SigV4 with these
    # credentials) and Partner Center referrals (an OAuth access token). Empty: not pulled, and
    # what their events name waits in the resync queue.
    ace_endpoint: str = "https://partnercentral-selling.us-east-1.api.aws"
    ace_region: str = "us-east-1"
    ace_catalog: str = "AWS"
    ace_access_key_id: str = ""
    ace_secret_access_key: SecretStr = SecretStr("")
    ace_session_token: SecretStr = SecretStr("")
    microsoft_referrals_url: str = MICROSOFT_REFERRALS_API
    microsoft_access_token: SecretStr = SecretStr("")
    # Write-back to HubSpot: the CRM API and a private app token per portal ("portal=token,...").
    hubspot_api_url: str = "https://api.hubapi.com"
    hubspot_access_tokens: SecretStr = SecretStr("")
    pull_every_seconds: float = 60.0
    pull_max_pages: int = 20
    resync_every_seconds: float = 5.0
    resync_batch_size: int = 50
    # Write-backs: how often the queue is looked at, how many writes a run sends at most, and
    # how long a write the CRM cannot take is retried before its event is dead-lettered.
    writeback_every_seconds: float = Field(default=1.0, gt=0)
    writeback_batch_size: int = Field(default=50, ge=1)
    writeback_give_up_hours: float = Field(default=72.0, gt=0)
    # Reconciliation: how often each CRM's window is compared with the projection (the job
    # checks every tenth of it whether a source is due), and how far back the window reaches.
    reconcile_every_seconds: float = 3600.0
    reconcile_window_hours: float = 24.0
    # Retention of the CRM bookkeeping: refused items, finished resync requests and
    # reconciliation reports older than this are deleted (pending resyncs never are), checked
    # every `crm_retention_check_seconds`, `crm_retention_batch_size` rows a statement.
    crm_retention_days: float = Field(default=30.0, gt=0)
    crm_retention_check_seconds: float = 3600.0
    crm_retention_batch_size: int = Field(default=5000, ge=1)

    @field_validator("hubspot_stages", mode="before")
    @classmethod
    def _hubspot_stages(cls, value: Any) -> dict[str, DealStage]:
        return custom_stages(value, hubspot.STAGES_SETTING)

    @field_validator("salesforce_stages", mode="before")
    @classmethod
    def _salesforce_stages(cls, value: Any) -> dict[str, DealStage]:
        return custom_stages(value, salesforce.STAGES_SETTING)

    @field_validator("salesforce_currency")
    @classmethod
    def _salesforce_currency(cls, value: str) -> str:
        if value:
            try:
                currency_code(value, "DEALS_SALESFORCE_CURRENCY")
            except InputError as error:
                raise ValueError(str(error)) from None
        return value

    @property
    def salesforce_org(self) -> salesforce.SalesforceOrg:
        return salesforce.SalesforceOrg(self.salesforce_stages, self.salesforce_currency or None)

    @property
    def hubspot_tokens(self) -> dict[str, str]:
        pairs = (p.partition("=") for p in self.hubspot_access_tokens.get_secret_value().split(","))
        return {portal.strip(): token.strip() for portal, _, token in pairs if portal and token}

    @property
    def write_back(self) -> bool:
        return (
            self.salesforce_rest
            or bool(self.hubspot_tokens)
            or self.ace_pull
            or (self.microsoft_pull)
        )

    @property
    def ace_pull(self) -> bool:
        return bool(self.ace_access_key_id and self.ace_secret_access_key.get_secret_value())

    @property
    def microsoft_pull(self) -> bool:
        return bool(self.microsoft_referrals_url and self.microsoft_access_token.get_secret_value())

    @property
    def salesforce_rest(self) -> bool:
        return bool(
            self.salesforce_instance_url and self.salesforce_access_token.get_secret_value()
        )

    @property
    def portals(self) -> frozenset[str]:
        return frozenset(p.strip() for p in self.hubspot_portal_ids.split(",") if p.strip())

    @property
    def certificate_origins(self) -> frozenset[str]:
        return frozenset(
            o.strip().rstrip("/").lower()
            for o in self.microsoft_certificate_origins.split(",")
            if o.strip()
        )

    def closed_sources(self) -> list[str]:
        """The CRM sources without a credential: their routes refuse every delivery."""
        closed = []
        if not self.hubspot_client_secret.get_secret_value() or not self.portals:
            closed.append("hubspot")
        if not self.salesforce_webhook_secret.get_secret_value():
            closed.append("salesforce")
        if not self.aws_ace_api_key.get_secret_value() or not self.aws_ace_api_key_header:
            closed.append("aws-ace")
        if not self.microsoft_certificate_issuers or not self.certificate_origins:
            closed.append("microsoft")
        return closed

    def production_problems(self) -> list[str]:
        """CRM credentials production must not run with: the committed local defaults, short
        secrets, a Standard Webhooks secret that is not one, a CRM API reached over plain http.
        An empty credential is a source deliberately closed, not a problem."""
        problems = []
        hubspot = self.hubspot_client_secret.get_secret_value()
        if hubspot == LOCAL_HUBSPOT_CLIENT_SECRET or 0 < len(hubspot) < MIN_CRM_SECRET_LENGTH:
            problems.append(
                "DEALS_HUBSPOT_CLIENT_SECRET (the HubSpot app's client secret, or empty to close "
                "HubSpot)"
            )
        if hubspot and self.portals == frozenset(LOCAL_HUBSPOT_PORTAL_IDS.split(",")):
            problems.append("DEALS_HUBSPOT_PORTAL_IDS (the HubSpot portals to ingest)")
        salesforce = self.salesforce_webhook_secret.get_secret_value()
        if salesforce and (
            salesforce == LOCAL_SALESFORCE_WEBHOOK_SECRET
            or _webhook_key_bytes(salesforce) < MIN_WEBHOOK_KEY_BYTES
        ):
            problems.append(
                f"DEALS_SALESFORCE_WEBHOOK_SECRET (whsec_ and {MIN_WEBHOOK_KEY_BYTES}+ bytes in "
                "base64, or empty to close Salesforce)"
            )
        ace = self.aws_ace_api_key.get_secret_value()
        if ace == LOCAL_AWS_ACE_API_KEY or 0 < len(ace) < MIN_CRM_SECRET_LENGTH:
            problems.append(
                f"DEALS_AWS_ACE_API_KEY (a key of {MIN_CRM_SECRET_LENGTH}+ characters, or empty "
                "to close AWS ACE)"
            )
        # Found in review: plain http was taken, and the bearer tokens went in the clear.
        for name, url in (
            ("DEALS_SALESFORCE_INSTANCE_URL", self.salesforce_instance_url),
            ("DEALS_HUBSPOT_API_URL", self.hubspot_api_url),
            ("DEALS_MICROSOFT_REFERRALS_URL", self.microsoft_referrals_url),
            ("DEALS_ACE_ENDPOINT", self.ace_endpoint),
        ):
            if url and not url.lower().startswith("https://"):
                problems.append(f"{name} (https://: the CRM's API is called with its credentials)")
        return problems


def _webhook_key_bytes(secret: str) -> int:
    """How many key bytes a whsec_ secret holds (0 when it is not one)."""
    if not secret.startswith("whsec_"):
        return 0
    try:
        return len(base64.b64decode(secret.removeprefix("whsec_"), validate=True))
    except (binascii.Error, ValueError):
        return 0
