"""Outbox relay throughput and commit-to-consume latency on the local stack.

    eval "$(deploy/local-stack.sh env)"
    .venv/bin/python -m benchmarks.outbox_relay [--events 5000]

Writes N events (one transaction each, from 8 concurrent writers) into a scratch service's
outbox while one relay runs, consumes them from Kafka, and prints events/s and latency
percentiles from commit to consumption. Loopback only.

Then the outbox's cost per event, in three phases on a fresh scratch schema: N events written
with no relay running (the writers' inserts), the relay draining that backlog alone (its
sends and publish marks), and a VACUUM of the schema's tables (what the drain left for
autovacuum): Postgres' WAL bytes and CPU, and this process's CPU, per event, and the relay's
rate. Postgres is shared with whatever else runs on the machine, so compare runs
taken in turns.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer

from benchmarks.consuming import arrivals
from benchmarks.cpu_meter import CpuMeter
from benchmarks.latency import percentiles
from shared.db import Pool, create_pool
from shared.events import EventPayload, event_type
from shared.kafka_client import KafkaConnection
from shared.outbox import Outbox, make_producer
from shared.relay import OutboxRelay
from shared.topics import Topic, ensure_topics
from tests.support.infra import Infra, ScratchService, scratch_schema


@event_type("bench.tick.v1")
class Tick(EventPayload):
    n: int
    committed_at: float
    note: str = ""


async def main(events: int, trickle_rate: float, note: str, cost_only: bool) -> None:
    infra = Infra.from_env(os.environ)
    if not cost_only:
        async with scratch_schema(infra) as scratch:
            await relay_and_consume(infra.kafka, scratch, events, note)
    async with scratch_schema(infra) as scratch:
        await write_then_drain(infra, scratch, events, note)
    if not cost_only:
        async with scratch_schema(infra) as scratch:
            await trickle(infra, scratch, events // 2, trickle_rate, note)


async def trickle(
    infra: Infra, scratch: ScratchService, events: int, rate: float, note: str
) -> None:
    """Events committed one at a time, evenly at `rate` a second, with the relay running:
    each wake-up finds a row or two, as a service's relay does at moderate load, so what a
    batch costs besides its rows (round trips, wake-ups) shows per event here; a drain's
    batches of 500 hide it. Postgres' CPU and this process's (writer, relay, consumer)."""
    async with relayed(infra.kafka, scratch, note) as bench:
        meter = CpuMeter(infra.admin_dsn, {})
        consuming = asyncio.create_task(latencies_of(bench.consumer, events))
        await meter.start()
        started, cpu_started = time.perf_counter(), time.process_time()
        for n in range(events):
            await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
            await bench.write(n)
        latency = percentiles([seconds * 1e3 for seconds in await consuming])
        cpu = time.process_time() - cpu_started
        await meter.stop()
    print(
        f"trickle, {events} events at {rate:g}/s one per transaction: commit -> consumed "
        f"p50 {latency['p50_ms']:.1f} ms, p99 {latency['p99_ms']:.1f} ms; "
        f"this process's CPU (writer, relay, consumer) {cpu * 1e3 / events:.3f} ms/event"
    )
    report("trickle", meter, events)


async def write_then_drain(infra: Infra, scratch: ScratchService, events: int, note: str) -> None:
    """The outbox's cost per event: the writers' inserts, then the relay's sends and marks."""
    schema = scratch.schema
    topic = Topic(f"bench.{schema}", schema, "n", 6, "benchmark")
    await ensure_topics(infra.kafka, [topic])
    await scratch.migrate("platform")
    pool = await create_pool(scratch.dsn, schema, max_size=10)
    producer = make_producer(infra.kafka, "bench")
    await producer.start()
    outbox = Outbox(schema, "bench")
    # Counts this stack's Postgres only (other stacks on the machine run their own clusters).
    meter = CpuMeter(infra.admin_dsn, {})

    # The writes start right after a checkpoint (the same full-page images every run); the
    # drain follows with none between, as a relay marks the pages just written.
    await checkpoint(infra.admin_dsn)
    await meter.start()
    await by_eight_writers(lambda n: write_tick(pool, outbox, topic, n, note), events)
    await meter.stop()
    report("write (8 writers, no relay)", meter, events)
    relay = OutboxRelay(pool, producer, schema, source="bench", dsn=scratch.dsn)
    await meter.start()
    started, cpu_started = time.perf_counter(), time.process_time()
    while await relay.publish_pending():
        pass
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    await meter.stop()
    assert relay.published_total == events, relay.published_total
    print(
        f"relay drain: {events / elapsed:,.0f} events/s, "
        f"relay process CPU {cpu * 1e3 / events:.3f} ms/event"
    )
    report("relay drain", meter, events)
    await relay.close()
    # What the drain left for maintenance (dead row versions, index entries pointing at them):
    # autovacuum's work later, done here at once so it is counted.
    await meter.start()
    await vacuum_schema(infra.admin_dsn, schema)
    await meter.stop()
    report("vacuum after the drain", meter, events)
    await producer.stop()
    await pool.close()


