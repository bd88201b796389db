"""What the partner's enablement pages show: plain rules, no I/O.

Onboarding owns learning paths, certifications and the resource library; these rules only pick
what a page puts first (the signed-in person's own progress, the certifications about to lapse)
and which outside sites a page's forms may lead to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from shared.addresses import ascii_host
from shared.inputs import InputError, check_https_url

# Onboarding reminds people 60, 30 and 7 days before a certification lapses (its default
# `certification_reminder_days`): home shows what is inside the widest of those windows.
EXPIRING_SOON_DAYS = 60

MODULE_STATES = {
    "done": "done",
    "next": "take this next",
    "locked": "after the modules before it",
    "out_of_order": "done before an earlier module: take it again",
}

RESOURCE_KINDS = {
    "collateral": "Collateral",
    "playbook": "Playbook",
    "technical_guide": "Technical guide",
    "early_access": "SDK/API early access",
}


def person_of(subject: str, partner_id: str) -> str:
    """The person a partner token names: onboarding issues them as `<partner_id>/<user>`, and
    a person registered by their e-mail is that `user` (compared without case)."""
    prefix = f"{partner_id}/"
    user = subject[len(prefix) :] if subject.startswith(prefix) else subject
    return user.strip().lower()


def is_me(person_email: str, me: str) -> bool:
    return bool(me) and person_email.strip().lower() == me


@dataclass(frozen=True)
class Expiring:
    person: str
    person_name: str | None
    track: str
    role: str
    expires_at: datetime
    days_left: int

    @property
    def when(self) -> str:
        if self.days_left <= 0:
            return "expires today"
        return f"expires in {self.days_left} day{'s' if self.days_left != 1 else ''}"


def _instant(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def valid_now(
    certifications: Iterable[Mapping[str, Any]], now: datetime
) -> list[Mapping[str, Any]]:
    """The certifications that count now: issued, not lapsed, not voided (the home page
    listed every one ever recorded, voided ones as if held)."""
    kept = []
    for c in certifications:
        expires_at = _instant(c.get("expires_at"))
        issued_at = _instant(c.get("issued_at"))
        if expires_at is None or c.get("voided_at") or expires_at <= now:
            continue
        if issued_at is None or issued_at <= now:
            kept.append(c)
    return kept


def expiring_soon(
    certifications: Iterable[Mapping[str, Any]],
    now: datetime,
    days: int = EXPIRING_SOON_DAYS,
) -> list[Expiring]:
    """Certifications still valid now that lapse within `days`, soonest first. Voided ones and
    those already lapsed are not 'expiring': they no longer count."""
    found = []
    for c in valid_now(certifications, now):
        expires_at = _instant(c.get("expires_at"))
        assert expires_at is not None  # valid_now keeps only those with an expiry
        left = expires_at - now
        if left.total_seconds() > days * 86_400:
            continue
        found.append(
            Expiring(
                person=str(c.get("person", "")),
                person_name=c.get("person_name"),
                track=str(c.get("track", "")),
                role=str(c.get("role", "")),
                expires_at=expires_at,
                # Calendar days (UTC), as the date beside it is printed: found in review, 24-hour
                # blocks said "expires today (2026-03-02)" at 23:00 on the 1st.
                days_left=(expires_at.astimezone(UTC).date() - now.astimezone(UTC).date()).days,
            )
        )
    return sorted(found, key=lambda e: (e.expires_at, e.person, e.track, e.role))


def holds(
    certifications: Iterable[Mapping[str, Any]],
    person_email: str,
    track: str | None,
    role: str | None,
    now: datetime,
) -> datetime | None:
    """Until when `person_email` holds a valid certification on `track` as `role` (the latest
    expiry of those valid now), None when they hold none."""
    if track is None or role is None:
        return None
    until: datetime | None = None
    for c in certifications:
        if str(c.get("person", "")).lower() != person_email.lower() or c.get("voided_at"):
            continue
        if c.get("track") != track or c.get("role") != role:
            continue
        issued_at, expires_at = _instant(c.get("issued_at")), _instant(c.get("expires_at"))
        if issued_at is None or expires_at is None or not issued_at <= now < expires_at:
            continue
        until = expires_at if until is None else max(until, expires_at)
    return until


def openable(url: str) -> bool:
    """Whether a resource's address is one a browser opens as written (onboarding checks that
    of what it is sent now; one stored before may have a port like `abc` or 99999, which made
    every page listing it answer 500)."""
    try:
        check_https_url(url)
    except InputError:
        return False
    return True


def form_targets(urls: Iterable[str]) -> list[str]:
    """The https origins a page's forms lead to (a download is recorded, then the browser goes
    to the resource itself): what the page's Content-Security-Policy lets `form-action` reach
    besides the portal. An address that is not `openable` is left out, and so is an origin a
    policy cannot name (an IPv6 address, an underscore): its form is refused by the browser
    rather than the policy widened."""
    origins = set()
    for url in filter(openable, urls):
        parts = urlsplit(url)
        if parts.netloc.startswith("["):
            continue
        host = ascii_host((parts.hostname or "").removesuffix("."), underscores=True)
        if not all(ch.isascii() and (ch.isalnum() or ch in "-.") for ch in host):
            continue
        origins.add(f"https://{host}" + (f":{parts.port}" if parts.port else ""))
    return sorted(origins)


def resource_kind(kind: str) -> str:
    return RESOURCE_KINDS.get(kind, kind.replace("_", " ").capitalize())


def module_state(state: str) -> str:
    return MODULE_STATES.get(state, state.replace("_", " "))
