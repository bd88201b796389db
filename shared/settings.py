"""Typed settings read from the environment, the same names on the native path and in Docker."""

from __future__ import annotations

import os
from collections.abc import Sequence
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.identity import key_set_problem
from shared.kafka_client import KafkaConnection


class ServiceSettings(BaseSettings):
    """What a service process needs to know about its surroundings.

    Every field maps to an upper-case environment variable of the same name
    (`KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL`, ...). `DATABASE_URL` is the service's own
    least-privilege role, never the admin role.
    """

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    service_name: str
    # How the service reaches Kafka and who it is there: the KAFKA_* variables, read by
    # KafkaConnection (shared/kafka_client.py), which lists them; see `kafka` below.
    # Defaults to the local stack's role for this service (see deploy/postgres/init.sql): the
    # runtime role, which reads and writes rows of the service's schema and nothing else.
    database_url: str = ""
    # The schema owner's, for `python -m services.<name> migrate` only; the running service
    # never uses it (deploy it to the migration step, not to the service).
    migration_database_url: str = ""
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # Larger request bodies are refused with 413 before any route reads them.
    http_max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Requests a minute each instance takes from one partner's people and apps together, and
    # from one client address on a route anyone may call to record something (a partner
    # application); 0 turns a limit off. Beyond them: 429 with Retry-After (shared/rate_limits.py).
    partner_requests_per_minute: int = Field(default=1200, ge=0)
    anonymous_requests_per_minute: int = Field(default=10, ge=0)
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|text)$")

    db_pool_min_size: int = 1
    db_pool_max_size: int = 10
    # How long stopping may take, once uvicorn has let in-flight requests finish (up to 10 s),
    # before a step still waiting (on an unreachable Kafka: leaving the group, committing
    # offsets, flushing the relay's sends) is abandoned: both under an orchestrator's grace
    # period (Kubernetes: 30 s), past which the process is killed.
    shutdown_seconds: float = Field(default=15.0, gt=0)

    relay_batch_size: int = 500
    # Safety net only: the relay is woken by LISTEN/NOTIFY; this bounds the delay if a
    # notification is lost (e.g. while the listening connection reconnects). A standby tries
    # the lead this often; it stays well under the leader session's idle limit (60 s).
    relay_fallback_poll_seconds: float = Field(default=1.0, gt=0, le=30)
    relay_retention_hours: float = 24.0
    # Rows waiting longer than this while another holder keeps the relay lock: unhealthy.
    relay_stall_seconds: float = Field(default=60.0, gt=0)
    # Events are kept compressed in the outbox (shared/outbox_codec.py). Turn off while an
    # instance of a version before the codec may still relay (README, Reliability).
    outbox_compression: bool = True
    # Inbox rows (processed event ids) are kept this long. It must be at least the topics'
    # retention (log.retention.hours, 168 in the local stack and the broker's default): an
    # event Kafka may still deliver again must find its row.
    inbox_retention_hours: float = Field(default=168.0, ge=1.0)
    inbox_purge_every_seconds: float = 600.0

    # How often each instance re-reads which partners lost access (suspended, expelled).
    partner_access_refresh_seconds: float = Field(default=1.0, gt=0)

    consumer_max_attempts: int = 5
    consumer_backoff_initial_seconds: float = 0.1
    consumer_backoff_max_seconds: float = 5.0
    # Records waiting on a consumer's partitions are processed together in one transaction
    # (one fsync, one offset commit); a lone record is processed at once.
    consumer_batch_size: int = 200
    # How long a consumer's poll waits for a first record (above 0: an empty poll that does
    # not wait would spin and starve the event loop, shared/subscriber.py).
    consumer_batch_timeout_ms: int = Field(default=100, ge=1)

    # Bearer tokens (shared/identity.py): the public JWK set every service verifies with, and
    # the private signing JWK only the issuing place holds (onboarding). No committed value:
    # the local stack makes a key pair of its own; empty verification keys refuse every token.
    token_verification_keys: str = ""
    token_signing_key: SecretStr = SecretStr("")
    # Accept the committed local defaults (tokens, database passwords). The local stack's
    # environment (`deploy/local-stack.sh env`: `make demo`, `make test`) sets it; nothing else
    # should.
    development_mode: bool = False

    # none | console | file:<path> | otlp (OTEL_EXPORTER_OTLP_ENDPOINT is then honoured)
    trace_exporter: str = "none"

    def production_problems(self, *, migrating: bool = False) -> list[str]:
        """What keeps this configuration from running outside development mode: secrets that
        are missing, short or the committed local defaults. Migrating needs only the owner's
        database URL; serving needs the tokens and the runtime role's URL."""
        if migrating:
            local = _has_local_password(self.migration_database_url)
            return (
                ["MIGRATION_DATABASE_URL (the schema owner's role and password)"] if local else []
            )
        problems = []
        keys = key_set_problem(
            self.token_verification_keys, self.token_signing_key.get_secret_value()
        )
        if keys is not None:
            problems.append(f"TOKEN_VERIFICATION_KEYS (the platform's public JWK set: {keys})")
        if _has_local_password(self.database_url):
            problems.append("DATABASE_URL (the service's runtime role and password)")
        return problems

    def refuse_local_defaults(self, *, migrating: bool = False, also: Sequence[str] = ()) -> None:
        """Stop the process, saying what to set, when it would run outside development mode
        with what production must not use (`also`: the service's own settings' problems)."""
        problems = (
            [] if self.development_mode else [*self.production_problems(migrating=migrating), *also]
        )
        if problems:
            raise SystemExit(
                f"{self.service_name}: refusing to start with local development defaults; set "
                f"{'; '.join(problems)} (or DEVELOPMENT_MODE=true on a developer's machine)"
            )

    @property
    def kafka(self) -> KafkaConnection:
        """How this process reaches Kafka (the KAFKA_* variables); refuses incomplete
        credentials, saying what to set."""
        return KafkaConnection.from_env(os.environ)

    @model_validator(mode="after")
    def _default_database_urls(self) -> ServiceSettings:
        for field in ("database_url", "migration_database_url"):
            if not getattr(self, field):
                object.__setattr__(self, field, self._local_database_url(field))
        return self

    def _local_database_url(self, field: str) -> str:
        role = f"{self.service_name}_{'owner' if field.startswith('migration') else 'svc'}"
        return f"postgresql://{role}:{role}@127.0.0.1:5432/pollinate"


def _has_local_password(url: str) -> bool:
    """The local stack's role passwords are the role names (`deals_svc:deals_svc@...`)."""
    parts = urlsplit(url)
    return parts.password is None or parts.password == parts.username
