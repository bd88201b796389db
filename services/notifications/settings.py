from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.notifications.domain.webhooks import RetryPolicy


class NotificationsSettings(BaseSettings):
    """Notifications-only settings (prefix NOTIFICATIONS_)."""

    model_config = SettingsConfigDict(env_prefix="NOTIFICATIONS_", extra="ignore", frozen=True)

    # Live streams: a comment line this often keeps proxies from closing an idle stream and
    # tells the client the stream is alive; at most this many open streams per recipient on
    # one instance (429 beyond).
    stream_heartbeat_seconds: float = Field(default=15.0, gt=0)
    stream_max_per_recipient: int = Field(default=5, ge=1)
    # A stream re-reads its inbox this often even without a wake-up (a lost NOTIFY, say).
    stream_poll_seconds: float = Field(default=1.0, gt=0)

    # Webhooks: one attempt's bound (connect + response), how many endpoints one instance
    # serves at once (a slow endpoint holds one of them, never another's), how long a claim on
    # an endpoint lasts without renewal (a dead instance's endpoints are taken over after it),
    # how often due retries are looked for, and the retry schedule (domain/webhooks.py).
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_concurrency: int = Field(default=32, ge=1)
    webhook_lease_seconds: float = Field(default=60.0, gt=0)
    webhook_poll_seconds: float = Field(default=1.0, gt=0)
    webhook_retry_initial_seconds: float = Field(default=5.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=7200.0, gt=0)
    webhook_failure_budget: int = Field(default=14, ge=1)

    @model_validator(mode="after")
    def _lease_outlasts_an_attempt(self) -> NotificationsSettings:
        if self.webhook_lease_seconds <= self.webhook_timeout_seconds:
            raise ValueError(
                "NOTIFICATIONS_WEBHOOK_LEASE_SECONDS must exceed NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS"
            )
        return self

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            self.webhook_retry_initial_seconds,
            self.webhook_retry_max_seconds,
            self.webhook_failure_budget,
        )
