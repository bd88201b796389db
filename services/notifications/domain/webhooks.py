"""Webhook rules, pure: which targets may be called, what is sent and signed (Standard
Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`), when a failed delivery is
tried again (a receiver's `Retry-After` included), and when an endpoint has spent its failure
budget or said it wants no more deliveries (410 Gone)."""

from __future__ import annotations

import base64
import ipaddress
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import cache
from urllib.parse import SplitResult, urlsplit

from publicsuffixlist import PublicSuffixList
from standardwebhooks.webhooks import Webhook

from services.notifications.domain import cursor, ledger_messages
from services.notifications.domain.messages import Message
from shared.addresses import is_public, url_host
from shared.errors import Conflict, Unprocessable
from shared.events.notifications import KNOWN_KINDS

# The kinds a subscription may name: the platform's known notification kinds, the ledger
# entries this service turns into messages, and the one it files itself when it disables an
# endpoint. (A v5 message of a kind not known here is still filed and delivered to endpoints
# subscribed to every kind.)
WEBHOOK_DISABLED = "webhook_disabled"
KINDS = frozenset(
    set(KNOWN_KINDS) | {WEBHOOK_DISABLED, ledger_messages.PAYOUT} | {ledger_messages.MDF_EXPIRED}
)
URL_MAX = 2000
MAX_ENDPOINTS_PER_PARTNER = 10
# After a rotation the previous secret keeps signing this long (receivers switch meanwhile).
PREVIOUS_SECRET_GRACE = timedelta(hours=24)
# Secrets rotated out that may sign at once, each through its grace: a rotation repeated (a
# double click, an answer lost and asked again) keeps the secret receivers hold, a few times
# over; more would only lengthen every delivery's signature header.
MAX_PREVIOUS_SECRETS = 3
# Standard Webhooks' status handling: 410 Gone is the receiver saying it wants no more
# deliveries from this source (the endpoint is disabled at once, not after its budget); 429,
# 502, 503 and 504 ask the sender to slow down, and a `Retry-After` on them says how long.
GONE = 410
THROTTLING = frozenset({429, 502, 503, 504})
# A delay-seconds longer than this many digits is longer than any bound on it (and Python
# refuses to read an integer of thousands of digits).
_SECONDS_DIGITS = 9


def new_secret() -> str:
    """A `whsec_` secret: 32 random bytes in base64, as the specification's libraries take."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def check_target(url: str, *, development_mode: bool) -> str:
    """The URL as given, when the platform may call it; 422 saying why not. Outside
    development mode only https to a host that is not a private or loopback address literal
    (names are resolved and checked again at each delivery)."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number is refused here
    except ValueError as error:
        raise Unprocessable(f"url is not a valid URL: {error}") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise Unprocessable("url must be an absolute https URL")
    if parts.scheme != "https" and not development_mode:
        raise Unprocessable("url must use https")
    if parts.username is not None or parts.password is not None:
        raise Unprocessable("url must not carry credentials")
    if parts.fragment:
        raise Unprocessable("url must not have a fragment")
    host, literal = _host(parts)
    if not development_mode:
        if literal is not None and not is_public(literal):
            raise Unprocessable("url must not point at a private, loopback or reserved address")
        if literal is None and (host == "localhost" or host.endswith((".localhost", ".local"))):
            raise Unprocessable("url must not point at a private, loopback or reserved address")
        if literal is None and not _under_a_public_suffix(host):
            # `https://postgres/`, `kafka-0.kafka-headless`, `.internal`: names only the
            # platform's own network resolves. Found in review: the delivery log told a
            # partner which of them exist (resolves privately) and which do not.
            raise Unprocessable(
                "url must name a host under a public domain (a single-label name, or one under "
                "a suffix not on the Public Suffix List, is not reachable from the internet)"
            )
    return url


@cache
def _public_suffixes() -> PublicSuffixList:
    """The Public Suffix List as the package bundles it, unknown suffixes not public."""
    return PublicSuffixList(accept_unknown=False)


def _under_a_public_suffix(host: str) -> bool:
    return not host.endswith(".arpa") and _public_suffixes().privatesuffix(host) is not None


def _host(parts: SplitResult) -> tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address | None]:
    """The URL's host (lower case, without a final dot) and its address if it is a literal;
    422 for a host or port no client would read as this check does (`shared.addresses`)."""
    try:
        return url_host(parts, "url")
    except ValueError as error:
        raise Unprocessable(str(error)) from None


def event_type(kind: str) -> str:
    return f"notification.{kind}"


