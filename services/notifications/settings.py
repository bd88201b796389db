from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.notifications.domain.webhooks import RetryPolicy
from services.notifications.emailing import Smtp


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

    # E-mail over SMTP. Without a host nothing is sent: mails queue and wait for one. Outside
    # development mode use STARTTLS (or a relay on the same host).
    smtp_host: str = ""
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_starttls: bool = False
    email_from: str = "Pollinate <notifications@pollinate.invalid>"
    email_poll_seconds: float = Field(default=2.0, gt=0)
    email_digest_seconds: float = Field(default=3600.0, gt=0)
    email_retry_initial_seconds: float = Field(default=30.0, gt=0)
    email_retry_max_seconds: float = Field(default=3600.0, gt=0)
    email_failure_budget: int = Field(default=10, ge=1)  # refusals for good (5xx)
    # A mail failing for now (its relay down, a 4xx) is retried until it is this old.
    email_give_up_hours: float = Field(default=72.0, gt=0)
    # How long a claimed mail is held: past its slowest send (every SMTP wait timing out).
    email_lease_seconds: float = Field(default=180.0, gt=0)
    # Delivered webhook deliveries (their signed payloads and attempts) and sent or given-up
    # mails (addresses and bodies) are kept this long for their logs, then deleted: found in
    # review, they grew for ever, a row per message per endpoint. Pending ones stay.
    delivery_retention_days: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _lease_outlasts_an_attempt(self) -> NotificationsSettings:
        if self.webhook_lease_seconds <= self.webhook_timeout_seconds:
            raise ValueError(
                "NOTIFICATIONS_WEBHOOK_LEASE_SECONDS must exceed NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS"
            )
        slowest = Smtp("", 0, "").slowest_send
        if self.email_lease_seconds <= slowest:
            raise ValueError(
                f"NOTIFICATIONS_EMAIL_LEASE_SECONDS must exceed a mail's slowest send ({slowest} s)"
            )
        return self

    def production_problems(self) -> list[str]:
        """What production must not run with: SMTP credentials sent to a relay on another host
        without STARTTLS (AUTH PLAIN in the clear; found in review: nothing refused it), a
        password without the username it belongs to (no AUTH is tried: a relay that needs it
        refuses every mail), and a relay with the placeholder sender (`.invalid` never
        resolves: receivers bounce or junk what it sends)."""
        problems = []
        local = self.smtp_host in ("localhost", "127.0.0.1", "::1")
        if self.smtp_host and self.smtp_username and not self.smtp_starttls and not local:
            problems.append(
                "NOTIFICATIONS_SMTP_STARTTLS=true (credentials for a relay on another host go "
                "only over TLS)"
            )
        if self.smtp_password.get_secret_value() and not self.smtp_username:
            problems.append(
                "NOTIFICATIONS_SMTP_USERNAME (a password is set: the relay's account it is for)"
            )
        if self.smtp_host and self.email_from.rstrip(">").endswith(".invalid"):
            problems.append(
                "NOTIFICATIONS_EMAIL_FROM (the sender the partners' mail comes from, on a domain"
                " that is yours)"
            )
        return problems

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            self.webhook_retry_initial_seconds,
            self.webhook_retry_max_seconds,
            self.webhook_failure_budget,
        )

    def email_retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            self.email_retry_initial_seconds,
            self.email_retry_max_seconds,
            self.email_failure_budget,
        )

    def smtp(self) -> Smtp | None:
        if not self.smtp_host:
            return None
        return Smtp(
            host=self.smtp_host,
            port=self.smtp_port,
            sender=self.email_from,
            username=self.smtp_username,
            password=self.smtp_password.get_secret_value(),
            starttls=self.smtp_starttls,
        )
