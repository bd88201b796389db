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
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from services.notifications.delivering import Deliverer, webhook_session
from services.notifications.domain.webhooks import Signing
from services.notifications.settings import NotificationsSettings
from services.notifications.wakeups import InboxWakeups
from services.notifications.webhook_repository import ClaimedEndpoint
from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[1]
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # a fixed test secret (base64)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def receiver_ready(url: str) -> None:
    async with httpx.AsyncClient(timeout=5) as client, asyncio.timeout(30):
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(f"{url}/_results")).status_code == 200:
                    return
            await asyncio.sleep(0.1)


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


async def run(receiver: int, url: str, deliveries: int) -> dict[str, Any]:
    """Deliveries to the receiver process (pid `receiver`) at `url`, measured."""
    await receiver_ready(url)
    async with httpx.AsyncClient() as client:
        await client.post(f"{url}/_secret/bench", content=SECRET.encode())
    await deliver(url, 200)  # warm-up: first statements, first connection
    sender_before, receiver_before = cpu_seconds(os.getpid()), cpu_seconds(receiver)
    started = time.perf_counter()
    outcome = await deliver(url, deliveries)
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
    port = free_port()
    receiver = subprocess.Popen(  # noqa: S603 (our own module)
        [sys.executable, "-m", "benchmarks.webhook_receiver", "--port", str(port)], cwd=ROOT
    )
    try:
        url = f"http://127.0.0.1:{port}"
        print(json.dumps(asyncio.run(run(receiver.pid, url, args.deliveries))))
    finally:
        receiver.terminate()
        receiver.wait()


if __name__ == "__main__":
    main()
