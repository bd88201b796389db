"""The chain benchmark's load generator: won Salesforce deals posted to deals' CRM endpoint at a
fixed rate or as fast as the chain completes them.

A post is idempotent (every CDC message carries its own transaction key, from which deals derives
the event id it deduplicates on), so a post that met a transport error (a pooled keep-alive
connection the server closed under load, a reset, a timeout), a 5xx or a 429 is sent again, the
same bytes, after a bounded backoff (a 429's or 503's Retry-After is respected, up to a cap).
Every phase counts its posts, retries, failed attempts by kind and timeouts, and the posts given
up once the attempts ran out: a phase that meets errors still ends, with what it measured.

The posts go through benchmarks/http1.py, not httpx: posting the same ten-deal delivery from
four tasks to a uvicorn server in another process, httpx's AsyncClient used 3.3 ms of CPU per
post and asyncio streams 0.14 ms (the loaded 2-core machine, 1,000 posts each); building and
signing a delivery is 0.4 ms more. That is about 0.3 ms of CPU per deal given back to the
system under test."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from benchmarks.http1 import Answer, Disconnected, Http1Client, ProtocolError
from deploy.story import Partner
from tests.support.crm import salesforce_cdc, salesforce_delivery

DEALS_PER_POST = 10


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a post is sent again. The worst case (6 attempts: 3.1 s of
    backoff, or 50 s if every answer asks for the longest Retry-After) stays far inside the
    5 minutes a Standard Webhooks signature is valid, so a retry resends the signed bytes."""

    attempts: int = 6
    first_backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    max_retry_after_s: float = 10.0

    def backoff(self, retry: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number `retry` (1 for the first)."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after_s)
        ceiling = min(self.max_backoff_s, self.first_backoff_s * 2 ** (retry - 1))
        # Jittered, so the posts that failed together (one closed connection, one overload)
        # do not come back together.
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 (not security)


@dataclass
class PostCounts:
    """What one phase's posts met. `posts` is the posts offered, each counted once however
    often it was sent; every failed attempt is counted once, as a timeout or as an error of
    its kind (the exception's class, or "HTTP <status>")."""

    posts: int = 0
    accepted: int = 0
    retries: int = 0
    timeouts: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    given_up: int = 0  # posts whose last attempt failed too, or that were refused (4xx)

    def as_dict(self) -> dict[str, Any]:
        return {
            "posts": self.posts,
            "accepted": self.accepted,
            "retries": self.retries,
            "timeouts": self.timeouts,
            "errors": dict(self.errors.most_common()),
            "given_up": self.given_up,
        }

    def failure(self) -> str | None:
        """Why the phase failed, if its load did not all arrive."""
        if not self.given_up:
            return None
        return (
            f"{self.given_up} of {self.posts} posts ({self.given_up * DEALS_PER_POST} deals) "
            f"given up; failed attempts: {self.timeouts} timeouts, {dict(self.errors)}"
        )


def retry_after(answer: Answer) -> float | None:
    """A Retry-After header's seconds (delta-seconds or an HTTP date), if it has a usable one."""
    value = answer.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def retryable(status: int) -> bool:
    return status == 429 or status >= 500


async def post_idempotent(
    client: Http1Client,
    url: str,
    request: dict[str, Any],
    counts: PostCounts,
    policy: RetryPolicy,
) -> bool:
    """POST `request` (`content` and `headers`: the same bytes every time) until it is
    answered 2xx, the answer is a 4xx other than 429, or `policy.attempts` ran out; whether it
    was accepted. Never raises for what the server or the connection did."""
    counts.posts += 1
    for attempt in range(1, policy.attempts + 1):
        wait_for: float | None = None
        try:
            answer = await client.post(url, request["content"], request["headers"])
        except TimeoutError:  # before OSError: it is one
            counts.timeouts += 1
        except (OSError, Disconnected, ProtocolError) as error:
            counts.errors[type(error).__name__] += 1
        else:
            if answer.is_success:
                counts.accepted += 1
                return True
            counts.errors[f"HTTP {answer.status}"] += 1
            if not retryable(answer.status):
                break
            wait_for = retry_after(answer)
        if attempt < policy.attempts:
            counts.retries += 1
            await asyncio.sleep(policy.backoff(attempt, wait_for))
    counts.given_up += 1
    return False


@dataclass(frozen=True)
class Pace:
    """How a phase offers its deals: `rate` deals/s for `seconds`, `deals_per_post` in each
    delivery, at even intervals or, given `arrivals`, at random ones drawn from it (a Poisson
    process of the same rate). Even intervals can fall into step with a consumer's polling and
    never meet its pauses, which independent senders do."""

    rate: int
    seconds: float
    deals_per_post: int = DEALS_PER_POST
    arrivals: random.Random | None = None


class Offer:
    """Posts won deals to deals' Salesforce endpoint, ten per request (in turn to each deals
    instance, as a load balancer would). `sent` lists the deals of accepted posts, in order;
    `counts` what each phase's posts met."""

    def __init__(
        self,
        deals_url: str,
        partners: list[Partner],
        run: str,
        *,
        policy: RetryPolicy | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.urls = [f"{deals_url}/crm/salesforce"]
        self.posts = 0
        self.partners = partners
        self.run = run
        self.policy = policy or RetryPolicy()
        self.sent: list[str] = []
        self.counts: dict[str, PostCounts] = {}
        self.numbered = 0  # deals numbered so far: concurrent posts must never share a record id
        # Idle connections are dropped before uvicorn closes them (its keep-alive is 5 s); a
        # connection the server closes anyway under load is what the retries are for.
        self.client = Http1Client(timeout=timeout, max_connections=32, keepalive_expiry=2.0)

    def counted(self, phase: str) -> PostCounts:
        return self.counts.setdefault(phase, PostCounts())

    def batch(self, phase: str, size: int) -> tuple[list[str], list[Any]]:
        at = datetime.now(UTC)
        keys: list[str] = []
        events: list[Any] = []
        for _ in range(size):
            n, self.numbered = self.numbered, self.numbered + 1
            record = f"B{self.run}{phase}{n:07d}"  # chain.phase_of() reads the phase back
            partner = self.partners[n % len(self.partners)]
            keys.append(f"salesforce:{record}")
            events.append(
                salesforce_cdc(
                    record,
                    "CREATE",
                    at,
                    {
                        "StageName": "Closed Won",
                        "Amount": 1000 + n % 9000,  # whole dollars: exact as a JSON number
                        "CurrencyIsoCode": "USD",
                        "CloseDate": at.date().isoformat(),
                        "Account_Name__c": f"Bench {self.run} Account {n}",
                        "Account_Website__c": f"https://bench-{self.run}-{n}.example",
                        "Partner_Account__c": partner.partner_id,
                    },
                )
            )
        return keys, events

    async def post(self, phase: str, size: int = DEALS_PER_POST) -> bool:
        """One delivery of `size` deals, signed as the Salesforce relay signs each delivery
        (Standard Webhooks); whether it was accepted."""
        keys, events = self.batch(phase, size)
        url, self.posts = self.urls[self.posts % len(self.urls)], self.posts + 1
        request = salesforce_delivery(events)
        accepted = await post_idempotent(
            self.client, url, request, self.counted(phase), self.policy
        )
        if accepted:
            self.sent.extend(keys)
        return accepted

    async def at_rate(self, phase: str, pace: Pace) -> int:
        """Offer deals at `pace` (open loop: sends do not wait for each other); the deals
        offered."""
        interval = pace.deals_per_post / pace.rate
        tasks: list[asyncio.Task[bool]] = []
        start = time.perf_counter()
        n = 0
        due = start
        while due - start < pace.seconds:
            if due > (now := time.perf_counter()):
                await asyncio.sleep(due - now)
            tasks.append(asyncio.create_task(self.post(phase, pace.deals_per_post)))
            n += 1
            if pace.arrivals is None:
                due += interval
            else:
                due += pace.arrivals.expovariate(1 / interval)
        await asyncio.gather(*tasks)
        return n * pace.deals_per_post

    async def saturate(
        self, phase: str, seconds: float, completed: Counter[str], window: int = 600
    ) -> int:
        """As fast as the whole chain completes deals: closed loop on completion (`completed`
        counts each phase's deals whose incentive entry was seen), at most `window` deals
        between ingestion and their incentive entry (so the run measures the chain, not how
        fast deals' HTTP edge fills a backlog); the deals offered."""
        deadline = time.perf_counter() + seconds
        sent = 0
        lost = 0  # deals of posts given up: they will never complete

        async def loop() -> None:
            nonlocal sent, lost
            while time.perf_counter() < deadline:
                # A count, not a scan of what was sent: the generator shares the machine's two
                # cores with what it measures, so it must cost the same at the end of the run.
                in_flight = sent - lost - completed[phase]
                if in_flight >= window:
                    await asyncio.sleep(0.05)
                    continue
                sent += DEALS_PER_POST  # counted before the await: the other loops see it
                if not await self.post(phase):
                    lost += DEALS_PER_POST

        await asyncio.gather(*(loop() for _ in range(4)))
        return sent