def payload(message: Message, position: int) -> str:
    """The body sent for a message: the specification's recommended shape (`type`,
    `timestamp`, `data`), fixed when the message is filed so every attempt signs the same."""
    data = {
        "cursor": cursor.encode(position),
        "notification_id": str(message.notification_id),
        "kind": message.kind,
        "partner_id": message.partner_id,
        "subject": message.subject,
        "body": message.body,
        "registration_id": message.registration_id,
        "deal_key": message.deal_key,
        "created_at": message.created_at.isoformat(),
        "ingested_at": message.ingested_at.isoformat() if message.ingested_at else None,
    }
    return json.dumps(
        {
            "type": event_type(message.kind),
            "timestamp": message.created_at.isoformat(),
            "data": data,
        },
        separators=(",", ":"),
    )


@dataclass(frozen=True)
class PreviousSecret:
    secret: str
    until: datetime  # the end of its grace: it signs until then


def rotated_out(
    previous: Sequence[PreviousSecret], secret: str, at: datetime
) -> list[PreviousSecret]:
    """The previous secrets once `secret` is rotated out at `at`: those still in their grace
    and `secret`, in its grace from now. 409 when MAX_PREVIOUS_SECRETS still are (dropping
    one would break a receiver that holds it; the answer says when a rotation is possible)."""
    kept = [p for p in previous if p.until > at]
    if len(kept) >= MAX_PREVIOUS_SECRETS:
        free_at = min(p.until for p in kept)
        raise Conflict(
            f"{len(kept)} previous secrets of this endpoint still sign (each for 24 hours after "
            f"its rotation); rotate again after {free_at.isoformat()}"
        )
    return [*kept, PreviousSecret(secret, at + PREVIOUS_SECRET_GRACE)]


@dataclass(frozen=True)
class Signing:
    secret: str
    previous: tuple[PreviousSecret, ...] = ()

    def headers(self, webhook_id: str, at: datetime, body: str) -> dict[str, str]:
        """The specification's three headers; during a rotation's grace period the signature
        header carries a signature with each secret still in its grace (space-separated), so a
        receiver holding any of them verifies."""
        signatures = [Webhook(self.secret).sign(webhook_id, at, body)]
        signatures += [
            Webhook(p.secret).sign(webhook_id, at, body) for p in self.previous if at < p.until
        ]
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": " ".join(signatures),
            "content-type": "application/json",
        }


def retry_after(value: str | None, received_at: datetime) -> timedelta | None:
    """How long a `Retry-After` header (RFC 9110: delay-seconds, or an HTTP-date) asks to wait
    from `received_at`, when the answer came; a date already past asks for no wait. None when
    there is none or it is not understood (negative, fractional, not a date): it is ignored and
    the backoff alone applies."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        if len(text) > _SECONDS_DIGITS:
            return timedelta(seconds=10**_SECONDS_DIGITS)
        return timedelta(seconds=int(text))
    if not any(c.isalpha() for c in text):
        return None  # "-5", "1.5", "": no number of seconds, and no date names a month
    try:
        at = parsedate_to_datetime(text)
    except (ValueError, TypeError, OverflowError):
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)  # asctime's form has no zone: HTTP dates are GMT
    return max(timedelta(0), at - received_at)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: the n-th failure waits initial * 2^(n-1), capped, times
    a random factor in [0.5, 1) so endpoints that failed together do not retry together. An
    endpoint whose head delivery has failed `budget` times in a row is disabled (its queue
    kept: re-enabling it resumes in order)."""

    initial_seconds: float = 5.0
    max_seconds: float = 7200.0
    budget: int = 14

    def delay(self, failures: int, jitter: float, asked: timedelta | None = None) -> timedelta:
        """`jitter` in [0, 1) (the caller's random draw). `asked`, a receiver's Retry-After, is
        waited when longer than the backoff, but never longer than `max_seconds`: a receiver
        asking for days (or years) would otherwise park its deliveries, and its failures, for
        good."""
        base = min(self.max_seconds, self.initial_seconds * 2 ** max(0, failures - 1))
        backoff = timedelta(seconds=base * (0.5 + jitter / 2))
        if asked is None:
            return backoff
        return max(backoff, min(asked, timedelta(seconds=self.max_seconds)))

    def spent(self, failures: int) -> bool:
        return failures >= self.budget

    def span(self) -> timedelta:
        """The longest time an endpoint is retried before it is disabled (no jitter)."""
        return timedelta(
            seconds=sum(
                min(self.max_seconds, self.initial_seconds * 2 ** (n - 1))
                for n in range(1, self.budget)
            )
        )
