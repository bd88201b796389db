"""Services as real OS processes in tests: ports, readiness, start/kill/restart (and, from
tests/support/tokens.py, the tokens to call them with)."""

from __future__ import annotations

import asyncio
import importlib
import os
import random
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.service import migrate as migrate_schema
from tests.support.infra import ROOT, Infra
from tests.support.polling import eventually

# Re-exported: many tests take the tokens from here with the processes they call.
from tests.support.tokens import ADMIN as ADMIN
from tests.support.tokens import ADMIN_TOKEN as ADMIN_TOKEN
from tests.support.tokens import auth as auth

SERVICES = ("onboarding", "deals", "attribution", "incentives", "notifications", "programme")
LOGS = ROOT / ".work" / "e2e"


_HANDED_OUT: set[int] = set()
_FEWEST_CANDIDATES = 1000


def free_port() -> int:
    """A free port for a process to listen on, found below the kernel's ephemeral range. A
    port the kernel hands out (bind to 0) lies inside that range, where every outgoing
    connection takes its local port: between the check and the child's bind, a connection of
    the child's own siblings to Kafka or Postgres took one (the benchmark's incentives failed
    with "address already in use"). A port is given once per process."""
    below = candidate_ports()
    if len(below) < _FEWEST_CANDIDATES:  # an ephemeral range starting low: the kernel's pick
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    ports = list(below)
    random.shuffle(ports)
    for port in ports:
        if port in _HANDED_OUT:
            continue  # given to a process that may not listen yet
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # listened on already
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError(f"no free port in {below}")


def candidate_ports() -> range:
    """Up to 10,000 ports just below the ephemeral range, none below 10,000 (where the stack's
    own fixed ports are: Postgres 5432, Kafka 9092-9094, the services 8000-8006)."""
    low = ephemeral_ports().start
    return range(max(10_000, low - 10_000), max(10_000, low))


def ephemeral_ports() -> range:
    """The local ports the kernel gives outgoing connections (Linux's default if unreadable)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    except (OSError, ValueError):
        return range(32768, 61000)
    return range(int(low), int(high) + 1)


def service_env(infra: Infra, service: str, port: int, **extra: str) -> dict[str, str]:
    """The environment of one service process on the test infrastructure (its own role).
    Its request rate limits are off unless `extra` sets them: the tests post from one address
    as a few partners, far faster than people do (tests/integration/test_rate_limits.py turns
    them on)."""
    return {
        **os.environ,
        **infra.kafka_env(infra.service_kafka(service)),
        "DATABASE_URL": infra.dsn_for(f"{service}_svc", f"{service}_svc"),
        "HTTP_PORT": str(port),
        "PARTNER_REQUESTS_PER_MINUTE": "0",
        "ANONYMOUS_REQUESTS_PER_MINUTE": "0",
        **extra,
    }


async def migrate(infra: Infra, service: str) -> None:
    """Apply `service`'s migrations as its schema's owner, as a deployment's migration step
    does before the service starts (the running service's role cannot)."""
    definition = importlib.import_module(f"services.{service}.app").definition
    await migrate_schema(definition, infra.dsn_for(f"{service}_owner", f"{service}_owner"))


async def wait_ready(
    url: str, process: asyncio.subprocess.Process, timeout: float = 60.0
) -> httpx.Response:
    """Poll the readiness endpoint of a child process (the only signal it offers); fail at
    once if the process exits."""
    async with httpx.AsyncClient() as client:

        async def ready() -> httpx.Response | None:
            if process.returncode is not None:
                raise AssertionError(f"service exited with {process.returncode}")
            try:
                response = await client.get(url)
            except httpx.TransportError:
                return None
            return response if response.status_code == 200 else None

        answer: httpx.Response = await eventually(ready, timeout, what=f"{url} ready", every=0.2)
        return answer


async def start_module(
    service: str,
    *args: str,
    env: Mapping[str, str],
    stdin: Any = None,
    stdout: Any = asyncio.subprocess.DEVNULL,
    stderr: Any = asyncio.subprocess.DEVNULL,
) -> asyncio.subprocess.Process:
    """`python -m services.<service> [args]` started in the repository's root, with `env` as
    its whole environment; what it prints is dropped unless `stdout`/`stderr` say where."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        f"services.{service}",
        *args,
        cwd=ROOT,
        env=dict(env),
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
    )


@asynccontextmanager
async def service_processes(
    infra: Infra, service: str, count: int = 1, env: dict[str, str] | None = None
) -> AsyncIterator[list[str]]:
    """`count` processes of one service on its real schema and role, sharing its consumer
    groups; yields their base URLs once all are ready, stops them (SIGTERM) afterwards."""
    processes: list[asyncio.subprocess.Process] = []
    urls: list[str] = []
    try:
        await migrate(infra, service)
        for _ in range(count):
            port = free_port()
            process = await start_module(
                service, env=service_env(infra, service, port, **(env or {}))
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


def service_fixture(service: str, env: Mapping[str, str] | None = None) -> Any:
    """A module-scoped fixture running one process of `service` (with `env` added to its
    settings) for a test module: its base URL. The module names it as its tests ask for it:
    `notifications = service_fixture("notifications")`."""

    @pytest.fixture(scope="module")
    async def running(infra: Infra) -> AsyncIterator[str]:
        async with service_processes(infra, service, env=dict(env or {})) as urls:
            yield urls[0]

    return running


@dataclass
class Instance:
    service: str
    url: str
    process: asyncio.subprocess.Process
    log: Path


@dataclass
class Fleet:
    """Service processes started, killed and restarted by the tests (logs under .work/e2e)."""

    infra: Infra
    instances: dict[tuple[str, int], Instance] = field(default_factory=dict)
    # Extra environment for every process this fleet starts (a test's settings).
    env: dict[str, str] = field(default_factory=dict)

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
        await migrate(self.infra, service)
        with log.open("ab") as out:
            process = await start_module(
                service,
                env=service_env(self.infra, service, port, LOG_FORMAT="text", **self.env),
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
