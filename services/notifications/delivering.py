"""Use case: delivering queued messages to webhook endpoints. Each instance leases endpoints
whose head delivery is due and serves each in a task of its own (bounded in number), one
delivery at a time in order; a failure is retried later with backoff (or after the receiver's
Retry-After), and an endpoint that has spent its failure budget, or answered 410 Gone, is
disabled and its partner told."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import ipaddress
import logging
import random
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import aiohttp.abc
import yarl

from services.notifications import inbox, webhook_repository
from services.notifications.domain.addressing import Recipient
from services.notifications.domain.messages import Message
from services.notifications.domain.webhooks import (
    GONE,
    THROTTLING,
    WEBHOOK_DISABLED,
    RetryPolicy,
    retry_after,
)
from services.notifications.settings import NotificationsSettings
from services.notifications.wakeups import InboxWakeups
from services.notifications.webhook_repository import Attempt, ClaimedEndpoint
from shared.addresses import is_public
from shared.clock import now
from shared.db import Pool
from shared.dead_lettering import storable
from shared.name_ids import NameIds

log = logging.getLogger(__name__)

DISABLED_IDS = NameIds(uuid.UUID("0b6f1f5e-6c52-4d0e-9a51-2f2b8a1d7c33"))
# Deliveries read per round trip while an endpoint catches up (sent one at a time, in order).
RUN = 50
# How long a success may wait to be recorded in the delivery log before the next attempt
# records it first (successes are recorded a run at a time; one attempt may be in between).
MARK_SECONDS = 1.0
ERROR_MAX = 300
# As much of a receiver's Retry-After as its attempt's error shows (the header is theirs).
RETRY_AFTER_SHOWN = 64
# An answer's body is read to its end, so that its connection goes back to the pool for the
# endpoint's next delivery (one left unread is closed: a new TCP, and for https a new TLS,
# handshake per delivery). A body longer or slower than this is left, and its connection closed.
DRAIN_BYTES = 64 * 1024
DRAIN_SECONDS = 1.0
# A kept connection idle this long is closed by us before the endpoint's server closes it
# (Node's and uvicorn's servers close after 5 s idle): a post on a connection the server is
# closing at that moment fails. Such a post, with no answer, is sent once more at once.
KEEPALIVE_SECONDS = 3.0
# An answer's header lines and fields up to 16 KiB, as httpx (h11) took them (aiohttp: 8 KiB).
HEADER_BYTES = 16 * 1024
# An endpoint served this long gives its slot back after its current attempt when endpoints are
# waiting for one (every slot taken): without that a backlog of slow answers held its slot for
# minutes while a healthy endpoint waited (four partners' 40 endpoints answering in 9 s held
# back a fifth partner's first delivery 71 s). A slice, not one attempt, so that a fast
# endpoint's run is not cut into single deliveries.
SLICE_SECONDS = 1.0


# A name's lookup: each try waits this long for the nameserver, twice (a slow name fails in
# about 6 s, inside the attempt's own timeout).
DNS_TRY_SECONDS = 3.0
DNS_TRIES = 2


class PublicOnlyResolver(aiohttp.abc.AbstractResolver):
    """The system's nameservers (c-ares through aiodns, reading /etc/resolv.conf and
    /etc/hosts), refusing a name any of whose addresses is private, loopback or reserved. It
    is asked as each connection is made, for the addresses that connection is made to, so a
    name that resolved publicly a moment before cannot point inwards in between (DNS
    rebinding). An address literal is not resolved: registration refuses private ones.

    Lookups are asynchronous: the threaded resolver ran `getaddrinfo` in the event loop's
    default pool of a few threads, which a timeout does not give back, so one partner's
    endpoints on names whose nameserver never answers held every thread for the system
    resolver's seconds, and every other partner's lookups (and the mails sent in that pool)
    waited behind them (found in review)."""

    def __init__(self, nameservers: list[str] | None = None) -> None:
        # None: the system's (/etc/resolv.conf)
        self.system = aiohttp.AsyncResolver(
            timeout=DNS_TRY_SECONDS, tries=DNS_TRIES, nameservers=nameservers
        )

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        found = await self.system.resolve(host, port, family)
        if not all(is_public(ipaddress.ip_address(result["host"])) for result in found):
            # With an errno, so that aiohttp's message carries the reason (its strerror).
            raise OSError(
                errno.EACCES, f"{host} resolves to a private, loopback or reserved address"
            )
        return found

    async def close(self) -> None:
        await self.system.close()


def check_connectable(url: str) -> None:
    """ValueError unless `url`'s host, read as aiohttp reads it (yarl maps fullwidth digits and
    ideographic full stops as browsers do), is a name or a public address: a name is checked by
    PublicOnlyResolver as it resolves, but an address literal never reaches a resolver, and a
    URL registered before registration mapped hosts so (127.0.0.1 in fullwidth digits) reaches
    one."""
    host = yarl.URL(url).host or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    if not is_public(address):
        raise ValueError(f"{host} is a private, loopback or reserved address")


def webhook_session(
    settings: NotificationsSettings, *, development_mode: bool
) -> aiohttp.ClientSession:
    """The deliverer's HTTP client (aiohttp: a delivery costs its sender about a third of the
    CPU httpx took, benchmarks/webhook_delivery.py). An attempt has the timeout as a whole;
    redirects are refused per request. No cookie is kept (one partner's endpoint must not set
    what another's on the same host gets) and no body decompressed (an answer is only drained).
    Deliveries connect directly: reading proxy settings and ~/.netrc from the environment
    (`trust_env`) cost a thread hop per request, a third of the sender's CPU. Outside
    development mode (whose receivers are local) only public addresses are connected to."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=settings.webhook_concurrency * 2,
            keepalive_timeout=KEEPALIVE_SECONDS,
            resolver=None if development_mode else PublicOnlyResolver(),
        ),
        timeout=aiohttp.ClientTimeout(total=settings.webhook_timeout_seconds),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        trust_env=False,
        max_line_size=HEADER_BYTES,
        max_field_size=HEADER_BYTES,
    )


