"""Every service starts as its own OS process: migrations, relay, broker, health endpoints."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.topics import SERVICES
from tests.support.crm import salesforce_cdc, salesforce_delivery
from tests.support.infra import Infra
from tests.support.polling import eventually
from tests.support.processes import free_port, service_env, start_module, wait_ready
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("service", SERVICES)
async def test_service_process_becomes_ready_and_stops_cleanly(infra: Infra, service: str) -> None:
    port = free_port()
    # The deployment's migration step, as the schema's owner; the service then runs as its
    # runtime role, which could not have applied them.
    migration = await start_module(
        service,
        "migrate",
        env={
            **os.environ,
            "MIGRATION_DATABASE_URL": infra.dsn_for(f"{service}_owner", f"{service}_owner"),
        },
        stderr=asyncio.subprocess.PIPE,
    )
    _, migrated = await migration.communicate()
    assert migration.returncode == 0, migrated.decode()
    assert f"{service}: " in migrated.decode()
    env = {
        **os.environ,
        **infra.kafka_env(infra.service_kafka(service)),
        "DATABASE_URL": infra.dsn_for(f"{service}_svc", f"{service}_svc"),
        "HTTP_PORT": str(port),
    }
    process = await start_module(service, env=env, stderr=asyncio.subprocess.PIPE)
    try:
        ready = await wait_ready(f"http://127.0.0.1:{port}/health/ready", process)
        assert ready.json()["checks"] == {
            "started": True,
            "database": True,
            "kafka": True,
            "outbox_relay": True,
            "consumers": True,
        }
        # Whatever the service had to catch up on (other tests' events), its relay drains it.
        async with httpx.AsyncClient() as client:

            async def drained() -> bool:
                metrics = await client.get(f"http://127.0.0.1:{port}/metrics.json")
                return bool(metrics.json()["outbox_backlog"] == 0)

            await eventually(drained, 60, what="the relay to drain the outbox", every=0.2)
            # /metrics is Prometheus exposition, parsed by the client library's own parser:
            # requests counted by route template (never the raw path), consumer outcomes by
            # group, the process's own figures.
            await client.get(f"http://127.0.0.1:{port}/partners/p-{port}/anything")
            scraped = await client.get(f"http://127.0.0.1:{port}/metrics")
            families = {
                family.name: family for family in text_string_to_metric_families(scraped.text)
            }
            for name in (
                "pollinate_http_requests",
                "pollinate_consumer_records",
                "pollinate_consumer_lag",
                "pollinate_outbox_backlog",
                "pollinate_outbox_relay_lag_seconds",
                "process_cpu_seconds",
            ):
                assert name in families, name
            routes = {
                sample.labels["route"]
                for sample in families["pollinate_http_requests"].samples
                if sample.name == "pollinate_http_requests_total"
            }
            assert {"/health/ready", "/metrics.json", "unmatched"} <= routes
            assert not any(f"p-{port}" in route for route in routes)
            assert families["pollinate_database_up"].samples[0].value == 1
            # A 2 MB body is refused before any route reads it, on every service.
            oversized = await client.post(
                f"http://127.0.0.1:{port}/registrations", content=b"{" * (2 * 1024 * 1024)
            )
            assert oversized.status_code == 413
            assert oversized.json() == {"detail": "request body over 1048576 bytes"}
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    # uvicorn re-raises the captured SIGTERM after its graceful shutdown has finished.
    assert process.returncode in (0, -signal.SIGTERM), stderr.decode()[-2000:]
    assert '"msg": "service stopped"' in stderr.decode()


REAL_CRM_CREDENTIALS = {
    "DEALS_HUBSPOT_CLIENT_SECRET": "h" * 40,
    "DEALS_HUBSPOT_PORTAL_IDS": "1234",
    "DEALS_SALESFORCE_WEBHOOK_SECRET": "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=",
    "DEALS_AWS_ACE_API_KEY": "",  # AWS ACE closed: not a problem
}


async def run_service(*args: str, env: dict[str, str]) -> tuple[int, str]:
    process = await start_module("deals", *args, env=env, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, err.decode()


async def test_outside_development_mode_the_committed_local_defaults_are_refused(
    infra: Infra,
) -> None:
    unset = ("DEVELOPMENT_MODE", "DATABASE_URL", "MIGRATION_DATABASE_URL")
    production = {name: value for name, value in os.environ.items() if name not in unset}
    keyless = {name: v for name, v in production.items() if name != "TOKEN_VERIFICATION_KEYS"}
    code, said = await run_service(env=keyless)
    assert code != 0
    assert (
        "deals: refusing to start with local development defaults; set TOKEN_VERIFICATION_KEYS "
        "(the platform's public JWK set: empty); DATABASE_URL (the service's runtime role and "
        "password); "
    ) in said
    assert said.rstrip().endswith("(or DEVELOPMENT_MODE=true on a developer's machine)")
    # The deals service's own CRM credentials: the committed local ones are refused too.
    assert "DEALS_HUBSPOT_CLIENT_SECRET (the HubSpot app's client secret" in said
    assert "DEALS_SALESFORCE_WEBHOOK_SECRET (whsec_ and 24+ bytes" in said
    assert "DEALS_AWS_ACE_API_KEY (a key of 32+ characters" in said

    configured = {
        **production,
        **REAL_CRM_CREDENTIALS,
        "DATABASE_URL": "postgresql://a:b@127.0.0.1:1/p",
    }
    code, said = await run_service(env=configured)
    assert code != 0  # it gets past the check, then cannot reach that database
    assert "refusing to start" not in said

    code, said = await run_service("migrate", env=production)
    assert code != 0
    assert "set MIGRATION_DATABASE_URL (the schema owner's role and password)" in said


async def test_with_its_database_out_of_reach_a_service_answers_503_and_then_recovers(
    infra: Infra,
) -> None:
    """A CRM delivery that arrives while deals cannot reach Postgres gets 503 with Retry-After
    (the sender retries; nothing was recorded), not a 500; readiness turns 503, /metrics still
    answers; when the database is back the same delivery is recorded. The database is put out
    of reach by cutting a TCP proxy between the service and the real Postgres."""
    port = free_port()
    direct = urlsplit(service_env(infra, "deals", port)["DATABASE_URL"])
    assert direct.hostname is not None
    assert direct.port is not None
    async with TcpProxy(direct.hostname, direct.port) as proxy:
        proxied = direct._replace(netloc=direct.netloc.replace(f":{direct.port}", f":{proxy.port}"))
        env = service_env(infra, "deals", port, DATABASE_URL=urlunsplit(proxied))
        process = await start_module("deals", env=env)
        url = f"http://127.0.0.1:{port}"
        record = f"006Down{uuid.uuid4().hex[:10]}"
        delivery = salesforce_delivery([salesforce_cdc(record, "CREATE", datetime.now(UTC), {})])
        try:
            await wait_ready(f"{url}/health/ready", process)
            await proxy.cut()
            async with httpx.AsyncClient(timeout=30) as client:
                refused = await client.post(f"{url}/crm/salesforce", **delivery)
                assert refused.status_code == 503, refused.text
                assert refused.headers["retry-after"] == "5"
                assert refused.json() == {
                    "detail": "the service's database is unavailable; retry later"
                }
                assert (await client.get(f"{url}/health/ready")).status_code == 503
                scraped = await client.get(f"{url}/metrics")
                assert scraped.status_code == 200
                [up] = [
                    family
                    for family in text_string_to_metric_families(scraped.text)
                    if family.name == "pollinate_database_up"
                ]
                assert up.samples[0].value == 0

                await proxy.restore()

                async def recorded() -> httpx.Response | None:
                    answer = await client.post(f"{url}/crm/salesforce", **delivery)
                    return answer if answer.status_code != 503 else None

                accepted = await eventually(recorded, 30, what="deals to reach Postgres again")
                assert accepted.status_code == 202, accepted.text
                assert [item["outcome"] for item in accepted.json()["items"]] == ["accepted"]
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 30)
