"""End-to-end fixtures: the four services as real OS processes (their own roles, schemas and
consumer groups) on the real Kafka broker and PostgreSQL, with kill -9 and restart."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from deploy.story import Partner, Story
from shared.settings import ServiceSettings
from tests.conftest import ROOT, Infra
from tests.integration.test_service_process import free_port, wait_ready

pytestmark = pytest.mark.e2e
SERVICES = ("onboarding", "deals", "attribution", "incentives")
LOGS = ROOT / ".work" / "e2e"
ADMIN_TOKEN = ServiceSettings(service_name="deals").admin_token


@dataclass
class Instance:
    service: str
    url: str
    process: asyncio.subprocess.Process
    log: Path


@dataclass
class Fleet:
    """Service processes started, killed and restarted by the tests."""

    infra: Infra
    instances: dict[tuple[str, int], Instance] = field(default_factory=dict)

    def url(self, service: str, instance: int = 0) -> str:
        return self.instances[(service, instance)].url

    @property
    def urls(self) -> dict[str, str]:
        return {service: self.url(service) for service in SERVICES}

    async def start(self, service: str, instance: int = 0) -> Instance:
        previous = self.instances.get((service, instance))
        port = int(previous.url.rsplit(":", 1)[1]) if previous else free_port()
        LOGS.mkdir(parents=True, exist_ok=True)
        log = LOGS / f"{service}-{instance}.log"
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.infra.kafka_bootstrap,
            "DATABASE_URL": self.infra.dsn_for(f"{service}_svc", f"{service}_svc"),
            "HTTP_PORT": str(port),
            "LOG_FORMAT": "text",
        }
        with log.open("ab") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                f"services.{service}",
                cwd=ROOT,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        started = Instance(service, f"http://127.0.0.1:{port}", process, log)
        self.instances[(service, instance)] = started
        await wait_ready(f"{started.url}/health/ready", process)
        return started

    async def kill9(self, service: str, instance: int = 0) -> None:
        process = self.instances[(service, instance)].process
        process.send_signal(signal.SIGKILL)
        await process.wait()

    async def stop(self, service: str, instance: int = 0) -> None:
        process = self.instances.pop((service, instance)).process
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()

    async def stop_all(self) -> None:
        for key in list(self.instances):
            await self.stop(*key)


@pytest.fixture(scope="package")
async def fleet(infra: Infra) -> AsyncIterator[Fleet]:
    running = Fleet(infra)
    try:
        for service in SERVICES:
            await running.start(service)
        yield running
    finally:
        await running.stop_all()


@pytest.fixture(scope="package")
async def referral_partner(fleet: Fleet) -> Partner:
    """An active partner, onboarded through the onboarding API and known to deals."""
    async with httpx.AsyncClient(timeout=30) as client:
        story = Story(client, fleet.urls, ADMIN_TOKEN)
        partner = Partner("faultline", "Faultline Referrals", "referral_affiliate")
        await story.onboard(partner, ["data", "ai"])
        await story.known_to_deals(partner)
        return partner


@pytest.fixture
async def admin_db(infra: Infra) -> AsyncIterator[Any]:
    conn = await asyncpg.connect(infra.admin_dsn)
    yield conn
    await conn.close()
