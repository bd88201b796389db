"""End-to-end benchmark of the deal chain against the raw limits of the same machine.

    make bench          # full mode: the numbers in the README (about 8 minutes)
    make bench-3        # full mode three times, side by side, with issue 23's goals met in N of 3
    make bench-quick    # quick mode: a check that everything measures (under 2 minutes)
    make bench-scale    # quick mode, then saturation again with two instances of each service

Starts the five services as OS processes on the local stack, onboards partners through
onboarding, then offers won CRM deals to deals' Salesforce endpoint at fixed rates and at
saturation. Each deal names its referring partner, so it flows deals -> attribution (credit) ->
incentives (earning) and produces notifications. Latency is measured with timestamps carried by
the events: from the CRM change's `ingested_at` (set when deals accepted it) to the Kafka
timestamp of the partner notification (attribution's credit notice: the first the partner
hears) and of the credit's booking in the ledger (`incentive.credit_booked.v1`), and to the
moment the partner's webhook receiver (benchmarks/webhook_receiver.py: a process of its own, verifying each
signature) got that credit notice from the notifications service. Also measured in the same run: raw
aiokafka produce->consume and raw Postgres single-row transactions with an outbox insert,
outbox relay lag, service RSS at saturation, the conflict-check cost as registrations grow, and
two yardsticks of the machine (benchmarks/yardsticks.py). The load generator
(benchmarks/load.py) retries its idempotent posts and counts what they met; a step that fails
keeps what it measured and says why. Writes JSON to `.work/bench/results.json` (or --out) and
prints a table with issue 23's goals checked against the run's own figures (benchmarks/goals.py).
Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import signal
import subprocess
import sys
import time
import traceback
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from benchmarks import conflict_check, goals, report, yardsticks
from benchmarks.cpu_meter import CpuMeter, rss_mb
from benchmarks.hops import CHAIN_OUTBOXES, OutboxMark, hop_breakdown, outbox_mark
from benchmarks.latency import percentiles
from benchmarks.load import Offer, Pace
from deploy.story import Partner, Story
from shared.db import create_pool
from shared.events import EventPayload, event_type
from shared.kafka_client import KafkaConnection
from shared.outbox import Outbox
from shared.topics import INCENTIVE_LEDGER, PARTNER_NOTIFICATIONS, Topic, ensure_topics
from tests.support.infra import Infra, scratch_schema
from tests.support.processes import free_port, migrate, service_env
from tests.support.tokens import ADMIN_TOKEN

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("onboarding", "deals", "attribution", "incentives", "notifications")
# The quiet phase: four deals a second on average, each posted alone, at moments drawn from a
# generator seeded alike in every run (about 40 deals in quick mode, 160 in full: there its p99
# is a deal's, not the slowest one's).
QUIET_RATE = 4
QUIET_SEED = 23


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

    async def ready(self, within: float = 180) -> None:
        """Every instance answers ready, or an error naming those that did not (a loaded
        machine, other stacks' tests on it, starts five services in well over a minute)."""
        waiting = list(self.instance_urls)
        try:
            async with httpx.AsyncClient(timeout=5) as client, asyncio.timeout(within):
                for name, url in self.instance_urls.items():
                    while True:
                        if self.processes[name].poll() is not None:
                            raise RuntimeError(f"{name} exited: see .work/bench/ logs")
                        with contextlib.suppress(httpx.TransportError):
                            if (await client.get(f"{url}/health/ready")).status_code == 200:
                                break
                        await asyncio.sleep(0.2)
                    waiting.remove(name)
        except TimeoutError as error:
            raise RuntimeError(
                f"not ready within {within:.0f} s: {', '.join(waiting)} (see .work/bench/ logs)"
            ) from error

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

    def by_second(self, keys: list[str]) -> list[dict[str, Any]]:
        """The phase second by second of ingestion: for the deals of `keys` ingested in each
        second and notified, how many, and the median and slowest of their notifications (as
        `percentiles` gives them), so a tail can be told apart as a moment (a
        start-up transient, a stall) or as spread over the whole phase. A second none of
        whose deals was notified is there with 0 deals."""
        ingested = [k for k in keys if k in self.ingested_at]
        if not ingested:
            return []
        first = min(self.ingested_at[k] for k in ingested)
        seconds: dict[int, list[float]] = {}
        for k in ingested:
            second = int((self.ingested_at[k] - first) // 1000)
            latencies = seconds.setdefault(second, [])
            if k in self.notified_ms:
                latencies.append(self.notified_ms[k])
        timeline: list[dict[str, Any]] = []
        for second in range(max(seconds) + 1):
            notified = percentiles(seconds.get(second, []))
            row: dict[str, Any] = {"second": second, "deals": notified["count"]}
            if notified["count"]:
                row["p50_ms"], row["max_ms"] = notified["p50_ms"], notified["max_ms"]
            timeline.append(row)
        return timeline

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
                    elif event["type"] == "incentive.credit_booked.v1":
                        observed.earned(deal, latency, record.timestamp / 1000)
    finally:
        await consumer.stop()


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

    async def ready(self) -> None:
        """The receiver process answers (within 30 s)."""
        async with httpx.AsyncClient(timeout=30) as client, asyncio.timeout(30):
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{self.url}/_results")).status_code == 200:
                        return
                await asyncio.sleep(0.2)

    async def arm(self, client: httpx.AsyncClient, name: str, secret: str) -> None:
        """`/<name>` verifies its deliveries with `secret` (a `whsec_` secret)."""
        armed = await client.post(f"{self.url}/_secret/{name}", content=secret.encode())
        armed.raise_for_status()

    async def register(self, notifications_url: str, partners: list[Partner]) -> None:
        await self.ready()
        async with httpx.AsyncClient(timeout=30) as client:
            for partner in partners:
                answer = await client.post(
                    f"{notifications_url}/partners/{partner.partner_id}/webhooks",
                    json={
                        "url": f"{self.url}/{partner.partner_id}",
                        "kinds": ["credit_issued"],
                    },
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                )
                answer.raise_for_status()
                await self.arm(client, partner.partner_id, answer.json()["secret"])

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


async def relay_lag(admin_dsn: str, since: OutboxMark, until: OutboxMark) -> dict[str, Any]:
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
        for service in CHAIN_OUTBOXES:
            rows = await conn.fetch(
                f"""SELECT extract(epoch FROM published_at - coalesce(committed_at, created_at))
                        * 1000 AS ms
                    FROM {service}.outbox
                    WHERE position > $1 AND position <= $2 AND published_at IS NOT NULL""",
                since[service],
                until[service],
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


@contextlib.asynccontextmanager
async def step(into: dict[str, Any], what: str) -> AsyncIterator[None]:
    """One step of a run. If it raises, the run goes on without the rest of it: the reason is
    kept in `into["failed"]` (the first, if several) beside whatever the step had already put
    in `into`, and printed, so a run that meets an error still reports what it measured."""
    try:
        yield
    except Exception as error:
        reason = f"{what}: {type(error).__name__}: {str(error) or where(error)}"
        into.setdefault("failed", reason)
        print(f"FAILED {reason}", flush=True)


def where(error: BaseException) -> str:
    """The benchmark's own line an error without a message was raised from (a timeout's)."""
    below = traceback.extract_tb(error.__traceback__)[1:]  # the first frame is step's own
    ours = [f for f in below if "/benchmarks/" in f.filename]
    if not ours:
        return "(no message)"
    frame = ours[-1]
    return f"at {Path(frame.filename).name}:{frame.lineno} in {frame.name}"


async def completed(
    infra: Infra,
    receivers: Receivers,
    observed: Observed,
    keys: list[str],
    since: OutboxMark,
    phase: dict[str, Any],
) -> None:
    """Waits for `keys` (the deals a phase's accepted posts carried) to complete, then puts
    their latencies and the outboxes' relay lag since `since` in `phase`."""
    phase["all_completed"] = await drained(observed, keys, 300)
    phase["not_completed"] = sum(1 for k in keys if k not in observed.earned_ms)
    if phase["not_completed"]:
        phase.setdefault(
            "failed", f"{phase['not_completed']} of {len(keys)} deals not completed in 300 s"
        )
    phase["ingestion_to_notification"] = percentiles(
        [observed.notified_ms[k] for k in keys if k in observed.notified_ms]
    )
    phase["slowest"] = observed.slowest(keys)
    phase["by_second"] = observed.by_second(keys)
    phase["ingestion_to_incentive_entry"] = percentiles(
        [observed.earned_ms[k] for k in keys if k in observed.earned_ms]
    )
    phase["ingestion_to_webhook"] = await receivers.latencies(keys)
    until = await outbox_mark(infra.admin_dsn)
    phase["relay_lag"] = await relay_lag(infra.admin_dsn, since, until)
    phase["hops"] = await hop_breakdown(infra.admin_dsn, keys, since, until)


def counted_posts(offer: Offer, name: str, phase: dict[str, Any]) -> None:
    """What the phase's posts met, and the phase failed if some never arrived."""
    counts = offer.counted(name)
    phase["posts"] = counts.as_dict()
    if reason := counts.failure():
        phase.setdefault("failed", reason)


async def offer_load(offer: Offer, name: str, pace: Pace, phase: dict[str, Any]) -> list[str]:
    """Offers deals at `pace` (open loop); the deals of the posts accepted. What the posts met
    goes in `phase`, whatever happens."""
    phase["offered_per_s"] = pace.rate
    phase["deals_per_post"] = pace.deals_per_post
    first = len(offer.sent)
    started = time.perf_counter()
    try:
        await offer.at_rate(name, pace)
    finally:
        counted_posts(offer, name, phase)
    keys = offer.sent[first:]
    phase["deals"] = len(keys)
    phase["accepted_per_s"] = round(len(keys) / (time.perf_counter() - started), 1)
    return keys


async def offered(
    infra: Infra,
    receivers: Receivers,
    offer: Offer,
    observed: Observed,
    pace: Pace,
    phase: dict[str, Any],
) -> None:
    """Deals offered at `pace`, and how long each took to complete."""
    since = await outbox_mark(infra.admin_dsn)
    keys = await offer_load(offer, f"r{pace.rate}", pace, phase)
    await completed(infra, receivers, observed, keys, since, phase)


async def saturation(
    infra: Infra,
    fleet: Fleet,
    receivers: Receivers,
    offer: Offer,
    observed: Observed,
    name: str,
    seconds: float,
    phase: dict[str, Any],
) -> None:
    """The chain as fast as it completes deals for `seconds`, with what it used meanwhile."""
    first = len(offer.sent)
    rss: dict[str, float] = dict.fromkeys(fleet.processes, 0.0)

    async def sample_rss() -> None:
        while True:
            for process_name, process in fleet.processes.items():
                rss[process_name] = max(rss[process_name], rss_mb(process.pid))
            await asyncio.sleep(1)

    sampler = asyncio.create_task(sample_rss())
    meter = CpuMeter(infra.admin_dsn, {s: p.pid for s, p in fleet.processes.items()})
    since = await outbox_mark(infra.admin_dsn)
    started = time.perf_counter()
    try:
        await meter.start()
        metered_from = time.time()
        try:
            await offer.saturate(name, seconds, observed.earned_in)
        finally:
            counted_posts(offer, name, phase)
        metered_to = time.time()
        await meter.stop()
        offered_for = time.perf_counter() - started
        keys = offer.sent[first:]
        phase["deals"] = len(keys)
        phase["accepted_per_s"] = round(len(keys) / offered_for, 1)
        await completed(infra, receivers, observed, keys, since, phase)
    finally:
        sampler.cancel()
        phase["rss_mb"] = rss
    # Counted once the observer has read everything: deals the chain finished inside the
    # metered window (by their Kafka timestamps).
    phase["resources"] = meter.per_deal(
        sum(1 for at in observed.earned_at.values() if metered_from <= at <= metered_to)
    )
    finished = [observed.earned_at[k] for k in keys if k in observed.earned_at]
    completed_span = (max(finished) - min(finished)) if len(finished) > 1 else 0
    phase["end_to_end_deals_per_s"] = (
        round(len(finished) / completed_span, 1) if completed_span else None
    )


async def onboarded(fleet: Fleet) -> list[Partner]:
    """Twelve GSI partners (they register: referral partners refer), known to deals and
    linked to the CRM, so the offered deals name them by their ids."""
    async with httpx.AsyncClient(timeout=30) as client:
        story = Story(client, fleet.urls, ADMIN_TOKEN)
        partners = [Partner(f"bench{i}", f"Bench Partner {i}", "gsi") for i in range(12)]
        for partner in partners:
            await story.onboard(partner, ["data"])
        for partner in partners:
            await story.known_to_deals(partner)
            await story.crm_linked(partner)
    return partners


async def measure_chain(infra: Infra, quick: bool, scale: bool, phases: dict[str, Any]) -> None:
    """The chain's phases, each into `phases` as it ends (a failed one with its reason)."""
    # Open-loop phases stay short: above capacity they build a backlog the drain must clear.
    phase_seconds = 10.0 if quick else 20.0
    saturation_seconds = 15.0 if quick else 60.0
    for service in SERVICES:
        await migrate(infra, service)
    fleet = Fleet(infra)
    fleet.start()
    receivers = Receivers.spawn()
    stop = asyncio.Event()
    observer: asyncio.Task[None] | None = None
    offer: Offer | None = None
    try:
        await fleet.ready()
        run_id = uuid.uuid4().hex[:6]
        partners = await onboarded(fleet)
        observed = Observed()
        await receivers.register(fleet.urls["notifications"], partners)
        observer = asyncio.create_task(observe(infra.kafka, run_id, observed, stop))
        offer = Offer(fleet.urls["deals"], partners, run_id)
        # Warm-up at a moderate rate, not one request: every pooled connection must have
        # prepared its statements and every partition been fetched once, or the first
        # measured requests pay for it (they were the 10 slowest of the 100/s phase).
        await offer.at_rate("warm", Pace(100, 3.0))
        await drained(observed, list(offer.sent), 60)

        # A quiet phase first: one deal a post, a few a second at random moments (the same
        # ones each run), so each deal finds every hop idle, as most deals do outside a burst,
        # and its latency is the chain's own.
        quiet_seconds = 10.0 if quick else 40.0
        print(
            f"offered load {QUIET_RATE} deals/s, one a post, for {quiet_seconds:.0f}s ...",
            flush=True,
        )
        phase = phases["offered_quiet"] = {}
        async with step(phase, f"offered {QUIET_RATE} deals/s, one a post"):
            quiet = Pace(QUIET_RATE, quiet_seconds, 1, random.Random(QUIET_SEED))  # noqa: S311
            await offered(infra, receivers, offer, observed, quiet, phase)
        for rate in [100] if quick else [100, 500]:
            print(f"offered load {rate} deals/s for {phase_seconds:.0f}s ...", flush=True)
            phase = phases[f"offered_{rate}"] = {}
            async with step(phase, f"offered {rate} deals/s"):
                await offered(infra, receivers, offer, observed, Pace(rate, phase_seconds), phase)

        print(f"saturation for {saturation_seconds:.0f}s ...", flush=True)
        phase = phases["saturation"] = {}
        async with step(phase, "saturation"):
            await saturation(
                infra, fleet, receivers, offer, observed, "sat", saturation_seconds, phase
            )
        if scale:
            # A second instance of every service: it joins the consumer groups, takes half of
            # the partitions, and half of the HTTP posts go to the second deals instance.
            fleet.start(instance=2)
            await fleet.ready()
            offer.urls = [f"{url}/crm/salesforce" for url in fleet.urls_of("deals")]
            await offer.at_rate("wa2", Pace(100, 3.0))  # rebalanced and warm before measuring
            await drained(observed, list(offer.sent), 120)
            print(f"saturation, two instances each, for {saturation_seconds:.0f}s ...", flush=True)
            phase = phases["saturation_two_instances"] = {}
            async with step(phase, "saturation, two instances"):
                await saturation(
                    infra, fleet, receivers, offer, observed, "sa2", saturation_seconds, phase
                )
    finally:
        stop.set()
        if observer is not None:
            await observer
        if offer is not None:
            await offer.client.aclose()
        receivers.stop()
        fleet.stop()


async def run(quick: bool, scale: bool = False) -> dict[str, Any]:
    """One run of the whole benchmark. It always returns what it measured: a step that failed
    leaves its reason in "failed" (the run's, or its phase's) and the run goes on where it can."""
    infra = Infra.from_env(os.environ)
    results: dict[str, Any] = {
        "mode": ("quick" if quick else "full") + (", two instances" if scale else ""),
        "started_at": datetime.now(UTC).isoformat(),
        **describe_machine(),
    }
    print("machine yardsticks ...", flush=True)
    async with step(results, "machine yardsticks"):
        results["yardsticks"] = await yardsticks.measure(infra, 2.0 if quick else 5.0)
    print("raw baselines ...", flush=True)
    async with step(results, "raw baselines"):
        results["baseline_kafka"] = await kafka_baseline(
            infra.kafka, 20_000 if quick else 100_000, 900
        )
        results["baseline_postgres"] = await postgres_baseline(infra, 2_000 if quick else 10_000, 8)
    results["chain"] = {}
    async with step(results, "the chain"):
        await measure_chain(infra, quick, scale, results["chain"])
    sizes = [1_000, 100_000] if quick else [1_000, 100_000, 1_000_000]
    print(f"conflict check at {sizes} registrations ...", flush=True)
    async with step(results, "conflict check"):
        results["conflict_check"] = await conflict_check.run(infra, sizes, 500 if quick else 2000)
    saturated = results["chain"].get("saturation", {}).get("end_to_end_deals_per_s") or 0
    results["ratios"] = {
        f"chain_vs_{name}": round(saturated / raw, 4) if saturated and raw else None
        for name, raw in (
            ("kafka_msgs", results.get("baseline_kafka", {}).get("msgs_per_s")),
            ("postgres_tx", results.get("baseline_postgres", {}).get("tx_per_s")),
        )
    }
    results["goals"] = goals.evaluate(results)
    return results


def failures(results: dict[str, Any]) -> list[str]:
    """Why the run, or any of its phases, failed."""
    reasons = [results["failed"]] if results.get("failed") else []
    reasons += [
        f"{name}: {phase['failed']}"
        for name, phase in results.get("chain", {}).items()
        if phase.get("failed")
    ]
    return reasons


def main() -> None:
    parser = argparse.ArgumentParser(description="End-to-end benchmark of the deal chain.")
    parser.add_argument("--quick", action="store_true", help="under 2 minutes, for checking")
    parser.add_argument(
        "--scale",
        action="store_true",
        help="after saturating one instance of each service, start a second of each and "
        "saturate again: deals/s of both",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="run the whole benchmark N times, then print the runs side by side and each goal "
        "of issue 23 met in how many of them (the JSON holds every run)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / ".work" / "bench" / "results.json")
    args = parser.parse_args()
    runs: list[dict[str, Any]] = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for n in range(args.runs):
        if args.runs > 1:
            print(f"=== run {n + 1} of {args.runs}", flush=True)
        runs.append(asyncio.run(run(args.quick, args.scale)))
        # Written after every run: what was measured survives a later run that dies.
        written = runs[0] if args.runs == 1 else {"goals": goals.tally(runs), "runs": runs}
        args.out.write_text(json.dumps(written, indent=2, default=str))
        print(report.table(runs[-1]))
    if args.runs > 1:
        print(f"=== {len(runs)} runs side by side")
        print(goals.side_by_side(runs))
    print(f"wrote {args.out}")
    if any(failures(results) for results in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