async def checkpoint(admin_dsn: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def vacuum_schema(admin_dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
        for table in tables:
            await conn.execute(f'VACUUM "{schema}"."{table["tablename"]}"')
    finally:
        await conn.close()


def report(phase: str, meter: CpuMeter, events: int) -> None:
    figures = meter.per_deal(events)
    postgres = figures["cpu_ms_per_deal"].get("postgres")
    print(
        f"{phase}: WAL {meter.wal_bytes / events:,.0f} B/event, "
        f"Postgres CPU {postgres} ms/event, over {figures['seconds']} s"
    )


@dataclass(frozen=True)
class Relayed:
    """A scratch outbox with its relay running, and a consumer of its topic from the start."""

    topic: Topic
    pool: Pool
    outbox: Outbox
    consumer: AIOKafkaConsumer
    note: str

    async def write(self, n: int) -> None:
        await write_tick(self.pool, self.outbox, self.topic, n, self.note)


async def write_tick(pool: Pool, outbox: Outbox, topic: Topic, n: int, note: str) -> None:
    """Event n, in a transaction of its own."""
    tick = Tick(n=n, committed_at=time.time(), note=note)
    async with pool.acquire() as conn, conn.transaction():
        await outbox.publish(conn, topic, tick, subject=str(n % 97))


async def by_eight_writers(write: Callable[[int], Awaitable[None]], events: int) -> None:
    """Events 0..events-1 written by eight concurrent writers, each its share in order."""

    async def writer(first: int) -> None:
        for n in range(first, events, 8):
            await write(n)

    await asyncio.gather(*(writer(w) for w in range(8)))


@asynccontextmanager
async def relayed(
    kafka: KafkaConnection, scratch: ScratchService, note: str
) -> AsyncIterator[Relayed]:
    schema = scratch.schema
    topic = Topic(f"bench.{schema}", schema, "n", 6, "benchmark")
    await ensure_topics(kafka, [topic])
    await scratch.migrate("platform")
    pool = await create_pool(scratch.dsn, schema, max_size=10)
    producer = make_producer(kafka, "bench")
    await producer.start()
    relay = OutboxRelay(pool, producer, schema, source="bench", dsn=scratch.dsn)
    relay_task = asyncio.create_task(relay.run())
    consumer = AIOKafkaConsumer(
        topic.name, **kafka.aiokafka_options(), auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        yield Relayed(topic, pool, Outbox(schema, "bench"), consumer, note)
    finally:
        relay.stop()
        await relay_task
        await consumer.stop()
        await producer.stop()
        await pool.close()


async def latencies_of(consumer: AIOKafkaConsumer, events: int) -> list[float]:
    """Commit -> consumed, in seconds, for the first `events` records."""
    latencies: list[float] = []
    async for seen, record in arrivals(consumer, timeout_ms=500):
        latencies.append(seen - json.loads(record.value)["data"]["committed_at"])
        if len(latencies) == events:
            break
    return latencies


async def relay_and_consume(
    kafka: KafkaConnection, scratch: ScratchService, events: int, note: str
) -> None:
    async with relayed(kafka, scratch, note) as bench:
        started = time.perf_counter()
        consuming = asyncio.create_task(latencies_of(bench.consumer, events))
        await by_eight_writers(bench.write, events)
        written = time.perf_counter() - started
        latencies = sorted(await consuming)
        elapsed = time.perf_counter() - started
    print(f"events: {events}")
    print(f"write rate (8 writers, 1 tx/event): {events / written:,.0f} events/s")
    print(f"end-to-end rate (commit -> consumed): {events / elapsed:,.0f} events/s")
    for q in (50, 95, 99):
        print(f"latency p{q}: {latencies[int(len(latencies) * q / 100) - 1] * 1000:.1f} ms")
    print(f"latency mean: {statistics.mean(latencies) * 1000:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument(
        "--trickle-rate", type=float, default=200.0, help="events a second in the trickle phase"
    )
    parser.add_argument(
        "--note-bytes",
        type=int,
        default=0,
        help="pad each event with a note of this many random hex digits (the chain's events "
        "are about 0.8-2 kB, a bare tick's about 0.3 kB; the outbox packs events, and keeps "
        "about half of hex, a fifth to a third of the chain's events)",
    )
    parser.add_argument(
        "--cost-only",
        action="store_true",
        help="only the outbox's cost per event (write, drain, vacuum)",
    )
    arguments = parser.parse_args()
    # Not one repeated character: the outbox's codec would keep almost none of it.
    padding = random.Random(arguments.note_bytes)  # noqa: S311 (filler text, not a secret)
    note = padding.randbytes(arguments.note_bytes // 2 + 1).hex()
    note = note[: arguments.note_bytes]
    asyncio.run(main(arguments.events, arguments.trickle_rate, note, arguments.cost_only))
