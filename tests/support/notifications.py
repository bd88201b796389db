"""What a partner app does with its notifications: read the stream (Server-Sent Events over a
real HTTP connection, parsed as the specification says) and receive webhooks (a real local
HTTP server verifying Standard Webhooks signatures with the specification's library) and
read its mail (a real local SMTP server, aiosmtpd)."""

from __future__ import annotations

import email
import email.message
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.notifications.domain.addressing import Recipient
from services.notifications.domain.messages import Message
from services.notifications.domain.webhooks import Signing
from services.notifications.webhook_repository import ClaimedEndpoint
from shared.clock import now
from shared.db import Pool
from shared.events.notifications import PartnerNotification
from shared.topics import PARTNER_NOTIFICATIONS
from tests.support.infra import ROOT, Infra, migrated_pool, scratch_schema
from tests.support.kafka import publish
from tests.support.polling import eventually
from tests.support.processes import auth, free_port


@dataclass(frozen=True)
class SseEvent:
    id: str | None
    event: str
    data: str
    comment: str | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.data)


async def sse_events(response: httpx.Response) -> AsyncIterator[SseEvent]:
    """Each event of an open `text/event-stream` response, and each comment line as an event
    of kind "comment" (heartbeats), in the order they arrive."""
    fields: dict[str, str] = {}
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:  # as the specification says: an event without data is not dispatched
                yield SseEvent(fields.get("id"), fields.get("event", "message"), "\n".join(data))
            fields, data = {}, []
        elif line.startswith(":"):
            yield SseEvent(None, "comment", "", comment=line[1:].strip())
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            else:
                fields[name] = value


async def next_notifications(events: AsyncIterator[SseEvent], count: int) -> list[SseEvent]:
    """The next `count` notification events (heartbeats and other comments skipped)."""
    found: list[SseEvent] = []
    async for event in events:
        if event.event == "notification":
            found.append(event)
            if len(found) == count:
                break
    return found


async def tell(infra: Infra, partner_id: str, *notes: PartnerNotification) -> None:
    """Publish notes for the partner on partners.notifications.v1, as deals would."""
    await publish(infra, PARTNER_NOTIFICATIONS, list(notes), subject=partner_id, source="deals")


async def inbox(
    client: httpx.AsyncClient, base: str, partner_id: str, expected: int, **params: Any
) -> dict[str, Any]:
    """The partner's inbox once it holds `expected` messages."""

    async def filled() -> dict[str, Any] | None:
        page = await client.get(
            f"{base}/partners/{partner_id}/notifications",
            params={"limit": 200, **params},
            headers=auth(partner_id),
        )
        assert page.status_code == 200, page.text
        body: dict[str, Any] = page.json()
        return body if len(body["items"]) >= expected else None

    found: dict[str, Any] = await eventually(filled, what=f"{expected} messages for {partner_id}")
    return found


SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # a fixed test secret (base64)


def partner_message(partner_id: str, subject: str) -> Message:
    """A message to the partner itself, of kind `other`, as notifications files one."""
    return Message(
        notification_id=uuid.uuid4(),
        recipient=Recipient.partner(partner_id),
        partner_id=partner_id,
        kind="other",
        subject=subject,
        body="",
        registration_id=None,
        deal_key=None,
        created_at=now(),
        ingested_at=None,
    )


MIGRATIONS = ROOT / "services" / "notifications" / "migrations"


@asynccontextmanager
async def scratch_notifications(infra: Infra, max_size: int = 4) -> AsyncIterator[Pool]:
    """A pool on a throw-away notifications schema (the platform's tables and the service's),
    dropped afterwards."""
    async with (
        scratch_schema(infra) as scratch,
        migrated_pool(scratch, "notifications", MIGRATIONS, max_size=max_size) as pool,
    ):
        yield pool


async def queued_endpoint(pool: Pool, url: str, subjects: list[str]) -> ClaimedEndpoint:
    """An endpoint (signing with SECRET) with one pending delivery per subject, in that order,
    written straight into a notifications schema: for driving the deliverer by hand."""
    endpoint = ClaimedEndpoint(uuid.uuid4(), "ptn_runs", url, Signing(SECRET))
    await pool.execute(
        """INSERT INTO webhook_endpoints (endpoint_id, partner_id, url, secret)
           VALUES ($1, $2, $3, $4)""",
        endpoint.endpoint_id,
        endpoint.partner_id,
        url,
        SECRET,
    )
    await pool.executemany(
        """INSERT INTO webhook_deliveries (delivery_id, endpoint_id, partner_id, position,
               message_id, event_type, payload)
           VALUES (gen_random_uuid(), $1, $2, $3, gen_random_uuid(), 'notification.other', $4)""",
        [
            (
                endpoint.endpoint_id,
                endpoint.partner_id,
                position,
                json.dumps({"type": "notification.other", "data": {"subject": subject}}),
            )
            for position, subject in enumerate(subjects)
        ],
    )
    return endpoint


@dataclass(frozen=True)
class Received:
    path: str
    webhook_id: str
    body: dict[str, Any]
    signatures: int
    at: float
    connection: int  # which of the receiver's connections carried it (1, 2, ...)


