"""End-to-end benchmark of the deal chain against the raw limits of the same machine.

    make bench          # full mode: the numbers in the README (about 8 minutes)
    make bench-quick    # quick mode: a check that everything measures (under 2 minutes)
    make bench-scale    # quick mode, then saturation again with two instances of each service

Starts the five services as OS processes on the local stack, onboards partners through
onboarding, then offers won CRM deals to deals' Salesforce endpoint at fixed rates and at
saturation. Each deal names its referring partner, so it flows deals -> attribution (credit) ->
incentives (earning) and produces notifications. Latency is measured with timestamps carried by
the events: from the CRM change's `ingested_at` (set when deals accepted it) to the Kafka
timestamp of the partner notification (attribution's credit notice: the first the partner
hears) and of the incentive entry (`incentive.earned.v1`), and to the moment the partner's
webhook receiver (benchmarks/webhook_receiver.py: a process of its own, verifying each
signature) got that credit notice from the notifications service. Also measured in the same run: raw
aiokafka produce->consume and raw Postgres single-row transactions with an outbox insert,
outbox relay lag, service RSS at saturation, and the conflict-check cost as registrations grow.
Writes JSON to `.work/bench/results.json` (or --out) and prints a table. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from benchmarks import conflict_check
from deploy.story import Partner, Story
from shared.db import create_pool
from shared.events import EventPayload, event_type
from shared.kafka_client import KafkaConnection
from shared.outbox import Outbox
from shared.topics import INCENTIVE_LEDGER, PARTNER_NOTIFICATIONS, Topic, ensure_topics
from tests.support.crm import salesforce_cdc, salesforce_delivery
from tests.support.infra import Infra, scratch_schema
from tests.support.processes import free_port, migrate, service_env
from tests.support.tokens import ADMIN_TOKEN

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("onboarding", "deals", "attribution", "incentives", "notifications")


def percentiles(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"count": 0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {
        "count": len(ordered),
        "p50_ms": at(0.50),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "p999_ms": at(0.999),
        "max_ms": round(ordered[-1], 2),
    }


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


class CpuMeter:
    """CPU time of each part of the run (from /proc), and Postgres' WAL volume, over a window:
    where the machine's cores go, per deal. Processes that start or end inside the window
    are missed, which is why the machine's total busy time is reported beside the parts."""

    def __init__(self, admin_dsn: str, services: dict[str, int]) -> None:
        self.admin_dsn = admin_dsn
        self.service_of = {pid: service for service, pid in services.items()}
        self.ticks = os.sysconf("SC_CLK_TCK")

    def _part(self, pid: int) -> str | None:
        if pid in self.service_of:
            return self.service_of[pid]
        if pid == os.getpid():
            return "load generator"
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        if b"kafka.Kafka" in command:
            return "kafka"
        program = command.split(b"\0")[0]
        # The postmaster is .../bin/postgres; its children rename themselves "postgres: ...".
        if program.rsplit(b"/", 1)[-1] == b"postgres" or program.startswith(b"postgres:"):
            return "postgres"
        return None

    def _snapshot(self) -> tuple[float, dict[int, tuple[str, int]], int]:
        parts: dict[int, tuple[str, int]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            part = self._part(int(entry.name))
            if part is None:
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parts[int(entry.name)] = (part, int(fields[11]) + int(fields[12]))
        # cpu  user nice system idle iowait irq softirq steal ...: busy is all but idle, iowait.
        ticks = [int(v) for v in Path("/proc/stat").read_text().split()[1:9]]
        busy = sum(ticks) - ticks[3] - ticks[4]
        return time.perf_counter(), parts, busy

    async def _wal_written(self) -> int:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            return int(await conn.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')"))
        finally:
            await conn.close()

    async def start(self) -> None:
        self._wal_start = await self._wal_written()
        self._start = self._snapshot()

    async def stop(self) -> None:
        """End the window (what it measured is read with `per_deal`)."""
        self._end = self._snapshot()
        self._wal_end = await self._wal_written()

    def per_deal(self, deals: int) -> dict[str, Any]:
        """The window's figures, and per deal for the `deals` completed inside it."""
        end_at, end, end_busy = self._end
        start_at, start, start_busy = self._start
        seconds = end_at - start_at
        used: Counter[str] = Counter()
        for pid, (part, ticks) in end.items():
            used[part] += ticks - start.get(pid, (part, 0))[1]
        wal = self._wal_end - self._wal_start
        return {
            "seconds": round(seconds, 1),
            "deals_completed": deals,
            "machine_busy_pct_of_one_core": round(
                (end_busy - start_busy) / self.ticks / seconds * 100, 1
            ),
            "cpu_pct_of_one_core": {
                part: round(ticks / self.ticks / seconds * 100, 1)
                for part, ticks in used.most_common()
            },
            "cpu_ms_per_deal": {
                part: round(ticks / self.ticks * 1000 / deals, 3) if deals else None
                for part, ticks in used.most_common()
            },
            "wal_mb_per_s": round(wal / seconds / 1e6, 1),
            "wal_kb_per_deal": round(wal / deals / 1e3, 1) if deals else None,
        }


# ---- the services ------------------------------------------------------------------------


@dataclass
class Fleet:
    """The services as OS processes: one instance of each, and more with `start(instance=n)`
    (they join the service's consumer groups and share its partitions)."""

    infra: Infra
    # "deals" for the first instance, "deals#2" for a second: the names CpuMeter reports.
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)  # the first instance of each
    instance_urls: dict[str, str] = field(default_factory=dict)

    def start(self, instance: int = 1) -> None:
        logs = ROOT / ".work" / "bench"
        logs.mkdir(parents=True, exist_ok=True)
        for service in SERVICES:
            name = service if instance == 1 else f"{service}#{instance}"
            port = free_port()
            env = service_env(self.infra, service, port, LOG_LEVEL="WARNING", TRACE_EXPORTER="none")
            with (logs / f"{service}-{instance}.log").open("ab") as out:
                self.processes[name] = subprocess.Popen(  # noqa: S603 (our own module)
                    [sys.executable, "-m", f"services.{service}"],
                    cwd=ROOT,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                )
            self.instance_urls[name] = f"http://127.0.0.1:{port}"
            self.urls.setdefault(service, self.instance_urls[name])

    def urls_of(self, service: str) -> list[str]:
        return [url for name, url in self.instance_urls.items() if name.split("#")[0] == service]

    async def ready(self) -> None:
        async with httpx.AsyncClient(timeout=5) as client, asyncio.timeout(90):
            for name, url in self.instance_urls.items():
                while True:
                    if self.processes[name].poll() is not None:
                        raise RuntimeError(f"{name} exited: see .work/bench/ logs")
                    with contextlib.suppress(httpx.TransportError):
                        if (await client.get(f"{url}/health/ready")).status_code == 200:
                            break
                    await asyncio.sleep(0.2)

    def stop(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


# ---- raw baselines -----------------------------------------------------------------------


async def kafka_baseline(kafka: KafkaConnection, messages: int, size: int) -> dict[str, Any]:
    """aiokafka produce -> consume of same-sized messages, the producer settings of the relay."""
    topic = Topic(f"bench.raw.{uuid.uuid4().hex[:8]}", "bench", "n", 6, "raw baseline")
    await ensure_topics(kafka, [topic])
    producer = AIOKafkaProducer(
        **kafka.aiokafka_options(), enable_idempotence=True, acks="all", linger_ms=5
    )
    consumer = AIOKafkaConsumer(
        topic.name, **kafka.aiokafka_options(), auto_offset_reset="earliest", group_id=None
    )
    await producer.start()
    await consumer.start()
    payload = b"x" * size
    try:
        started = time.perf_counter()

        async def produce() -> None:
            pending = [
                await producer.send(topic.name, payload, key=str(i % 64).encode())
                for i in range(messages)
            ]
            await asyncio.gather(*pending)

        producing = asyncio.create_task(produce())
        received = 0
        while received < messages:
            batch = await consumer.getmany(timeout_ms=1000)
            received += sum(len(records) for records in batch.values())
        elapsed = time.perf_counter() - started
        await producing
    finally:
        await consumer.stop()
        await producer.stop()
    return {"messages": messages, "bytes": size, "msgs_per_s": round(messages / elapsed)}


@event_type("bench.row_written.v1")
class RowWritten(EventPayload):
    n: int


async def postgres_baseline(infra: Infra, transactions: int, writers: int) -> dict[str, Any]:
    """Single-row transactions, each with an outbox insert (the unit of work of every hop)."""
    async with scratch_schema(infra) as scratch:
        schema = scratch.schema
        await scratch.migrate("platform")
        await scratch.as_owner("CREATE TABLE rows (n int PRIMARY KEY, at timestamptz NOT NULL)")
        pool = await create_pool(scratch.dsn, schema, max_size=writers)
        try:
            outbox = Outbox(schema, "bench")
            topic = Topic(f"bench.{schema}", schema, "n", 1, "not published: no relay runs")
            counter = iter(range(transactions))

            async def writer() -> None:
                async with pool.acquire() as conn:
                    for n in counter:
                        async with conn.transaction():
                            await conn.execute("INSERT INTO rows VALUES ($1, now())", n)
                            await outbox.publish(conn, topic, RowWritten(n=n), subject=str(n))

            started = time.perf_counter()
            await asyncio.gather(*(writer() for _ in range(writers)))
            elapsed = time.perf_counter() - started
        finally:
            await pool.close()
    return {
        "transactions": transactions,
        "writers": writers,
        "tx_per_s": round(transactions / elapsed),
    }


# ---- the chain ---------------------------------------------------------------------------


@dataclass
class Observed:
    """What the chain emitted for the benchmark's deals, keyed by deal."""

    notified_ms: dict[str, float] = field(default_factory=dict)
    earned_ms: dict[str, float] = field(default_factory=dict)
    earned_at: dict[str, float] = field(default_factory=dict)  # Kafka timestamp, seconds
    earned_in: Counter[str] = field(default_factory=Counter)  # deals completed, by phase
    ingested_at: dict[str, float] = field(default_factory=dict)  # epoch ms

    def slowest(self, keys: list[str], n: int = 10) -> list[dict[str, Any]]:
        """The slowest notifications, with when they were ingested: outliers that share a
        moment point at a stall (a checkpoint, a pause) rather than a slow path."""
        if not keys:
            return []
        first = min(self.ingested_at.get(k, float("inf")) for k in keys)
        ranked = sorted(
            (k for k in keys if k in self.notified_ms), key=lambda k: self.notified_ms[k]
        )
        return [
            {
                "ingested_s": round((self.ingested_at[k] - first) / 1000, 3),
                "ingested_at": datetime.fromtimestamp(self.ingested_at[k] / 1000, UTC).isoformat(),
                "notification_ms": round(self.notified_ms[k], 1),
                "incentive_ms": round(self.earned_ms.get(k, float("nan")), 1),
            }
            for k in reversed(ranked[-n:])
        ]

    def earned(self, deal: str, latency: float, at: float) -> None:
        if deal not in self.earned_ms:
            self.earned_ms[deal] = latency
            self.earned_at[deal] = at
            self.earned_in[phase_of(deal)] += 1


async def observe(
    kafka: KafkaConnection, run: str, observed: Observed, stop: asyncio.Event
) -> None:
    consumer = AIOKafkaConsumer(
        PARTNER_NOTIFICATIONS.name,
        INCENTIVE_LEDGER.name,
        **kafka.aiokafka_options(),
        auto_offset_reset="latest",
        group_id=f"bench-observer-{run}",
        enable_auto_commit=False,
        max_poll_records=2000,
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    if run.encode() not in record.value:
                        continue
                    event = json.loads(record.value)
                    data = event["data"]
                    ingested = data.get("ingested_at")
                    deal = data.get("deal_key")
                    if not ingested or not deal:
                        continue
                    start = datetime.fromisoformat(ingested).timestamp() * 1000
                    observed.ingested_at.setdefault(deal, start)
                    latency = record.timestamp - start
                    if event["type"] == "notification.partner.v1":
                        if data["kind"] == "credit_issued":
                            observed.notified_ms.setdefault(deal, latency)
                    elif event["type"] == "incentive.earned.v1":
                        observed.earned(deal, latency, record.timestamp / 1000)
    finally:
        await consumer.stop()


class Offer:
    """Posts won deals to deals' Salesforce endpoint, ten per request (in turn to each deals
    instance, as a load balancer would)."""

    def __init__(self, deals_url: str, partners: list[Partner], run: str) -> None:
        self.urls = [f"{deals_url}/crm/salesforce"]
        self.posts = 0
        self.partners = partners
        self.run = run
        self.sent: list[str] = []
        self.numbered = 0  # deals numbered so far: concurrent posts must never share a record id
        # Idle connections are dropped before uvicorn closes them (its keep-alive is 5 s): a
        # post on a connection the server is closing fails with a read error.
        self.client = httpx.AsyncClient(
            timeout=60, limits=httpx.Limits(max_connections=32, keepalive_expiry=2.0)
        )

    def batch(self, phase: str, size: int) -> tuple[list[str], list[Any]]:
        at = datetime.now(UTC)
        keys: list[str] = []
        events: list[Any] = []
        for _ in range(size):
            n, self.numbered = self.numbered, self.numbered + 1
            record = f"B{self.run}{phase}{n:07d}"  # phase_of() reads the phase back
            partner = self.partners[n % len(self.partners)]
            keys.append(f"salesforce:{record}")
            events.append(
                salesforce_cdc(
                    record,
                    "CREATE",
                    at,
                    {
                        "StageName": "Closed Won",
                        "Amount": 1000 + n % 9000,  # whole dollars: exact as a JSON number
                        "CurrencyIsoCode": "USD",
                        "CloseDate": at.date().isoformat(),
                        "Account_Name__c": f"Bench {self.run} Account {n}",
                        "Account_Website__c": f"https://bench-{self.run}-{n}.example",
                        "Partner_Account__c": partner.partner_id,
                    },
                )
            )
        return keys, events

    async def post(self, phase: str, size: int = 10) -> None:
        keys, events = self.batch(phase, size)
        # Signed as the Salesforce relay signs each delivery (Standard Webhooks).
        url, self.posts = self.urls[self.posts % len(self.urls)], self.posts + 1
        response = await self.client.post(url, **salesforce_delivery(events))
        response.raise_for_status()
        self.sent.extend(keys)

    async def at_rate(self, phase: str, rate: float, seconds: float) -> int:
        """Offer `rate` deals/s for `seconds` (open loop: sends do not wait for each other)."""
        interval = 10 / rate
        tasks: list[asyncio.Task[None]] = []
        start = time.perf_counter()
        n = 0
        while (now := time.perf_counter()) - start < seconds:
            due = start + n * interval
            if due > now:
                await asyncio.sleep(due - now)
            tasks.append(asyncio.create_task(self.post(phase)))
            n += 1
        await asyncio.gather(*tasks)
        return n * 10

    async def saturate(
        self, phase: str, seconds: float, observed: Observed, window: int = 600
    ) -> int:
        """As fast as the whole chain completes deals: closed loop on completion, at most
        `window` deals between ingestion and their incentive entry (so the run measures the
        chain, not how fast deals' HTTP edge fills a backlog)."""
        deadline = time.perf_counter() + seconds
        sent = 0

        async def loop() -> None:
            nonlocal sent
            while time.perf_counter() < deadline:
                # A count, not a scan of what was sent: the generator shares the machine's two
                # cores with what it measures, so it must cost the same at the end of the run.
                in_flight = sent - observed.earned_in[phase]
                if in_flight >= window:
                    await asyncio.sleep(0.05)
                    continue
                sent += 10  # counted before the await: the other loops see it in flight
                await self.post(phase)

        await asyncio.gather(*(loop() for _ in range(4)))
        return sent


@dataclass
class Receivers:
    """The partners' webhook receivers (benchmarks/webhook_receiver.py): a process of its own,
    one path per partner, registered with the notifications service for credit notices."""

    process: subprocess.Popen[bytes]
    url: str

    @classmethod
    def spawn(cls) -> Receivers:
        port = free_port()
        process = subprocess.Popen(  # noqa: S603 (our own module)
            [sys.executable, "-m", "benchmarks.webhook_receiver", "--port", str(port)],
            cwd=ROOT,
        )
        return cls(process, f"http://127.0.0.1:{port}")

    async def register(self, notifications_url: str, partners: list[Partner]) -> None:
        receivers = self
        async with httpx.AsyncClient(timeout=30) as client:
            async with asyncio.timeout(30):
                while True:
                    with contextlib.suppress(httpx.TransportError):
                        if (await client.get(f"{receivers.url}/_results")).status_code == 200:
                            break
                    await asyncio.sleep(0.2)
            for partner in partners:
                answer = await client.post(
                    f"{notifications_url}/partners/{partner.partner_id}/webhooks",
                    json={
                        "url": f"{receivers.url}/{partner.partner_id}",
                        "kinds": ["credit_issued"],
                    },
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                )
                answer.raise_for_status()
                armed = await client.post(
                    f"{receivers.url}/_secret/{partner.partner_id}",
                    content=answer.json()["secret"].encode(),
                )
                armed.raise_for_status()

    async def latencies(self, keys: list[str]) -> dict[str, float | int]:
        """Ingestion -> webhook received for `keys`, once they all arrived (at most a minute
        after their incentive entries)."""
        found: dict[str, float] = {}
        async with httpx.AsyncClient(timeout=30) as client:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(60):
                    while True:
                        results = (await client.get(f"{self.url}/_results")).json()
                        found = results["latencies"]
                        if results["refused"]:
                            raise RuntimeError(f"{results['refused']} deliveries did not verify")
                        if all(k in found for k in keys):
                            break
                        await asyncio.sleep(0.5)
        return percentiles([found[k] for k in keys if k in found])

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def phase_of(deal_key: str) -> str:
    """The phase a benchmark deal was offered in ("salesforce:B<run><phase><7 digits>")."""
    return deal_key.removeprefix("salesforce:B")[6:-7]


async def drained(observed: Observed, keys: list[str], within: float) -> bool:
    """Whether every deal's incentive entry was observed within `within` seconds."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            while not all(k in observed.earned_ms for k in keys):  # noqa: ASYNC110 (filled by the observer task)
                await asyncio.sleep(0.25)
            return True
    return False


async def relay_lag(admin_dsn: str, since: datetime, until: datetime) -> dict[str, Any]:
    """Outbox row committed -> acknowledged by Kafka, per service, from the outboxes' stamps
    (`committed_at` needs track_commit_timestamp, which the local stack turns on; without it,
    from the writing transaction's start, which overstates the lag by the transaction's
    length)."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        lags: list[float] = []
        per_service: dict[str, Any] = {
            "measured_from": "commit"
            if await conn.fetchval("SELECT current_setting('track_commit_timestamp') = 'on'")
            else "transaction start"
        }
        for service in ("deals", "attribution", "incentives"):
            rows = await conn.fetch(
                f"""SELECT extract(epoch FROM published_at - coalesce(committed_at, created_at))
                        * 1000 AS ms
                    FROM {service}.outbox
                    WHERE created_at BETWEEN $1 AND $2 AND published_at IS NOT NULL""",
                since,
                until,
            )
            values = [float(r["ms"]) for r in rows]
            per_service[service] = percentiles(values)
            lags.extend(values)
        return {"all": percentiles(lags), **per_service}
    finally:
        await conn.close()


def describe_machine() -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 (git from PATH)
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "commit": commit,
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(memory, 1),
            "cpu": cpu,
            "python": platform.python_version(),
            "kernel": platform.release(),
        },
    }


async def saturation(
    infra: Infra,
    fleet: Fleet,
    receivers: Receivers,
    offer: Offer,
    observed: Observed,
    phase: str,
    seconds: float,
) -> dict[str, Any]:
    """The chain as fast as it completes deals for `seconds`, with what it used meanwhile."""
    first = len(offer.sent)
    rss: dict[str, float] = dict.fromkeys(fleet.processes, 0.0)

    async def sample_rss() -> None:
        while True:
            for name, process in fleet.processes.items():
                rss[name] = max(rss[name], rss_mb(process.pid))
            await asyncio.sleep(1)

    sampler = asyncio.create_task(sample_rss())
    meter = CpuMeter(infra.admin_dsn, {s: p.pid for s, p in fleet.processes.items()})
    started, since = time.perf_counter(), datetime.now(UTC)
    await meter.start()
    metered_from = time.time()
    await offer.saturate(phase, seconds, observed)
    metered_to = time.time()
    await meter.stop()
    offered_for = time.perf_counter() - started
    keys = offer.sent[first:]
    complete = await drained(observed, keys, 300)
    # Counted once the observer has read everything: deals the chain finished inside the
    # metered window (by their Kafka timestamps).
    resources = meter.per_deal(
        sum(1 for at in observed.earned_at.values() if metered_from <= at <= metered_to)
    )
    sampler.cancel()
    finished = [observed.earned_at[k] for k in keys if k in observed.earned_at]
    completed_span = (max(finished) - min(finished)) if len(finished) > 1 else 0
    return {
        "deals": len(keys),
        "accepted_per_s": round(len(keys) / offered_for, 1),
        "all_completed": complete,
        "end_to_end_deals_per_s": round(len(finished) / completed_span, 1)
        if completed_span
        else None,
        "ingestion_to_notification": percentiles(
            [observed.notified_ms[k] for k in keys if k in observed.notified_ms]
        ),
        "ingestion_to_incentive_entry": percentiles(
            [observed.earned_ms[k] for k in keys if k in observed.earned_ms]
        ),
        "ingestion_to_webhook": await receivers.latencies(keys),
        "rss_mb": rss,
        "resources": resources,
        "relay_lag": await relay_lag(infra.admin_dsn, since, datetime.now(UTC)),
    }


async def run(quick: bool, scale: bool = False) -> dict[str, Any]:
    infra = Infra.from_env(os.environ)
    # Open-loop phases stay short: above capacity they build a backlog the drain must clear.
    phase_seconds = 10.0 if quick else 20.0
    saturation_seconds = 15.0 if quick else 60.0
    results: dict[str, Any] = {
        "mode": ("quick" if quick else "full") + (", two instances" if scale else ""),
        "started_at": datetime.now(UTC).isoformat(),
        **describe_machine(),
    }
    print("raw baselines ...", flush=True)
    results["baseline_kafka"] = await kafka_baseline(infra.kafka, 20_000 if quick else 100_000, 900)
    results["baseline_postgres"] = await postgres_baseline(infra, 2_000 if quick else 10_000, 8)

    for service in SERVICES:
        await migrate(infra, service)
    fleet = Fleet(infra)
    fleet.start()
    receivers = Receivers.spawn()
    try:
        await fleet.ready()
        run_id = uuid.uuid4().hex[:6]
        async with httpx.AsyncClient(timeout=30) as client:
            story = Story(client, fleet.urls, ADMIN_TOKEN)
            partners = [
                # GSIs: they register (referral partners refer), under the policy's window.
                Partner(f"bench{i}", f"Bench Partner {i}", "gsi")
                for i in range(12)
            ]
            for partner in partners:
                await story.onboard(partner, ["data"])
            for partner in partners:
                await story.known_to_deals(partner)
                await story.crm_linked(partner)  # the offered deals name it by its id
        observed = Observed()
        await receivers.register(fleet.urls["notifications"], partners)
        stop = asyncio.Event()
        observer = asyncio.create_task(observe(infra.kafka, run_id, observed, stop))
        offer = Offer(fleet.urls["deals"], partners, run_id)
        # Warm-up at a moderate rate, not one request: every pooled connection must have
        # prepared its statements and every partition been fetched once, or the first
        # measured requests pay for it (they were the 10 slowest of the 100/s phase).
        await offer.at_rate("warm", 100, 3.0)
        await drained(observed, list(offer.sent), 60)

        phases: dict[str, Any] = {}
        rates = [100] if quick else [100, 500]
        for rate in rates:
            print(f"offered load {rate} deals/s for {phase_seconds:.0f}s ...", flush=True)
            first = len(offer.sent)
            started, since = time.perf_counter(), datetime.now(UTC)
            await offer.at_rate(f"r{rate}", rate, phase_seconds)
            keys = offer.sent[first:]
            complete = await drained(observed, keys, 300)
            phases[f"offered_{rate}"] = {
                "offered_per_s": rate,
                "deals": len(keys),
                "accepted_per_s": round(len(keys) / (time.perf_counter() - started), 1),
                "all_completed": complete,
                "ingestion_to_notification": percentiles(
                    [observed.notified_ms[k] for k in keys if k in observed.notified_ms]
                ),
                "slowest": observed.slowest(keys),
                "ingestion_to_incentive_entry": percentiles(
                    [observed.earned_ms[k] for k in keys if k in observed.earned_ms]
                ),
                "ingestion_to_webhook": await receivers.latencies(keys),
                "relay_lag": await relay_lag(infra.admin_dsn, since, datetime.now(UTC)),
            }

        print(f"saturation for {saturation_seconds:.0f}s ...", flush=True)
        phases["saturation"] = await saturation(
            infra, fleet, receivers, offer, observed, "sat", saturation_seconds
        )
        if scale:
            # A second instance of every service: it joins the consumer groups, takes half of
            # the partitions, and half of the HTTP posts go to the second deals instance.
            fleet.start(instance=2)
            await fleet.ready()
            offer.urls = [f"{url}/crm/salesforce" for url in fleet.urls_of("deals")]
            await offer.at_rate("wa2", 100, 3.0)  # rebalanced and warm before measuring
            await drained(observed, list(offer.sent), 120)
            print(f"saturation, two instances each, for {saturation_seconds:.0f}s ...", flush=True)
            phases["saturation_two_instances"] = await saturation(
                infra, fleet, receivers, offer, observed, "sa2", saturation_seconds
            )
        results["chain"] = phases
        stop.set()
        await observer
        await offer.client.aclose()
    finally:
        receivers.stop()
        fleet.stop()

    sizes = [1_000, 100_000] if quick else [1_000, 100_000, 1_000_000]
    print(f"conflict check at {sizes} registrations ...", flush=True)
    results["conflict_check"] = await conflict_check.run(infra, sizes, 200 if quick else 400)
    saturated = results["chain"]["saturation"].get("end_to_end_deals_per_s") or 0
    results["ratios"] = {
        "chain_vs_kafka_msgs": round(saturated / results["baseline_kafka"]["msgs_per_s"], 4),
        "chain_vs_postgres_tx": round(saturated / results["baseline_postgres"]["tx_per_s"], 4),
    }
    return results


def table(results: dict[str, Any]) -> str:
    lines = [f"Pollinate chain benchmark ({results['mode']}, commit {results['commit']})"]
    lines.append(
        f"raw: kafka {results['baseline_kafka']['msgs_per_s']} msgs/s, "
        f"postgres+outbox {results['baseline_postgres']['tx_per_s']} tx/s"
    )
    for name, phase in results["chain"].items():
        notified = phase["ingestion_to_notification"]
        earned = phase["ingestion_to_incentive_entry"]
        head = f"{name:13} deals {phase['deals']:6}"
        if "end_to_end_deals_per_s" in phase:
            head += f"  e2e {phase['end_to_end_deals_per_s']} deals/s"
        lines.append(head)
        hooked = phase.get("ingestion_to_webhook", {})
        for label, values in (
            ("-> notification", notified),
            ("-> incentive  ", earned),
            ("-> webhook    ", hooked),
        ):
            if values.get("count"):
                lines.append(
                    f"    {label} p50 {values['p50_ms']:8.1f}  p95 {values['p95_ms']:8.1f}  "
                    f"p99 {values['p99_ms']:8.1f}  p99.9 {values['p999_ms']:8.1f} ms"
                )
        lag = phase["relay_lag"]["all"]
        if lag.get("count"):
            lines.append(
                f"    relay lag ({phase['relay_lag']['measured_from']} -> Kafka ack) "
                f"p50 {lag['p50_ms']:.1f}  p99 {lag['p99_ms']:.1f} ms"
            )
    lines.append(f"rss at saturation (MB): {results['chain']['saturation']['rss_mb']}")
    used = results["chain"]["saturation"]["resources"]
    lines.append(
        f"cpu at saturation: machine {used['machine_busy_pct_of_one_core']}% of one core; "
        + ", ".join(
            f"{part} {pct}% ({used['cpu_ms_per_deal'][part]} ms/deal)"
            for part, pct in used["cpu_pct_of_one_core"].items()
        )
    )
    lines.append(
        f"postgres WAL at saturation: {used['wal_mb_per_s']} MB/s, "
        f"{used['wal_kb_per_deal']} kB per deal"
    )
    for size, row in results["conflict_check"].items():
        if isinstance(row, dict) and "exact" in row:
            lines.append(
                f"conflict check {size:>8}: exact p50 {row['exact']['p50_ms']} p99 "
                f"{row['exact']['p99_ms']} ms; fuzzy p50 {row['fuzzy']['p50_ms']} p99 "
                f"{row['fuzzy']['p99_ms']} ms"
            )
    two = results["chain"].get("saturation_two_instances")
    if two:
        one = results["chain"]["saturation"]["end_to_end_deals_per_s"] or 0
        both = two["end_to_end_deals_per_s"] or 0
        lines.append(
            f"scale: one instance each {one} deals/s, two instances each {both} deals/s "
            f"({both / one if one else 0:.2f}x on this machine's {os.cpu_count()} cores)"
        )
    lines.append(f"ratios: {results['ratios']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="End-to-end benchmark of the deal chain.")
    parser.add_argument("--quick", action="store_true", help="under 2 minutes, for checking")
    parser.add_argument(
        "--scale",
        action="store_true",
        help="after saturating one instance of each service, start a second of each and "
        "saturate again: deals/s of both",
    )
    parser.add_argument("--out", type=Path, default=ROOT / ".work" / "bench" / "results.json")
    args = parser.parse_args()
    results = asyncio.run(run(args.quick, args.scale))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    print(table(results))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
