"""Incentives: credit-to-earning latency and throughput through a real service process.

    eval "$(deploy/local-stack.sh env)"
    .venv/bin/python -m benchmarks.incentives_credits [--credits 1000]

Starts one incentives process, publishes N credits (N deals, 50 partners) to
attribution.credits.v1 with `ingested_at` = send time, reads incentive.credit_booked.v1 back from
incentives.ledger.v1 and prints credits/s and latency percentiles from `ingested_at` to the
booking event being consumed (publish -> consume -> book + outbox -> relay -> consume), and
the incentives process's CPU time per credit over the run.
`--interval-ms 100` paces the credits instead of one burst (latency without a backlog).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import time
import uuid
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaConsumer

from benchmarks.consuming import arrivals
from benchmarks.cpu_meter import cpu_seconds
from shared.events import Envelope
from shared.events.attribution import CreditIssued
from shared.events.crm import Customer
from shared.outbox import make_producer
from shared.topics import ATTRIBUTION_CREDITS, INCENTIVE_LEDGER, PARTNER_LIFECYCLE
from tests.support.factories import credit_issued, partner_state_changed
from tests.support.infra import Infra
from tests.support.kafka import publish
from tests.support.polling import eventually
from tests.support.processes import free_port, migrate, service_env, start_module, wait_ready

PARTNERS = 50


async def activate_partners(infra: Infra, run: str) -> None:
    """The run's partners, active as onboarding announces them, known to incentives before the
    first credit (a credit to a partner it has not heard is active waits for it)."""
    for n in range(PARTNERS):
        partner_id = f"bench-{run}-p{n}"
        snapshot = partner_state_changed(partner_id=partner_id, tier="gold")
        await publish(infra, PARTNER_LIFECYCLE, [snapshot], subject=partner_id, source="onboarding")
    db = await asyncpg.connect(infra.admin_dsn)

    async def all_known() -> bool:
        known = await db.fetchval(
            "SELECT count(*) FROM incentives.partners WHERE partner_id LIKE $1", f"bench-{run}-p%"
        )
        return bool(known == PARTNERS)

    try:
        await eventually(all_known)
    finally:
        await db.close()


def credit(run: str, n: int) -> CreditIssued:
    now = datetime.now(UTC)
    return credit_issued(
        credit_id=f"bench-{run}-{n}",
        deal_key=f"bench:{run}-{n}",
        partner_id=f"bench-{run}-p{n % PARTNERS}",
        amount="12345.67",
        customer=Customer(name=f"Bench {run} {n}", domain=f"b{n}-{run}.example", country="US"),
        products=("ai",),
        co_sell=True,
        close_date=now.date(),
        issued_at=now,
        ingested_at=now,
    )


async def main(count: int, interval_ms: float) -> None:
    infra = Infra.from_env(os.environ)
    port = free_port()
    await migrate(infra, "incentives")
    process = await start_module(
        "incentives",
        # The stack's own database and broker, as the service's roles (the defaults would
        # point at the default ports, whatever stack listens there).
        env=service_env(infra, "incentives", port, LOG_LEVEL="WARNING"),
    )
    run = uuid.uuid4().hex[:8]
    consumer = AIOKafkaConsumer(
        INCENTIVE_LEDGER.name, **infra.kafka.aiokafka_options(), auto_offset_reset="latest"
    )
    producer = make_producer(infra.kafka, "bench-attribution")
    try:
        await wait_ready(f"http://127.0.0.1:{port}/health/ready", process)
        await activate_partners(infra, run)
        await consumer.start()
        await producer.start()
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        latencies: dict[str, float] = {}

        async def collect() -> None:
            """Runs while the credits are sent, so a record's latency is its own."""
            async for seen, record in arrivals(consumer, timeout_ms=200):
                body = json.loads(record.value)
                data = body["data"]
                if body["type"] != "incentive.credit_booked.v1":
                    continue
                if not data["credit_id"].startswith(f"bench-{run}-"):
                    continue
                ingested = datetime.fromisoformat(data["ingested_at"]).timestamp()
                latencies.setdefault(data["credit_id"], (seen - ingested) * 1000)
                if len(latencies) == count:
                    return

        collector = asyncio.create_task(collect())
        started = time.perf_counter()
        cpu_before = cpu_seconds(process.pid)
        for n in range(count):
            event = credit(run, n)
            # It plays attribution: consumers believe only a topic's own producers.
            envelope = Envelope.wrap(event, source="pollinate/attribution", subject=event.deal_key)
            await producer.send(
                ATTRIBUTION_CREDITS.name, envelope.to_bytes(), key=event.deal_key.encode()
            )
            if interval_ms:  # paced: latency of one credit at a time, no backlog
                await producer.flush()
                await asyncio.sleep(interval_ms / 1000)
        await producer.flush()
        await asyncio.wait_for(collector, 300)
        elapsed = time.perf_counter() - started
        # The service's own CPU (its consumers, handlers, outbox and relay) for the whole run.
        service_ms = (cpu_seconds(process.pid) - cpu_before) * 1000
        values = sorted(latencies.values())
        print(f"{count} credits -> earnings in {elapsed:.2f}s: {count / elapsed:.0f} credits/s")
        print(f"incentives process CPU: {service_ms / count:.3f} ms per credit")
        print(
            "ingested_at -> earned event consumed (ms): "
            f"p50 {statistics.median(values):.1f}  p95 {values[int(0.95 * len(values))]:.1f}  "
            f"max {values[-1]:.1f}"
        )
    finally:
        await producer.stop()
        await consumer.stop()
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--credits", type=int, default=1000)
    parser.add_argument("--interval-ms", type=float, default=0.0, help="0: one burst")
    args = parser.parse_args()
    asyncio.run(main(args.credits, args.interval_ms))