class WebhookReceiver:
    """A partner's webhook receiver on a real local HTTP server: it verifies each delivery's
    Standard Webhooks signature with the specification's own library (`standardwebhooks`)
    and the secret of its path, and records what verified. Per path it can answer another
    status, take its time, or redirect; it can go down (connections refused) and come back
    on the same port. With `keep_alive` it speaks HTTP/1.1 and keeps connections open between
    requests (`connections` counts those it accepted), a path can answer with a body, and a
    path in `hang_up_on_reuse` closes a connection without an answer when a second request
    comes on it (as a server closing an idle connection at that moment does); without it each
    answer closes its connection, so going down cuts every client off. `delays_once` holds a
    path's first answer back, the later ones not. A delivery whose subject is in
    `refuse_subjects` is answered 500; `on_receipt` runs a path's hook on the receiver's thread
    after a delivery verified (refused or not) and before it is answered. `headers` are sent
    with a path's answers (a `Retry-After`, say)."""

    def __init__(self, keep_alive: bool = False) -> None:
        self.keep_alive = keep_alive
        self.connections = 0
        self.secrets: dict[str, str] = {}
        self.statuses: dict[str, int] = {}
        self.bodies: dict[str, bytes] = {}
        self.headers: dict[str, dict[str, str]] = {}
        self.delays: dict[str, float] = {}
        self.delays_once: dict[str, float] = {}
        self.hang_up_on_reuse: set[str] = set()
        self.refuse_subjects: set[str] = set()
        self.on_receipt: dict[str, Callable[[], None]] = {}
        self.received: list[Received] = []
        self.refused: list[str] = []  # paths whose delivery failed verification
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.port = free_port()  # kept across restarts (see MailServer)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if self.keep_alive else "HTTP/1.0"

            # Which of the receiver's connections this is (`connection` is the handler's socket).
            number = 0
            requests = 0

            def setup(self) -> None:
                super().setup()
                with receiver.lock:
                    receiver.connections += 1
                    self.number = receiver.connections

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                self.requests += 1
                if self.requests > 1 and self.path in receiver.hang_up_on_reuse:
                    self.close_connection = True  # no answer: the connection just closes
                    return
                receiver.handle(self, body, self.number)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def handle(self, request: BaseHTTPRequestHandler, body: bytes, connection: int) -> None:
        path = request.path
        with self.lock:
            delay = self.delays_once.pop(path, None) or self.delays.get(path, 0.0)
        if delay:
            time.sleep(delay)  # the receiver is slow (its thread, not the test, waits)
        status = self.statuses.get(path, 200)
        if 300 <= status < 400:
            request.send_response(status)
            request.send_header("Location", "/elsewhere")
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        headers = {name.lower(): value for name, value in request.headers.items()}
        try:
            verified = Webhook(self.secrets[path]).verify(body, headers)
        except (KeyError, WebhookVerificationError):
            with self.lock:
                self.refused.append(path)
            status = 400
        else:
            if verified.get("data", {}).get("subject") in self.refuse_subjects:
                status = 500
            if status < 300:
                with self.lock:
                    self.received.append(
                        Received(
                            path,
                            headers["webhook-id"],
                            verified,
                            len(headers["webhook-signature"].split(" ")),
                            time.monotonic(),
                            connection,
                        )
                    )
            if path in self.on_receipt:
                self.on_receipt[path]()
        body = self.bodies.get(path, b"")
        request.send_response(status)
        for name, value in self.headers.get(path, {}).items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def __enter__(self) -> WebhookReceiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Mail:
    to: list[str]
    message: email.message.Message

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        payload = self.message.get_payload(decode=True)
        return payload.decode() if isinstance(payload, bytes) else str(payload)


class MailServer:
    """A real SMTP server on a local port (aiosmtpd, in its own thread) keeping what arrives.
    It can stop (connections refused) and start again on the same port, refuse messages with a
    reply of a test's choosing (`refusing`: "451 ...", "550 ..."), refuse every sender
    (`refusing_sender`: a relay-wide refusal) and answer QUIT otherwise than 221."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self.lock = threading.Lock()
        self.port = free_port()  # kept across restarts: never one an outgoing connection takes
        self.controller: Controller | None = None
        self.refusing: str | None = None  # a reply to every message instead of taking it
        self.refusing_sender: str | None = None  # a reply to MAIL FROM (530: STARTTLS first)
        self.quit_reply: str | None = None  # a reply to QUIT other than 221
        self.refusing_recipient: str | None = None  # a reply to RCPT TO (550: no such mailbox)
        self.recipients_asked = 0

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.recipients_asked += 1
        if self.refusing_recipient is not None:
            return self.refusing_recipient
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_MAIL(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.refusing_sender is not None:
            return self.refusing_sender
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        return self.quit_reply or "221 Bye"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.refusing is not None:
            return self.refusing
        parsed = email.message_from_bytes(envelope.original_content or envelope.content)
        with self.lock:
            self.mails.append(Mail(list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"

    def start(self) -> None:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def to(self, address: str) -> list[Mail]:
        with self.lock:
            return [m for m in self.mails if address in m.to]

    def __enter__(self) -> MailServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
