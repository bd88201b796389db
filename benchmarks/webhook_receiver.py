"""The partners' webhook receivers for the chain benchmark, in a process of their own (as a
partner's app is): one asyncio HTTP server, one path per partner, each delivery's Standard
Webhooks signature verified with the specification's library before it counts.

    python -m benchmarks.webhook_receiver --port 9999

`POST /_secret/<name>` (body: the `whsec_` secret) arms `/<name>`; a verified credit notice's
latency (arrival - the `ingested_at` it carries) is kept by deal; `GET /_results` returns them.
Its own process, because inside the load generator its threads wait for the interpreter lock
behind the generator's work and the measured hop becomes the generator's."""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from typing import Any

import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

secrets: dict[str, Webhook] = {}
latencies: dict[str, float] = {}
refused = 0


async def body_of(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def answer(send: Any, status: int, content: bytes = b"") -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", str(len(content)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": content})


async def app(scope: Any, receive: Any, send: Any) -> None:
    global refused
    if scope["type"] != "http":
        return
    arrived = time.time() * 1000
    path: str = scope["path"]
    body = await body_of(receive)
    if path == "/_results":
        await answer(send, 200, json.dumps({"latencies": latencies, "refused": refused}).encode())
        return
    if path.startswith("/_secret/"):
        secrets["/" + path.removeprefix("/_secret/")] = Webhook(body.decode())
        await answer(send, 204)
        return
    headers = {name.decode().lower(): value.decode() for name, value in scope["headers"]}
    try:
        payload = secrets[path].verify(body, headers)
    except (KeyError, WebhookVerificationError):
        refused += 1
        await answer(send, 400)
        return
    data = payload["data"]
    if data.get("kind") == "credit_issued" and data.get("deal_key") and data.get("ingested_at"):
        start = datetime.fromisoformat(data["ingested_at"]).timestamp() * 1000
        latencies.setdefault(data["deal_key"], arrived - start)
    await answer(send, 204)


def main() -> None:
    parser = argparse.ArgumentParser(description="Webhook receivers for the chain benchmark.")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()
