"""A partner app: receive one partner's Pollinate notifications the ways a partner can, over
HTTP only (the platform's Kafka topics are internal).

    .venv/bin/python -m examples.partner_app --partner ptn_1234abcd --token <partner_admin token>

It runs a webhook receiver on a local port, registers it with the notifications service and
verifies every delivery's Standard Webhooks signature with the specification's own library
(`standardwebhooks`), dropping repeats by `webhook-id` as the specification asks; and it
follows the partner's live stream (Server-Sent Events), resuming after the last event id it
saw whenever the connection drops. A token for a partner's app comes from a channel manager
(onboarding's `POST /admin/partner-tokens/{partner_id}?role=partner_admin`) or, on a
developer's machine, `python -m shared.identity issue --subject app --role partner_admin
--partner <id>`.

A real receiver listens on a public https URL; the notifications service accepts a local
http one only in development mode (`deploy/local-stack.sh env` sets it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

Handler = Callable[[str, dict[str, Any]], None]


@dataclass
class WebhookReceiver:
    """Verifies and hands on each delivery once; answers 400 to anything that does not verify
    (the sender retries a failure, and a forged one never verifies)."""

    on_delivery: Handler
    host: str = "127.0.0.1"
    port: int = 0
    secret: str = ""
    seen: set[str] = field(default_factory=set)
    refused: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/pollinate"

    def start(self) -> None:
        receiver = self

        class Request(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the sender reuses its connection

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.receive(body, {k.lower(): v for k, v in self.headers.items()})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, self.port), Request)
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def receive(self, body: bytes, headers: dict[str, str]) -> int:
        try:
            payload = Webhook(self.secret).verify(body, headers)
        except (WebhookVerificationError, ValueError):
            with self._lock:
                self.refused += 1
            return 400
        with self._lock:
            first = headers["webhook-id"] not in self.seen
            self.seen.add(headers["webhook-id"])
        if first:
            self.on_delivery("webhook", payload["data"])
        return 204

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


async def register(
    client: httpx.AsyncClient, base: str, partner_id: str, token: str, url: str
) -> dict[str, Any]:
    """Register the receiver's URL for every kind; the answer holds the signing secret."""
    answer = await client.post(
        f"{base}/partners/{partner_id}/webhooks",
        json={"url": url, "description": "examples.partner_app"},
        headers={"Authorization": f"Bearer {token}"},
    )
    if answer.status_code != 201:
        raise SystemExit(f"could not register the webhook: {answer.status_code} {answer.text}")
    endpoint: dict[str, Any] = answer.json()
    return endpoint


async def stream(
    client: httpx.AsyncClient,
    base: str,
    partner_id: str,
    token: str,
    *,
    after: str | None = None,
    opened: asyncio.Event | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """The partner's messages from its live stream, for as long as the caller reads; a dropped
    connection is resumed after the last event id seen (nothing lost, nothing twice)."""
    last_id = after
    while True:
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        if last_id:
            headers["Last-Event-ID"] = last_id
        try:
            async with client.stream(
                "GET", f"{base}/partners/{partner_id}/notifications/stream", headers=headers
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise SystemExit(f"stream refused: {response.status_code} {response.text}")
                if opened is not None:
                    opened.set()
                event: dict[str, str] = {}
                async for line in response.aiter_lines():
                    if line == "":
                        if event.get("event") == "notification":
                            last_id = event.get("id", last_id)
                            yield json.loads(event["data"])
                        event = {}
                    elif not line.startswith(":"):
                        name, _, value = line.partition(":")
                        event[name] = value.removeprefix(" ")
        except httpx.TransportError:
            await asyncio.sleep(2)  # the SSE `retry` the server asks for


def show(channel: str, message: dict[str, Any]) -> None:
    print(f"{message['created_at'][11:19]} {channel:7} [{message['kind']}] {message['subject']}")


async def main(base: str, partner_id: str, token: str) -> None:
    receiver = WebhookReceiver(show)
    receiver.start()
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client:
        endpoint = await register(client, base, partner_id, token, receiver.url)
        receiver.secret = endpoint["secret"]
        print(f"webhook receiver on {receiver.url} (endpoint {endpoint['endpoint_id']})")
        print(f"following {partner_id}'s stream on {base} (Ctrl-C stops)")
        try:
            async for message in stream(client, base, partner_id, token):
                show("stream", message)
        finally:
            receiver.stop()
            with contextlib.suppress(httpx.HTTPError):
                await client.delete(
                    f"{base}/partners/{partner_id}/webhooks/{endpoint['endpoint_id']}",
                    headers={"Authorization": f"Bearer {token}"},
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Receive one partner's Pollinate notifications.")
    parser.add_argument("--partner", required=True)
    parser.add_argument("--token", default=os.environ.get("PARTNER_TOKEN", ""))
    parser.add_argument("--notifications", default="http://127.0.0.1:8005")
    args = parser.parse_args()
    if not args.token:
        raise SystemExit("give --token (or PARTNER_TOKEN): a partner_admin token for the partner")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.notifications, args.partner, args.token))
