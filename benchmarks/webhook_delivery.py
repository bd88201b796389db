"""One webhook endpoint's deliveries, made by the notifications service's own deliverer
(`Deliverer.attempt`: sign, post, read the answer) to the chain benchmark's receiver
(benchmarks/webhook_receiver.py, a process of its own that verifies every signature), one
after the other as an endpoint gets them: deliveries a second, and CPU per delivery of the
sender and of the receiver, each from /proc. Needs no Kafka or Postgres. (At 8cab736 it also
had `--unread`, leaving answers unread as the deliverer on httpx did before it read them.)

With `--served` the deliveries are queued in a scratch notifications schema and sent by
`Deliverer.serve`, as the service serves an endpoint: the queue read and the successes recorded
too, so Postgres' CPU and WAL per delivery are measured beside the sender's and the receiver's
(needs the local stack's Postgres: `eval "$(deploy/local-stack.sh env)"`).

    python -m benchmarks.webhook_delivery [--deliveries 3000] [--served]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from typing import Any

import httpx

from benchmarks.chain import Receivers
from benchmarks.cpu_meter import CpuMeter, cpu_seconds
from services.notifications import webhook_repository
from services.notifications.delivering import Deliverer, webhook_session
from services.notifications.domain.webhooks import Signing
from services.notifications.settings import NotificationsSettings
from services.notifications.wakeups import InboxWakeups
from services.notifications.webhook_repository import ClaimedEndpoint
from shared.db import Pool
from tests.support.infra import ROOT, Infra, migrated_pool, scratch_schema
from tests.support.notifications import SECRET, queued_endpoint

MIGRATIONS = ROOT / "services" / "notifications" / "migrations"


async def deliver(url: str, deliveries: int) -> dict[str, Any]:
    settings = NotificationsSettings()
    # The pool is not used by `attempt`: it only sends.
    deliverer = Deliverer(None, settings, InboxWakeups(), development_mode=True)  # type: ignore[arg-type]
    endpoint = ClaimedEndpoint(uuid.uuid4(), "ptn_bench", f"{url}/bench", Signing(SECRET))
    body = json.dumps({"type": "notification.credit_issued", "data": {"kind": "other"}})
    async with webhook_session(settings, development_mode=True) as client:
        failed = 0
        for number in range(deliveries):
            head = {
                "payload": body,
                "message_id": uuid.uuid4(),
                "delivery_id": number,
                "attempts": 0,
                "next_attempt_at": None,
            }
            attempt = await deliverer.attempt(client, endpoint, head)
            failed += not attempt.succeeded
    return {"failed": failed}


async def run(receivers: Receivers, deliveries: int) -> dict[str, Any]:
    """Deliveries to the receiver process, measured."""
    await receivers.ready()
    async with httpx.AsyncClient(timeout=30) as client:
        await receivers.arm(client, "bench", SECRET)
    await deliver(receivers.url, 200)  # warm-up: first statements, first connection
    receiver = receivers.process.pid
    sender_before, receiver_before = cpu_seconds(os.getpid()), cpu_seconds(receiver)
    started = time.perf_counter()
    outcome = await deliver(receivers.url, deliveries)
    seconds = time.perf_counter() - started
    sender = cpu_seconds(os.getpid()) - sender_before
    received = cpu_seconds(receiver) - receiver_before
    return {
        "deliveries": deliveries,
        "failed": outcome["failed"],
        "deliveries_per_s": round(deliveries / seconds),
        "sender_cpu_ms_per_delivery": round(sender * 1000 / deliveries, 3),
        "receiver_cpu_ms_per_delivery": round(received * 1000 / deliveries, 3),
    }


class Queue:
    """Deliveries queued on an endpoint of their own, leased as the service leases one (a lease
    not held ends the serving at its renewal), to be served until none is pending."""

    def __init__(self, pool: Pool, deliverer: Deliverer, endpoint: ClaimedEndpoint) -> None:
        self.pool = pool
        self.deliverer = deliverer
        self.endpoint = endpoint

    @classmethod
    async def filled(cls, pool: Pool, url: str, deliveries: int, padding: str = "") -> Queue:
        settings = NotificationsSettings()
        deliverer = Deliverer(pool, settings, InboxWakeups(), development_mode=True)
        subjects = [f"d{n}{padding}" for n in range(deliveries)]
        queued = await queued_endpoint(pool, f"{url}/bench", subjects)
        [endpoint] = await webhook_repository.claim_endpoints(
            pool, deliverer.owner, 1, settings.webhook_lease_seconds
        )
        assert endpoint.endpoint_id == queued.endpoint_id
        return cls(pool, deliverer, endpoint)

    async def serve(self) -> None:
        settings = self.deliverer.settings
        async with webhook_session(settings, development_mode=True) as client:
            await self.deliverer.serve(client, self.endpoint)
        pending = await self.pool.fetchval(
            """SELECT count(*) FROM webhook_deliveries
               WHERE endpoint_id = $1 AND status = 'pending'""",
            self.endpoint.endpoint_id,
        )
        assert pending == 0, f"{pending} deliveries not delivered"


async def run_served(
    receivers: Receivers, deliveries: int, subject_bytes: int = 0
) -> dict[str, Any]:
    """Deliveries served from a scratch schema's queue, measured with Postgres."""
    infra = Infra.from_env(os.environ)
    await receivers.ready()
    async with httpx.AsyncClient(timeout=30) as client:
        await receivers.arm(client, "bench", SECRET)
    async with (
        scratch_schema(infra) as scratch,
        migrated_pool(scratch, "notifications", MIGRATIONS) as pool,
    ):
        # Warm-up: first statements, first connection.
        await (await Queue.filled(pool, receivers.url, 200)).serve()
        # Queued before the meter starts.
        queue = await Queue.filled(pool, receivers.url, deliveries, "x" * subject_bytes)
        meter = CpuMeter(
            infra.admin_dsn, {"sender": os.getpid(), "receiver": receivers.process.pid}
        )
        await meter.start()
        started = time.perf_counter()
        await queue.serve()
        seconds = time.perf_counter() - started
        await meter.stop()
    figures = meter.per_deal(deliveries)
    return {
        "deliveries": deliveries,
        "deliveries_per_s": round(deliveries / seconds),
        "cpu_ms_per_delivery": figures["cpu_ms_per_deal"],
        "wal_bytes_per_delivery": round(meter.wal_bytes / deliveries),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--served", action="store_true", help="from a queue, with Postgres")
    parser.add_argument(
        "--subject-bytes",
        type=int,
        default=0,
        help="with --served: pad each message's subject (the chain's deliveries are about 0.9 kB)",
    )
    args = parser.parse_args()
    receivers = Receivers.spawn()
    try:
        if args.served:
            figures = asyncio.run(run_served(receivers, args.deliveries, args.subject_bytes))
        else:
            figures = asyncio.run(run(receivers, args.deliveries))
        print(json.dumps(figures))
    finally:
        receivers.stop()


if __name__ == "__main__":
    main()
