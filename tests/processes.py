"""Running services as real OS processes in tests, and polling their state (bounded)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from shared.auth import partner_token
from shared.settings import ServiceSettings
from tests.conftest import ROOT, Infra
from tests.integration.test_service_process import free_port, wait_ready

SETTINGS = ServiceSettings(service_name="tests")
ADMIN = {"Authorization": f"Bearer {SETTINGS.admin_token}"}


def auth(partner_id: str) -> dict[str, str]:
    """The bearer header of a partner's platform-wide token."""
    return {"Authorization": f"Bearer {partner_token(SETTINGS.partner_token_secret, partner_id)}"}


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    """Poll another process's state until `check` returns a truthy value (bounded)."""
    async with asyncio.timeout(timeout):
        while not (result := await check()):
            await asyncio.sleep(0.1)
        return result


@asynccontextmanager
async def service_processes(
    infra: Infra, service: str, count: int = 1, env: dict[str, str] | None = None
) -> AsyncIterator[list[str]]:
    """`count` processes of one service on its real schema and role, sharing its consumer
    groups; yields their base URLs once all are ready, stops them (SIGTERM) afterwards."""
    processes: list[asyncio.subprocess.Process] = []
    urls: list[str] = []
    try:
        for _ in range(count):
            port = free_port()
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                f"services.{service}",
                cwd=ROOT,
                env={
                    **os.environ,
                    "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
                    "DATABASE_URL": infra.dsn_for(f"{service}_svc", f"{service}_svc"),
                    "HTTP_PORT": str(port),
                    **(env or {}),
                },
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            processes.append(process)
            urls.append(f"http://127.0.0.1:{port}")
            await wait_ready(f"{urls[-1]}/health/ready", process)
        yield urls
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            await asyncio.wait_for(process.wait(), 30)
