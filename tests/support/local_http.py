"""A local HTTP server for the tests' stand-ins of other parties' APIs (CRMs, partner
programmes, certificate hosts, partners' sites): on a free loopback port, served from a
thread while it is used as a context manager."""

from __future__ import annotations

import json
import re
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing (the tests' output stays theirs) and answers JSON."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_json(self, status: int, body: Any, content_type: str = "application/json") -> None:
        content = json_text(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)


def json_text(body: Any) -> str:
    """`body` as JSON with a Decimal written as the number it is: the APIs these servers play
    answer amounts with more digits than a binary float holds (82261615611686.07), and
    `json.dumps` has no exact form for them (a float would already have lost the cent)."""
    exact: list[str] = []

    def marked(value: Any) -> str:
        if not isinstance(value, Decimal):
            raise TypeError(f"{type(value).__name__} is not JSON")
        exact.append(str(value))
        return f"@exact-number-{len(exact) - 1}@"

    text = json.dumps(body, default=marked)
    return re.sub(r'"@exact-number-(\d+)@"', lambda m: exact[int(m.group(1))], text)


class LocalServer:
    """Serves `handler` on 127.0.0.1 at `url` between `__enter__` and `__exit__`."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
