"""Domain ownership: an application claims a domain; the partner holds it once it proves control
by publishing the platform-issued token (a DNS TXT record on the domain, or the well-known file
on its web site). A claimed domain is the applicant's word: it is published to the other
services only once held."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from shared.errors import Conflict
from shared.events.partners import PartnerStatus as S

WELL_KNOWN_PATH = "/.well-known/pollinate-verification.txt"
PREFIX = "pollinate-verification="


def expected_record(token: str) -> str:
    """What the partner publishes: the TXT record's text, or the well-known file's line."""
    return f"{PREFIX}{token}"


def proves(published: Iterable[str], token: str) -> bool:
    """Whether what the domain publishes carries the token (surrounding quotes and blanks,
    as TXT tools add them, do not matter)."""
    wanted = expected_record(token)
    return any(text.strip().strip('"').strip() == wanted for text in published)


def domain_state(verified_at: datetime | None) -> str:
    """`held` once verified; `claimed` until then."""
    return "held" if verified_at is not None else "claimed"


def held_domain(domain: str, verified_at: datetime | None) -> str | None:
    """The domain as the platform may treat it as the partner's: only when held."""
    return domain if verified_at is not None else None


def check_may_verify(partner_id: str, status: S) -> None:
    """A rejected or expelled partner holds no domain."""
    if status in (S.REJECTED, S.EXPELLED):
        raise Conflict(f"partner {partner_id} is {status.value}: it holds no domain")


class NotVerified(Conflict):
    """The domain does not publish the token (yet): nothing changes."""

    def __init__(self, domain: str, token: str, where: str) -> None:
        super().__init__(
            f"domain {domain} is not verified: {expected_record(token)!r} was not found at {where}"
        )


class AlreadyHeld(Conflict):
    """Another partner proved the domain first. Nothing about it is told."""

    def __init__(self, domain: str) -> None:
        super().__init__(
            f"domain {domain} is already held by another partner; contact your channel manager"
        )