async def drain(response: aiohttp.ClientResponse) -> None:
    """Read a short answer to its end (its connection is then kept); the attempt's outcome is
    its status code, whatever happens here."""
    read = 0
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with asyncio.timeout(DRAIN_SECONDS):
            async for chunk in response.content.iter_any():
                read += len(chunk)
                if read > DRAIN_BYTES:
                    return


@dataclass(frozen=True)
class Answer:
    status: int
    retry_after: str | None  # the header as sent, when it was


async def post(
    client: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> Answer:
    """The answer's status code and Retry-After. A post that met its kept connection closing
    under it (the server's idle timeout, at that moment) got no answer: it is sent once more,
    on a new connection (receivers drop a delivery they already have by its webhook-id)."""
    try:
        return await _post_once(client, url, body, headers)
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as error:
        if isinstance(error, aiohttp.ClientConnectorError):
            raise  # no connection was made: nothing was cut short
        return await _post_once(client, url, body, headers)


async def _post_once(
    client: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> Answer:
    async with client.post(url, data=body, headers=headers, allow_redirects=False) as response:
        await drain(response)
        return Answer(response.status, response.headers.get("Retry-After"))


class Deliverer:
    def __init__(
        self,
        pool: Pool,
        settings: NotificationsSettings,
        wakeups: InboxWakeups,
        *,
        development_mode: bool,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.policy: RetryPolicy = settings.retry_policy()
        self.wakeups = wakeups
        self.development_mode = development_mode
        self.owner = uuid.uuid4()  # this instance's name on its leases
        self.active: dict[uuid.UUID, asyncio.Task[None]] = {}
        # Endpoints found waiting for a slot while every slot was taken: as many served
        # endpoints past their slice give theirs back.
        self.turns_owed = 0

    async def run(self) -> None:
        """Claim due endpoints while slots are free; wait for a wake-up, a finished endpoint
        or the poll period."""
        async with webhook_session(self.settings, development_mode=self.development_mode) as client:
            try:
                while True:
                    wakeup = self.wakeups.next_wakeup()
                    await self.claim(client)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wakeup.wait(), self.settings.webhook_poll_seconds)
            finally:
                for task in self.active.values():
                    task.cancel()
                await asyncio.gather(*self.active.values(), return_exceptions=True)

    async def claim(self, client: aiohttp.ClientSession) -> None:
        """Fill the free slots; when every slot is taken, count the endpoints waiting for one
        (that many served endpoints then give theirs back after their slice)."""
        concurrency = self.settings.webhook_concurrency
        free = concurrency - len(self.active)
        try:
            if free > 0:
                claimed = await webhook_repository.claim_endpoints(
                    self.pool, self.owner, free, self.settings.webhook_lease_seconds
                )
                for endpoint in claimed:
                    task = asyncio.create_task(self.serve(client, endpoint))
                    self.active[endpoint.endpoint_id] = task
                    task.add_done_callback(functools.partial(self._finished, endpoint.endpoint_id))
                if len(claimed) < free:
                    self.turns_owed = 0  # no one else is due
                    return
            self.turns_owed = await webhook_repository.waiting_endpoints(self.pool, concurrency)
        except Exception as error:
            log.warning("claiming webhook endpoints failed", extra={"error": repr(error)})

    def give_turn(self, served_since: float) -> bool:
        """Whether an endpoint served since `served_since` (monotonic) gives its slot back
        now: it has had its slice and an endpoint waits for a slot."""
        if self.turns_owed <= 0 or time.monotonic() - served_since < SLICE_SECONDS:
            return False
        self.turns_owed -= 1
        return True

    def _finished(self, endpoint_id: uuid.UUID, _task: asyncio.Task[None]) -> None:
        self.active.pop(endpoint_id, None)
        self.wakeups.wake()  # a slot is free

    async def serve(self, client: aiohttp.ClientSession, endpoint: ClaimedEndpoint) -> None:
        """Deliver the endpoint's due deliveries in order until one fails, none is due or its
        slice is over while others wait (`give_turn`: it is claimed again in its turn).
        Successes are recorded together (`Unrecorded`): before a failure is settled, when the
        run is done, and before the next attempt once the oldest has waited MARK_SECONDS. The
        lease is renewed once a third of it is spent (never across an attempt longer than the
        timeout, which the lease exceeds)."""
        lease = self.settings.webhook_lease_seconds
        since = time.monotonic()
        renew_at = since + lease / 3
        unrecorded = Unrecorded(self.pool, endpoint.endpoint_id, endpoint.url)
        failed = False
        try:
            while True:
                run = await webhook_repository.due_run(self.pool, endpoint.endpoint_id, RUN)
                if not run:
                    return
                for delivery in run:
                    if unrecorded.overdue() and not await unrecorded.record():
                        return
                    attempt = await self.attempt(client, endpoint, delivery)
                    if not attempt.succeeded:
                        await unrecorded.record()  # before the failure: the log stays in order
                        await self.settle(endpoint, attempt)
                        return
                    unrecorded.add(attempt)
                    if self.give_turn(since):
                        return  # recorded and given back in `finally`
                    if time.monotonic() >= renew_at:
                        if not await webhook_repository.renew_lease(
                            self.pool, endpoint.endpoint_id, self.owner, lease
                        ):
                            return  # lapsed and taken: the new holder goes on in order
                        renew_at = time.monotonic() + lease / 3
                if not await unrecorded.record():
                    return
        except Exception:
            failed = True
            log.exception(
                "serving a webhook endpoint failed: served again once its lease lapses",
                extra={"endpoint": str(endpoint.endpoint_id)},
            )
        finally:
            with contextlib.suppress(Exception):
                await unrecorded.record()
            if not failed:  # a failure keeps the lease to its end: claimed at once, it looped
                with contextlib.suppress(Exception):
                    await webhook_repository.release_lease(
                        self.pool, endpoint.endpoint_id, self.owner
                    )

    async def attempt(
        self, client: aiohttp.ClientSession, endpoint: ClaimedEndpoint, head: Any
    ) -> Attempt:
        at = now()
        started = time.monotonic()
        code: int | None = None
        error: str | None = None
        asked: timedelta | None = None
        body: str = head["payload"]
        try:
            if not self.development_mode:
                check_connectable(endpoint.url)
            headers = endpoint.signing.headers(str(head["message_id"]), at, body)
            async with asyncio.timeout(self.settings.webhook_timeout_seconds):
                answer = await post(client, endpoint.url, body.encode(), headers)
            code = answer.status
            if not 200 <= code < 300:
                error, asked = refusal(answer, now())
        except TimeoutError:
            error = f"no answer within {self.settings.webhook_timeout_seconds:g} s"
        except aiohttp.ClientError as failed:
            error = f"{type(failed).__name__}: {failed}"[:ERROR_MAX]
        except ValueError as failed:  # a name with no address form (UnicodeError) and the like
            error = f"cannot send to this address: {failed}"[:ERROR_MAX]
        return Attempt(
            head["delivery_id"],
            head["attempts"] + 1,
            at,
            code,
            # What the receiver sent, quoted, may hold what Postgres cannot store: a Retry-After
            # byte that is not UTF-8 reads as a lone surrogate, and the attempt's insert failed
            # at every try, a loop with nothing counted or logged (found in review).
            None if error is None else storable(error),
            int((time.monotonic() - started) * 1000),
            head["next_attempt_at"],
            head["requested"],
            asked,
        )

    async def settle(self, endpoint: ClaimedEndpoint, attempt: Attempt) -> bool:
        """Record the attempt and what follows from it; False when the endpoint is gone or has
        just been disabled. A redelivery the partner asked for is not a retry: its failure
        neither counts toward the failure budget nor advances the backoff (a developer
        clicking redeliver on a failing head disabled the endpoint after 14 clicks), and the
        delivery goes back to being retried at the endpoint's current pace. A receiver's
        Retry-After (bounded: `RetryPolicy.delay`) puts the retry no earlier than it asked."""
        counted = not attempt.requested
        async with self.pool.acquire() as conn, conn.transaction():
            outcome = await webhook_repository.endpoint_outcome(
                conn,
                endpoint.endpoint_id,
                endpoint.url,
                attempt.succeeded,
                attempt.at,
                counted=counted,
            )
            if outcome is None:
                return False  # deleted meanwhile, with its queue
            await webhook_repository.record_attempt(
                conn, attempt, self.retry_at(endpoint, attempt, outcome)
            )
            reason = self.disabling(endpoint, attempt, outcome)
            if reason is None:
                return bool(outcome["enabled"])
            await webhook_repository.disable_endpoint(conn, endpoint.endpoint_id, reason)
            since = outcome["failing_since"] or attempt.at  # a redelivery's 410: none counted
            await inbox.file(conn, [disabled_message(endpoint, since, reason)])
            log.warning(
                "webhook endpoint disabled",
                extra={"endpoint": str(endpoint.endpoint_id), "reason": reason},
            )
            return False

    def retry_at(
        self, endpoint: ClaimedEndpoint, attempt: Attempt, outcome: Any
    ) -> datetime | None:
        """When a settled attempt's delivery is tried again: None after a success."""
        if attempt.succeeded:
            return None
        if outcome["url"] != endpoint.url:
            return attempt.ended_at  # made to a URL changed meanwhile: the new one at once
        # From the attempt's end: from its start, an attempt that took the timeout (10 s) was
        # retried at once, its first backoffs (2.5-5 s, then 5-10 s) spent waiting.
        jitter = random.random()  # noqa: S311 (jitter, not a secret)
        failures = outcome["consecutive_failures"]
        return attempt.ended_at + self.policy.delay(failures, jitter, attempt.retry_after)

    def disabling(self, endpoint: ClaimedEndpoint, attempt: Attempt, outcome: Any) -> str | None:
        """Why a settled attempt disables its endpoint, or None. 410 Gone does at once, a
        redelivery's too: the receiver says it wants no more deliveries from us (Standard
        Webhooks), and retrying it for the budget's 7 hours only hammers a receiver that asked
        us to stop. Otherwise retries that spent the failure budget do. An attempt made to a URL
        the endpoint no longer has (changed while it was out) disables nothing."""
        if attempt.succeeded or not outcome["enabled"] or outcome["url"] != endpoint.url:
            return None
        if attempt.status_code == GONE:
            return (
                f"the endpoint answered 410 Gone at {attempt.at.isoformat()}: its receiver "
                "asks for no more deliveries"
            )
        failures = outcome["consecutive_failures"]
        if attempt.requested or not self.policy.spent(failures):
            return None
        # Attempts, not deliveries: the failures in a row are the head's retries.
        return (
            f"{failures} attempts in a row failed since "
            f"{outcome['failing_since'].isoformat()}; last: {attempt.error}"
        )


def refusal(answer: Answer, received_at: datetime) -> tuple[str, timedelta | None]:
    """What an answer other than 2xx logs as the attempt's error, and how long a throttling
    one's Retry-After asked to wait from `received_at` (None when it did not, or said
    something not understood: that is ignored, and logged as such)."""
    code = answer.status
    if 300 <= code < 400:
        return f"HTTP {code}: redirects are not followed", None
    if code == GONE:
        return "HTTP 410 Gone", None
    if code not in THROTTLING or answer.retry_after is None:
        return f"HTTP {code}", None
    shown = answer.retry_after[:RETRY_AFTER_SHOWN]
    asked = retry_after(answer.retry_after, received_at)
    if asked is None:
        return f"HTTP {code}; Retry-After {shown!r} not understood, ignored", None
    return f"HTTP {code}; Retry-After: {shown}", asked


class Unrecorded:
    """An endpoint's successful attempts not yet in the log: one statement records a run's
    successes instead of one each (that statement was the largest single cost of a delivery in
    Postgres). A crash before they are recorded only sends them again, with the same webhook-id
    (the duplicate the specification allows); the head of the queue stays in order either way."""

    def __init__(self, pool: Pool, endpoint_id: uuid.UUID, url: str) -> None:
        self.pool = pool
        self.endpoint_id = endpoint_id
        self.url = url  # where they were sent: the endpoint is served while it still has it
        self.attempts: list[Attempt] = []
        self.since = 0.0

    def add(self, attempt: Attempt) -> None:
        if not self.attempts:
            self.since = time.monotonic()
        self.attempts.append(attempt)

    def overdue(self) -> bool:
        """The oldest has waited long enough that the delivery log should show it."""
        return bool(self.attempts) and time.monotonic() - self.since >= MARK_SECONDS

    async def record(self) -> bool:
        """Record them; False when the endpoint is no longer to be served (deleted, disabled,
        its partner's access revoked, or its URL changed meanwhile)."""
        if not self.attempts:
            return True
        serving = await webhook_repository.delivered(
            self.pool, self.endpoint_id, self.url, self.attempts
        )
        self.attempts = []  # only once recorded: a failed statement is tried again in `finally`
        return serving


def disabled_message(endpoint: ClaimedEndpoint, since: datetime, reason: str) -> Message:
    """What the partner is told: which endpoint, why, and that its queue waits for it. Its id
    is the endpoint's and when it began failing (enabling it again starts that afresh)."""
    return Message(
        notification_id=DISABLED_IDS.uuid(f"{endpoint.endpoint_id}/{since.isoformat()}"),
        recipient=Recipient.partner(endpoint.partner_id),
        partner_id=endpoint.partner_id,
        kind=WEBHOOK_DISABLED,
        subject=f"Webhook endpoint {endpoint.url} disabled",
        body=f"{reason}. Its queued messages are kept: enable it again to receive them in order.",
        registration_id=None,
        deal_key=None,
        created_at=now(),
        ingested_at=None,
    )
