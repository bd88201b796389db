from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
