"""docker-compose.yml cannot run here (no Docker engine): check it agrees with the native path."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from services.deals.settings import DealsSettings
from services.portal.settings import PortalSettings
from shared.kafka_client import KafkaConnection
from shared.settings import ServiceSettings
from shared.topics import SERVICES

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_every_service_runs_its_own_module_with_its_own_role() -> None:
    services = compose()["services"]
    for name in SERVICES:
        service = services[name]
        assert service["command"] == ["python", "-m", f"services.{name}"]
        url = service["environment"]["DATABASE_URL"]
        assert url.startswith(f"postgresql://{name}_svc:${{{name.upper()}_DB_PASSWORD:?")
        assert url.endswith("@postgres:5432/pollinate")
        assert "healthcheck" in service or "build" in service  # the image defines the healthcheck


def test_service_environment_names_are_settings_the_services_read() -> None:
    known = {field.upper() for field in ServiceSettings.model_fields}
    known |= {f"DEALS_{field.upper()}" for field in DealsSettings.model_fields}
    known |= {f"KAFKA_{field.upper()}" for field in KafkaConnection.model_fields}
    for name in SERVICES:
        env = compose()["services"][name]["environment"]
        unknown = {k for k in env if k not in known and not k.startswith("OTEL_")}
        assert not unknown, f"{name} sets variables no setting reads: {unknown}"


def test_postgres_uses_the_same_schema_and_role_script() -> None:
    volumes = compose()["services"]["postgres"]["volumes"]
    assert any(
        v.startswith("./deploy/postgres/init.sql:/docker-entrypoint-initdb.d/") for v in volumes
    )


def test_the_broker_is_provisioned_from_the_registry_before_any_service_starts() -> None:
    services = compose()["services"]
    assert services["kafka-access"]["command"][:4] == [
        "python",
        "-m",
        "deploy.kafka_access",
        "apply",
    ]
    assert set(services["kafka-access"]["secrets"]) == set(SERVICES)
    for name in SERVICES:
        assert services[name]["depends_on"]["kafka-access"] == {
            "condition": "service_completed_successfully"
        }


def test_kafka_authenticates_and_authorises_every_client() -> None:
    kafka = compose()["services"]["kafka"]["environment"]
    protocols = dict(
        pair.split(":") for pair in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert set(protocols.values()) == {"SASL_PLAINTEXT"}
    assert kafka["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
    assert kafka["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert kafka["KAFKA_SUPER_USERS"] == "User:admin"


def test_postgres_runs_with_the_same_server_settings() -> None:
    script = (ROOT / "deploy" / "local-stack.sh").read_text()
    match = re.search(r'^PG_SETTINGS="([^"]*)"', script, re.MULTILINE)
    assert match, "deploy/local-stack.sh defines PG_SETTINGS"
    native = shlex.split(match.group(1))
    command = compose()["services"]["postgres"]["command"]
    assert command[0] == "postgres"
    assert command[1:] == native
    assert "max_wal_size=4GB" in native
    assert "track_commit_timestamp=on" in native


def test_published_ports_bind_loopback_only() -> None:
    published = {name: service.get("ports", []) for name, service in compose()["services"].items()}
    exposed = {
        name: [port for port in ports if not str(port).startswith("127.0.0.1:")]
        for name, ports in published.items()
    }
    assert {name: ports for name, ports in exposed.items() if ports} == {}
    assert any(published.values())


def test_every_secret_comes_from_the_environment_with_no_default() -> None:
    """Compose runs outside development mode: a missing secret stops `docker compose up`
    (`${VAR:?message}`) instead of falling back to a value committed here."""
    services = compose()["services"]
    postgres = services["postgres"]["environment"]
    assert postgres["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    for name in SERVICES:
        for variable in (f"{name.upper()}_DB_PASSWORD", f"{name.upper()}_DB_OWNER_PASSWORD"):
            assert postgres[variable].startswith(f"${{{variable}:?")
        owner = services[f"{name}-migrate"]["environment"]["MIGRATION_DATABASE_URL"]
        assert f"${{{name.upper()}_DB_OWNER_PASSWORD:?" in owner
        env = services[name]["environment"]
        assert "DEVELOPMENT_MODE" not in env
        assert env["TOKEN_VERIFICATION_KEYS"].startswith("${TOKEN_VERIFICATION_KEYS:?")
        # Only the issuing place holds the private key.
        assert ("TOKEN_SIGNING_KEY" in env) == (name == "onboarding")
        # Kafka passwords have no default at all: compose refuses to start without them.
        assert env["KAFKA_SASL_USERNAME"] == name
        assert env["KAFKA_SASL_PASSWORD"].startswith(f"${{KAFKA_{name.upper()}_PASSWORD:?")
    signing = services["onboarding"]["environment"]["TOKEN_SIGNING_KEY"]
    assert signing.startswith("${TOKEN_SIGNING_KEY:?")
    admin = services["kafka-access"]["environment"]["KAFKA_SASL_PASSWORD"]
    assert admin.startswith("${KAFKA_ADMIN_PASSWORD:?")


def test_each_schema_is_migrated_by_its_owner_before_its_service_runs_as_the_runtime_role() -> None:
    services = compose()["services"]
    for name in SERVICES:
        step = services[f"{name}-migrate"]
        assert step["command"] == ["python", "-m", f"services.{name}", "migrate"]
        owner = step["environment"]["MIGRATION_DATABASE_URL"]
        assert owner.startswith(f"postgresql://{name}_owner:${{")
        assert services[name]["depends_on"][f"{name}-migrate"] == {
            "condition": "service_completed_successfully"
        }
        assert "MIGRATION_DATABASE_URL" not in services[name]["environment"]


def test_compose_opens_no_crm_source_on_a_committed_credential() -> None:
    deals = compose()["services"]["deals"]["environment"]
    credentials = [name for name in deals if name.startswith("DEALS_") and "SECRET" in name]
    credentials += ["DEALS_AWS_ACE_API_KEY", "DEALS_MICROSOFT_CERTIFICATE_ISSUERS"]
    for name in credentials:
        assert deals[name] == f"${{{name}-}}", name


def test_the_portal_knows_where_every_service_is_natively_and_in_compose() -> None:
    """The console walks every service (dead letters): a service the portal has no address
    for made that page fail."""
    settings = PortalSettings()
    portal = compose()["services"]["portal"]
    for name in SERVICES:
        assert settings.url_of(name).startswith("http://127.0.0.1:")
        assert portal["environment"][f"PORTAL_{name.upper()}_URL"] == f"http://{name}:8000"
        assert name in portal["depends_on"]
    native = (ROOT / "deploy" / "services.sh").read_text()
    for name in SERVICES:
        assert f'PORTAL_{name.upper()}_URL="http://127.0.0.1:${{PORTS[{name}]}}"' in native
