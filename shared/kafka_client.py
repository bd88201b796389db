"""How every Kafka client of the platform connects: the broker's address and the credentials.

The broker authenticates clients (SASL/SCRAM-SHA-512) and authorises each principal through
ACLs made from the topic registry (`deploy/kafka_access.py`): a service may write only the
topics it produces and read only those it consumes. One `KafkaConnection` value carries the
address and the credentials to every client a process creates (the FastStream broker, the
outbox relay's producer, the admin and lag probes, the DLQ tool, the benchmark), so none of
them can connect in any other way.

Read from the environment (`KafkaConnection.from_env()`, or `ServiceSettings.kafka`):

    KAFKA_BOOTSTRAP_SERVERS   host:port[,host:port]
    KAFKA_SECURITY_PROTOCOL   SASL_PLAINTEXT (default) | SASL_SSL | SSL | PLAINTEXT
    KAFKA_SASL_MECHANISM      SCRAM-SHA-512 (default) | SCRAM-SHA-256 | PLAIN
    KAFKA_SASL_USERNAME       the principal (a service's name, or an operator's)
    KAFKA_SASL_PASSWORD
    KAFKA_SSL_CAFILE          PEM bundle that signs the broker's certificate (TLS only)
    KAFKA_SSL_CERTFILE, KAFKA_SSL_KEYFILE   a client certificate, where the broker asks for one

PLAINTEXT is for a broker without authentication; it must be asked for by name.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any, Literal

from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

SecurityProtocol = Literal["SASL_PLAINTEXT", "SASL_SSL", "SSL", "PLAINTEXT"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]

_FASTSTREAM_SASL: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
    "PLAIN": SASLPlaintext,
    "SCRAM-SHA-256": SASLScram256,
    "SCRAM-SHA-512": SASLScram512,
}


class InvalidKafkaSettings(ValueError):
    pass


class KafkaConnection(BaseModel):
    """Where the broker is and who this client is to it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str = Field(default="127.0.0.1:9092", min_length=1)
    security_protocol: SecurityProtocol = "SASL_PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str = ""
    sasl_password: SecretStr = SecretStr("")
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""

    @model_validator(mode="after")
    def _credentials_present(self) -> KafkaConnection:
        if self.uses_sasl and not (self.sasl_username and self.sasl_password.get_secret_value()):
            raise InvalidKafkaSettings(
                f"KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs KAFKA_SASL_USERNAME and "
                "KAFKA_SASL_PASSWORD (deploy/local-stack.sh env prints them for the local stack; "
                "set KAFKA_SECURITY_PROTOCOL=PLAINTEXT only for a broker without authentication)"
            )
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise InvalidKafkaSettings("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together")
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> KafkaConnection:
        """The connection the `KAFKA_*` variables describe (unset ones take the defaults)."""
        fields = {
            name: environ[f"KAFKA_{name.upper()}"]
            for name in cls.model_fields
            if f"KAFKA_{name.upper()}" in environ
        }
        return cls.model_validate(fields)

    def as_principal(self, username: str, password: str) -> KafkaConnection:
        """The same broker, reached as another principal."""
        return self.model_copy(
            update={"sasl_username": username, "sasl_password": SecretStr(password)}
        )

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def principal(self) -> str:
        return self.sasl_username if self.uses_sasl else "ANONYMOUS"

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.uses_tls:
            return None
        context = ssl.create_default_context(cafile=self.ssl_cafile or None)
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return context

    @property
    def hosts(self) -> list[str]:
        """The bootstrap servers one by one. FastStream takes a string as one host, so a
        cluster's comma-separated list reaches it (and aiokafka through it) as a list."""
        return [host.strip() for host in self.bootstrap_servers.split(",") if host.strip()]

    def aiokafka_options(self) -> dict[str, Any]:
        """Keyword arguments for every aiokafka client (producer, consumer, admin)."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.hosts,
            "security_protocol": self.security_protocol,
        }
        if self.uses_tls:
            options["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password.get_secret_value()
        return options

    def faststream_security(self) -> BaseSecurity | None:
        """The same, in FastStream's terms (its KafkaBroker takes `security=`)."""
        context = self.ssl_context()
        if self.uses_sasl:
            sasl = _FASTSTREAM_SASL[self.sasl_mechanism]
            return sasl(
                self.sasl_username,
                self.sasl_password.get_secret_value(),
                ssl_context=context,
                use_ssl=self.uses_tls,
            )
        if self.uses_tls:
            return BaseSecurity(ssl_context=context, use_ssl=True)
        return None

    def librdkafka_properties(self) -> dict[str, str]:
        """The same, as librdkafka `key=value` properties (`kcat -F`, confluent-kafka)."""
        properties = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol.lower(),
        }
        if self.uses_sasl:
            properties["sasl.mechanisms"] = self.sasl_mechanism
            properties["sasl.username"] = self.sasl_username
            properties["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_cafile:
            properties["ssl.ca.location"] = self.ssl_cafile
        if self.ssl_certfile:
            properties["ssl.certificate.location"] = self.ssl_certfile
            properties["ssl.key.location"] = self.ssl_keyfile
        return properties
