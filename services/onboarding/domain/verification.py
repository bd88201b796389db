"""Domain ownership: an application claims a domain; the partner holds it once it proves control
by publishing the platform-issued token (a DNS TXT record on the domain, or the well-known file
on its web site). A claimed domain is the applicant's word: it is published to the other
services only once held."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from shared.addresses import ascii_host
from shared.errors import Conflict, Forbidden, Unprocessable
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


# Whose people a partner may register. A partner names a person by their mailbox (and perhaps
# their learning-system account); naming one at someone else's company took that company's
# people, their certifications and the competencies they make (found from outside). The held
# domain is the partner's proven word about which addresses are its own: a partner's admins
# name only those, and a channel manager (or a system feed) registers anyone else, audited.


def address_host(host: str, what: str) -> str:
    """`host` as DNS asks for it (A-labels, lower case, no root dot), the form held domains are
    stored in, so `Lima.EXAMPLE` and an IDN written in Unicode compare as they resolve."""
    try:
        return ascii_host(host.removesuffix("."))
    except ValueError as error:
        raise Unprocessable(f"{what} is not a host name: {error}") from None


def domains_above(host: str) -> list[str]:
    """`host` and each domain it lies under, most specific first: `mail.lima.example`,
    `lima.example`, `example` (each one a domain that could be held and cover it)."""
    labels = host.split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


def check_may_name(
    partner_id: str,
    domain: str,
    verified_at: datetime | None,
    host: str,
    holders: Mapping[str, str],
    what: str,
) -> None:
    """Whether the partner (claiming `domain`, held since `verified_at`) may name `what`, an
    address on `host`, as one of its people: only once it holds its domain (a claim is anyone's
    word: the squatter's as much as the owner's), and only at that domain or under it (proving
    the domain proves its DNS, where its subdomains are made), unless a more specific domain
    under it is held by another partner (`holders`: held domain -> partner, for the domains
    above `host`): that one's people are that partner's. Forbidden naming the rule otherwise."""
    if verified_at is None:
        raise Forbidden(
            f"partner {partner_id} does not hold its domain {domain} yet: once it has verified "
            f"it (POST /partners/{partner_id}/domain-verification) it registers people with "
            "addresses there; until then a channel manager registers its people"
        )
    if host != domain and not host.endswith("." + domain):
        raise Forbidden(
            f"{what} is not in {domain}, the domain partner {partner_id} holds: a partner "
            "registers only people with addresses in its own domain (or under it); a channel "
            "manager registers people with other addresses"
        )
    nearest = next(d for d in domains_above(host) if d in holders or d == domain)
    if holders.get(nearest, partner_id) != partner_id:
        raise Forbidden(
            f"{what} is in {nearest}, a domain another partner holds: a partner registers only "
            "people with addresses in its own domain; a channel manager decides otherwise"
        )
