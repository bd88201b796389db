"""Request rate limits, kept in each process: a token bucket per key (a partner, a client
address) that holds up to a minute's allowance and refills evenly.

Hand-written rather than the `limits` library's in-memory storage: that storage's expiry pass
runs after each hit and reads every key it holds, so at 10,000 keys a request cost about 0.5 ms
of CPU (measured: 2.4 us a hit at 100 keys, 507 us at 10,000, with the event loop yielding
between hits as a server's does). Here a request costs one dictionary move, and the keys kept
are bounded: past `max_keys`, the one used least recently is dropped (it starts full again if
it comes back, which at worst lets a caller that waited its turn out send a burst early).

A limit is per instance: two replicas let a caller through twice as often. The ingress or
gateway in front holds the limit for the whole deployment where one is needed.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.requests import Request

from shared.errors import RequestError
from shared.settings import ServiceSettings

MAX_KEYS = 50_000  # about 150 bytes a key: a few megabytes at most


class TooManyRequests(RequestError):
    """The caller used up its allowance: 429, and `Retry-After` says when a request will pass."""

    status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after_seconds = max(1, math.ceil(retry_after))


class TokenBuckets:
    """`per_minute` requests a minute for each key, all at once if a caller likes (the bucket
    holds a minute's worth), refilled evenly. `per_minute` 0 lets everything through."""

    def __init__(
        self,
        per_minute: int,
        *,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute < 0 or max_keys < 1:
            raise ValueError("per_minute must be 0 or more and max_keys at least 1")
        self.per_minute = per_minute
        self._per_second = per_minute / 60
        self._max_keys = max_keys
        self._clock = clock
        # key -> (tokens left, when they were counted); least recently used first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> float | None:
        """Take one request's token for `key`: None when it passes, otherwise how many seconds
        until the next token (the request is refused and takes nothing)."""
        if self.per_minute == 0:
            return None
        at = self._clock()
        tokens, counted_at = self._buckets.pop(key, (float(self.per_minute), at))
        tokens = min(float(self.per_minute), tokens + (at - counted_at) * self._per_second)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, at)
            wait = None
        else:
            self._buckets[key] = (tokens, at)
            wait = (1 - tokens) / self._per_second
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait


def client_key(host: str | None) -> str:
    """The key of a client address: an IPv4 address itself, an IPv6 address by its /64 (one
    subscriber's usual allocation: one household or host can hold every address in it)."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        # Not an address (a test client's name, or a forwarded header's invention): one key
        # for them all, so inventing a value never earns a fresh allowance.
        return "not an address"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class RateLimits:
    """An instance's allowances: each partner's people and apps
    together (`PARTNER_REQUESTS_PER_MINUTE`), and each client address on a route anyone may
    call to record something (`ANONYMOUS_REQUESTS_PER_MINUTE`). Staff and system clients are
    not limited: they are the platform's own."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.partners = TokenBuckets(settings.partner_requests_per_minute)
        self.anonymous = TokenBuckets(settings.anonymous_requests_per_minute)


def rate_limits_of(request: Request) -> RateLimits:
    """The instance's allowances, made with its app (shared/service.py `create_app`)."""
    limits = request.app.state.rate_limits
    assert isinstance(limits, RateLimits)
    return limits


_INTAKE_COUNTED = "pollinate.intake_counted"


async def anonymous_intake(request: Request) -> None:
    """A route anyone may call that records something (public intake): each client address
    (an IPv6 one by its /64) may call it `ANONYMOUS_REQUESTS_PER_MINUTE` times a minute,
    counted before the body is read. Behind a proxy the address is the one the proxy forwards
    when `FORWARDED_ALLOW_IPS` names the proxy (uvicorn), else every caller is the proxy."""
    if request.scope.get(_INTAKE_COUNTED):
        return  # counted by the route before its body was read (ExactJsonRoute)
    request.scope[_INTAKE_COUNTED] = True
    limits = rate_limits_of(request)
    wait = limits.anonymous.take(client_key(request.client.host if request.client else None))
    if wait is not None:
        raise TooManyRequests(
            f"too many requests from your address: at most {limits.anonymous.per_minute} a"
            " minute; retry after `Retry-After` seconds",
            wait,
        )
