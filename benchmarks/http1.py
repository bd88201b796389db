"""A lean HTTP/1.1 client for the load generator's posts: keep-alive connections on asyncio
streams, nothing else. The generator shares the machine's cores with what it measures, and
httpx spent about 3.3 ms of CPU per post of ten deals where this spends about 0.15 ms
(benchmarks/load.py's docstring has the measurement); it still measures from the outside, over
TCP, as a CRM relay would post.

What it does not do, because deals' endpoint never needs it: TLS, redirects, chunked answers
(uvicorn answers these posts with a Content-Length), HTTP/2. What a server or the network does
to it surfaces as `TimeoutError` (the request took longer than `timeout`), `OSError` (refused,
reset, broken pipe), or `Disconnected` / `ProtocolError` below."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit


class Disconnected(Exception):
    """The server closed the connection before its answer was complete."""


class ProtocolError(Exception):
    """An answer this client does not read (malformed, or chunked)."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def close(self) -> None:
        self.writer.close()


class Http1Client:
    """POSTs over at most `max_connections` keep-alive connections per server. A connection
    idle for `keepalive_expiry` seconds is dropped before it is reused (uvicorn closes its idle
    ones after 5 s, and a post sent on a connection the server is closing fails)."""

    def __init__(
        self, *, timeout: float = 60.0, max_connections: int = 32, keepalive_expiry: float = 2.0
    ) -> None:
        self.timeout = timeout
        self.keepalive_expiry = keepalive_expiry
        self.slots = asyncio.Semaphore(max_connections)
        self.idle: dict[tuple[str, int], list[_Connection]] = {}

    async def _connection(self, host: str, port: int) -> _Connection:
        pool = self.idle.setdefault((host, port), [])
        while pool:
            connection = pool.pop()
            fresh = time.monotonic() - connection.idle_since < self.keepalive_expiry
            if fresh and not connection.reader.at_eof():
                return connection
            connection.close()
        reader, writer = await asyncio.open_connection(host, port)
        return _Connection(reader, writer)

    async def post(self, url: str, content: bytes, headers: Mapping[str, str]) -> Answer:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = (
            f"POST {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Length: {len(content)}\r\n{head}\r\n"
        ).encode() + content
        async with self.slots:
            connection: _Connection | None = None
            try:
                async with asyncio.timeout(self.timeout):
                    connection = await self._connection(host, port)
                    connection.writer.write(request)
                    await connection.writer.drain()
                    answer, reusable = await _read_answer(connection.reader)
            except BaseException:
                if connection is not None:
                    connection.close()
                raise
            if reusable:
                connection.idle_since = time.monotonic()
                self.idle[(host, port)].append(connection)
            else:
                connection.close()
            return answer

    async def aclose(self) -> None:
        for pool in self.idle.values():
            for connection in pool:
                connection.close()
        self.idle.clear()


async def _read_answer(reader: asyncio.StreamReader) -> tuple[Answer, bool]:
    """The answer on `reader`, and whether its connection can carry another request."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        raise Disconnected("the server closed the connection without an answer") from error
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise ProtocolError(f"not an HTTP/1 status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", ""):
        raise ProtocolError("chunked answers are not read")
    try:
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        else:
            body = await reader.read()  # the answer ends when the connection does
    except asyncio.IncompleteReadError as error:
        raise Disconnected("the server closed the connection inside its answer") from error
    reusable = (
        "content-length" in headers
        and headers.get("connection", "").lower() != "close"
        and version == "HTTP/1.1"
    )
    return Answer(int(rest[:3]), headers, body), reusable
