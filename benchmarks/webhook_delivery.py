"""One webhook endpoint's deliveries, made by the notifications service's own deliverer
(`Deliverer.attempt`: sign, post, read the answer) to the chain benchmark's receiver
(benchmarks/webhook_receiver.py, a process of its own that verifies every signature), one
after the other as an endpoint gets them: deliveries a second, and CPU per delivery of the
sender and of the receiver, each from /proc. Needs no Kafka or Postgres. (At 8cab736 it also
had `--unread`, leaving answers unread as the deliverer on httpx did before it read them.)

    python -m benchmarks.webhook_delivery [--deliveries 3000]
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
from benchmarks.cpu_meter import cpu_ticks
from services.notifications.delivering import Deliverer, webhook_session
from services.notifications.domain.webhooks import Signing
from services.notifications.settings import NotificationsSettings
from services.notifications.wakeups import InboxWakeups
from services.notifications.webhook_repository import ClaimedEndpoint

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # a fixed test secret (base64)


def cpu_seconds(pid: int) -> float:
    return cpu_ticks(pid) / os.sysconf("SC_CLK_TCK")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=3000)
    args = parser.parse_args()
    receivers = Receivers.spawn()
    try:
        print(json.dumps(asyncio.run(run(receivers, args.deliveries))))
    finally:
        receivers.stop()


if __name__ == "__main__":
    main()
