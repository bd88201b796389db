"""The chain benchmark's load generator survives what a loaded server does to it (issue 23: it
died in the 500 deals/s phase on an `httpx.ReadError` and printed nothing): each post is sent
again, the same bytes, after a connection the server dropped, a timeout, a 5xx or a 429 (after
the Retry-After it asked for), every failed attempt is counted by kind, and a phase whose posts
never get through still ends with what it measured and why it failed. Against a real HTTP
server on loopback that answers as each test scripts it."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import struct
import time
from types import TracebackType
from typing import Any, Self

from benchmarks import chain, goals, report
from benchmarks.http1 import Answer
from benchmarks.load import Offer, Pace, RetryPolicy, retry_after
from deploy.story import Partner

PARTNERS = [Partner("bench0", "Bench Partner 0", "gsi", partner_id="p-bench-0")]
QUICK = RetryPolicy(attempts=6, first_backoff_s=0.001, max_backoff_s=0.001)


class ScriptedServer:
    """HTTP/1.1 on a free loopback port, keeping connections alive between answers as uvicorn
    does. Each request is answered as the next step of `script` says, then as `then`:
    "ok" (202), "reset" (the connection reset after the request was read: what a server that
    closes a pooled keep-alive connection under load does), "close" (closed without an
    answer), "stall" (no answer until the client gives up), "503", or "429:<Retry-After>".
    `requests` keeps each request's arrival (monotonic seconds) and body."""

    def __init__(self, script: list[str], then: str = "ok") -> None:
        self.script = list(script)
        self.then = then
        self.requests: list[tuple[float, bytes]] = []

    async def __aenter__(self) -> Self:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: *(\d+)", head)
                body = await reader.readexactly(int(length.group(1)) if length else 0)
                self.requests.append((time.monotonic(), body))
                if not await self.answer(self.script.pop(0) if self.script else self.then, writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return

    async def answer(self, action: str, writer: asyncio.StreamWriter) -> bool:
        """Answers as `action` says; whether the connection stays open."""
        if action == "reset":
            linger = struct.pack("ii", 1, 0)  # close at once with a RST, as a crashed peer does
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            writer.transport.abort()
            return False
        if action == "close":
            writer.close()
            return False
        if action == "stall":
            await writer.drain()
            return False  # the handler ends; the client times out and drops the connection
        status, _, wait = action.partition(":")
        status = "202" if status == "ok" else status
        headers = [
            f"HTTP/1.1 {status} Scripted",
            "Content-Length: 2",
            "Content-Type: application/json",
        ]
        if wait:
            headers.append(f"Retry-After: {wait}")
        writer.write(("\r\n".join(headers) + "\r\n\r\n{}").encode())
        await writer.drain()
        return True


def transaction_keys(body: bytes) -> list[str]:
    """The CDC messages' transaction keys: deals derives each event's id from them."""
    return [m["payload"]["ChangeEventHeader"]["transactionKey"] for m in json.loads(body)]


async def test_a_post_met_by_a_reset_a_dropped_connection_a_503_and_a_429_is_sent_again_and_counted() -> (
    None
):
    async with ScriptedServer(["ok", "reset", "close", "503", "429:0", "ok"]) as server:
        offer = Offer(server.url, PARTNERS, "abc123", policy=QUICK)
        try:
            assert await offer.post("r500")  # leaves its connection in the pool
            assert await offer.post("r500")  # the pooled connection is reset under it
        finally:
            await offer.client.aclose()
    counts = offer.counts["r500"].as_dict()
    assert counts == {
        "posts": 2,
        "accepted": 2,
        "retries": 4,
        "timeouts": 0,
        "errors": {
            "ConnectionResetError": 1,
            "Disconnected": 1,
            "HTTP 503": 1,
            "HTTP 429": 1,
        },
        "given_up": 0,
    }
    assert len(offer.sent) == 20
    bodies = [body for _, body in server.requests]
    assert len(bodies) == 6
    # Every retry is the same delivery: the same messages with the same transaction keys, so
    # deals records each deal once however often it arrives.
    assert bodies[1:] == [bodies[1]] * 5
    assert transaction_keys(bodies[0]) != transaction_keys(bodies[1])


async def test_a_timed_out_post_is_retried_and_a_retry_after_is_waited_for() -> None:
    async with ScriptedServer(["stall", "429:1", "ok"]) as server:
        offer = Offer(server.url, PARTNERS, "abc123", policy=QUICK, timeout=1.0)
        try:
            assert await offer.post("r100")
        finally:
            await offer.client.aclose()
    counts = offer.counts["r100"]
    assert (counts.timeouts, dict(counts.errors), counts.retries) == (1, {"HTTP 429": 1}, 2)
    (_, first), (asked_at, _), (retried_at, last) = server.requests
    assert first == last
    # The backoff alone is a millisecond: the second retry waited for the server's second.
    assert retried_at - asked_at >= 1.0


def test_retry_after_reads_seconds_and_dates_and_the_policy_caps_it() -> None:
    assert retry_after(Answer(503, {"retry-after": "3"}, b"")) == 3.0
    assert retry_after(Answer(503, {"retry-after": "soon"}, b"")) is None
    dated = Answer(429, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, b"")
    assert retry_after(dated) == 0.0  # a date in the past: at once
    assert retry_after(Answer(503, {}, b"")) is None
    policy = RetryPolicy(max_retry_after_s=10.0, first_backoff_s=0.1, max_backoff_s=2.0)
    assert policy.backoff(1, 3.0) == 3.0
    assert policy.backoff(1, 600.0) == 10.0
    assert 0.05 <= policy.backoff(1, None) <= 0.1
    assert 1.0 <= policy.backoff(9, None) <= 2.0


async def test_a_phase_whose_posts_never_get_through_still_ends_with_what_it_measured() -> None:
    policy = RetryPolicy(attempts=3, first_backoff_s=0.001, max_backoff_s=0.001)
    results: dict[str, Any] = {"mode": "quick", "commit": "test", "chain": {}}
    phase: dict[str, Any] = results["chain"].setdefault("offered_100", {})
    async with ScriptedServer([], then="reset") as server:
        offer = Offer(server.url, PARTNERS, "abc123", policy=policy)
        try:
            async with chain.step(phase, "offered 100 deals/s"):
                await chain.offer_load(offer, "r100", Pace(100, 0.25), phase)
        finally:
            await offer.client.aclose()
    posts = phase["posts"]
    assert posts["posts"] > 0
    assert posts["given_up"] == posts["posts"]
    assert posts["accepted"] == 0
    assert posts["errors"] == {"ConnectionResetError": 3 * posts["posts"]}
    assert posts["retries"] == 2 * posts["posts"]
    assert len(server.requests) == 3 * posts["posts"]
    assert phase["deals"] == 0
    assert phase["failed"].startswith(f"{posts['posts']} of {posts['posts']} posts")
    assert goals.evaluate(results)["p99_notification_100"]["met"] is False
    printed = report.table(results)
    assert f"given up {posts['posts']}" in printed
    assert "FAILED" in printed


async def test_a_step_that_raises_keeps_what_it_measured_and_the_reason() -> None:
    phase: dict[str, Any] = {}
    async with chain.step(phase, "saturation"):
        phase["deals"] = 120
        raise RuntimeError("notifications exited")
    assert phase == {"deals": 120, "failed": "saturation: RuntimeError: notifications exited"}


async def test_a_step_that_times_out_says_so_without_a_message_of_its_own() -> None:
    phase: dict[str, Any] = {}
    async with chain.step(phase, "the chain"):
        raise TimeoutError
    assert phase == {"failed": "the chain: TimeoutError: (no message)"}
