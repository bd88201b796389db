"""The portal's settings: where the platform's services answer and how tokens are verified."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.identity import key_set_problem
from shared.topics import SERVICES

# The services a signed-in person's pages call; a token must be meant for every one of them.
# That is every one: the dead-letters console reads each service's letters, and programme (left
# out before) draws the MDF page's campaigns and the dashboard. Found from outside: a token
# without programme's audience signed in, then those pages sent the person back to sign in.
BACKENDS = SERVICES


class PortalSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    http_host: str = "127.0.0.1"
    http_port: int = 8000
    log_level: str = "INFO"
    # The public JWK set the platform's tokens are verified with (the same as every service's).
    token_verification_keys: str = ""
    # Development mode only drops the Secure flag of the session cookie (plain http locally).
    development_mode: bool = False
    portal_onboarding_url: str = "http://127.0.0.1:8001"
    portal_deals_url: str = "http://127.0.0.1:8002"
    portal_attribution_url: str = "http://127.0.0.1:8003"
    portal_incentives_url: str = "http://127.0.0.1:8004"
    portal_notifications_url: str = "http://127.0.0.1:8005"
    portal_programme_url: str = "http://127.0.0.1:8006"
    # The origin people's browsers reach the portal at (https://portal.example.com): a form
    # post naming another in its Origin or Referer is refused. Empty: the host and port the
    # request was sent to (the Host header), whatever the scheme.
    portal_public_origin: str = ""
    # How long a call to a service may take before the page says that service is unavailable.
    portal_backend_timeout_seconds: float = Field(default=10.0, gt=0)
    # Live streams (a partner's home page holds one open) passed through at once by this
    # instance, on connections of their own: past it a new one is answered 503 and the browser
    # tries again. Found in review: they shared the pages' connection pool (100), so a hundred
    # open home pages left every page waiting for a connection, then 503, managers' too.
    portal_max_streams: int = Field(default=500, ge=1)
    # The largest request body taken (413 over it). The largest form is a policy draft: 100,000
    # characters, up to 12 bytes each once form-encoded (a 4-byte character is %XX four times).
    # Without a bound one anonymous sign-in post of 360 MB in 1 MB fields (each under the form
    # parser's own limit) held 450 MB.
    http_max_body_bytes: int = Field(default=2_097_152, ge=1024)
    # A session not used for this long is over (a shared machine left signed in); each page
    # and form answered within it starts the time again.
    portal_session_idle_minutes: float = Field(default=60.0, gt=0)

    def url_of(self, service: str) -> str:
        value: str = getattr(self, f"portal_{service}_url")
        return value.rstrip("/")

    def refuse_local_defaults(self) -> None:
        problem = key_set_problem(self.token_verification_keys)
        if not self.development_mode and problem is not None:
            raise SystemExit(
                f"portal: refusing to start without usable TOKEN_VERIFICATION_KEYS (the "
                f"platform's public JWK set: {problem}) (or DEVELOPMENT_MODE=true on a "
                "developer's machine)"
            )
