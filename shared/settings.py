"""Typed settings read from the environment, the same names on the native path and in Docker."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.kafka_client import KafkaConnection


class ServiceSettings(BaseSettings):
    """What a service process needs to know about its surroundings.

    Every field maps to an upper-case environment variable of the same name
    (`KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL`, ...). `DATABASE_URL` is the service's own
    least-privilege role, never the admin role.
    """

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    service_name: str
    # How the service reaches Kafka and who it is there (shared/kafka_client.py): by default
    # SASL/SCRAM-SHA-512 as the principal the service is granted its topics under.
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: str = "SASL_PLAINTEXT"
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")
    kafka_ssl_cafile: str = ""
    kafka_ssl_certfile: str = ""
    kafka_ssl_keyfile: str = ""
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
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|text)$")

    db_pool_min_size: int = 1
    db_pool_max_size: int = 10

    relay_batch_size: int = 500
    # Safety net only: the relay is woken by LISTEN/NOTIFY; this bounds the delay if a
    # notification is lost (e.g. while the listening connection reconnects).
    relay_fallback_poll_seconds: float = 1.0
    relay_retention_hours: float = 24.0
    # Rows waiting longer than this while another holder keeps the relay lock: unhealthy.
    relay_stall_seconds: float = Field(default=60.0, gt=0)
    # Inbox rows (processed event ids) are kept this long. It must be at least the topics'
    # retention (log.retention.hours, 168 in the local stack and the broker's default): an
    # event Kafka may still deliver again must find its row.
    inbox_retention_hours: float = Field(default=168.0, ge=1.0)
    inbox_purge_every_seconds: float = 600.0

    consumer_max_attempts: int = 5
    consumer_backoff_initial_seconds: float = 0.1
    consumer_backoff_max_seconds: float = 5.0
    # Records waiting on a consumer's partitions are processed together in one transaction
    # (one fsync, one offset commit); a lone record is processed at once.
    consumer_batch_size: int = 200
    consumer_batch_timeout_ms: int = 100

    # One partner-token scheme for the whole platform (shared/auth.py). Local defaults only.
    partner_token_secret: str = "local-dev-partner-token-secret"  # noqa: S105
    admin_token: str = "local-dev-admin-token"  # noqa: S105

    # none | console | file:<path> | otlp (OTEL_EXPORTER_OTLP_ENDPOINT is then honoured)
    trace_exporter: str = "none"

    @property
    def kafka(self) -> KafkaConnection:
        """The Kafka connection these settings describe; refuses incomplete credentials."""
        return KafkaConnection.model_validate(
            {name: getattr(self, f"kafka_{name}") for name in KafkaConnection.model_fields}
        )

    @model_validator(mode="after")
    def _default_database_urls(self) -> ServiceSettings:
        for field, role in (
            ("database_url", f"{self.service_name}_svc"),
            ("migration_database_url", f"{self.service_name}_owner"),
        ):
            if not getattr(self, field):
                local = f"postgresql://{role}:{role}@127.0.0.1:5432/pollinate"
                object.__setattr__(self, field, local)
        return self
