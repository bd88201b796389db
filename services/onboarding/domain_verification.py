"""Checking a claimed domain: where the platform looks for the partner's token. One small
interface (`DomainVerifier`) with two methods, chosen by setting: DNS TXT records asked of a
configured nameserver (the standard), or the well-known file on the domain's web site (the
site's address configurable, so a local server can play the partner's site)."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdtypes.ANY.TXT
import httpx

from services.onboarding.domain.verification import WELL_KNOWN_PATH
from shared.addresses import is_public

# What a UDP answer may carry (the DNS flag day's size, safe from fragmentation): larger ones
# come back truncated and are asked for again over TCP.
EDNS_PAYLOAD = 1232
MAX_FILE_BYTES = 4096
DEFAULT_SITE = "https://{domain}"


IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


async def system_addresses(host: str) -> list[str]:
    """The addresses the system resolver gives for `host` (none when it does not resolve)."""
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, 443)
    except (OSError, UnicodeError):
        return []
    return [str(info[4][0]) for info in found]


async def public_address(
    host: str,
    resolve: Callable[[str], Awaitable[list[str]]] = system_addresses,
    allowed: Callable[[IpAddress], bool] = is_public,
) -> IpAddress | None:
    """The address to connect to for `host`: resolved once, and only when every address it
    resolves to is public (None otherwise, or when it does not resolve). Callers bound the
    time (the resolver's own timeouts apply too)."""
    addresses = sorted(
        {ipaddress.ip_address(a.split("%")[0]) for a in await resolve(host)}, key=str
    )
    if not addresses or not all(allowed(address) for address in addresses):
        return None
    return addresses[0]


async def resolves_to_public_addresses(host: str) -> bool:
    """Whether every address `host` resolves to is a public one (and it resolves at all)."""
    return await public_address(host) is not None


class DomainVerifier(Protocol):
    def where(self, domain: str) -> str:
        """Where the token is looked for (told to the partner when it is not found)."""
        ...

    async def published(self, domain: str) -> list[str]:
        """The texts the domain publishes there (none when nothing answers)."""
        ...


@dataclass(frozen=True)
class WellKnownFile:
    """`<site>/.well-known/pollinate-verification.txt`, the site being `https://<domain>`
    unless `site` (a template with `{domain}`) says otherwise. No redirects are followed.

    With the default site the applicant's domain decides where the platform connects, so a
    domain that resolves to a private, loopback, link-local or otherwise non-public address is
    not fetched at all (the platform must not be made to call its own network), and the
    address checked is the address connected to: the domain is resolved once and the request
    goes to that address (TLS name and Host header still the domain's), so a second, different
    DNS answer (rebinding) cannot send the fetch elsewhere. An operator's `site` template is
    trusted configuration (tests point it at a local server)."""

    site: str = DEFAULT_SITE
    timeout: float = 5.0
    resolve: Callable[[str], Awaitable[list[str]]] = system_addresses
    allowed: Callable[[IpAddress], bool] = is_public
    tls: ssl.SSLContext | bool = True
    port: int = 443  # the domain's HTTPS port (tests serve on one of their own)

    def where(self, domain: str) -> str:
        return self.site.format(domain=domain) + WELL_KNOWN_PATH

    async def published(self, domain: str) -> list[str]:
        url, headers, extensions = self.where(domain), {}, {}
        if self.site == DEFAULT_SITE:
            try:
                async with asyncio.timeout(self.timeout):
                    address = await public_address(domain, self.resolve, self.allowed)
            except TimeoutError:
                address = None
            if address is None:
                return []
            host = f"[{address}]" if address.version == 6 else str(address)
            url = f"https://{host}:{self.port}{WELL_KNOWN_PATH}"
            headers, extensions = {"Host": domain}, {"sni_hostname": domain}
        return await self._fetch(url, headers, extensions)

    async def _fetch(
        self, url: str, headers: dict[str, str], extensions: dict[str, str]
    ) -> list[str]:
        try:
            async with (
                httpx.AsyncClient(
                    timeout=self.timeout, follow_redirects=False, verify=self.tls
                ) as client,
                client.stream("GET", url, headers=headers, extensions=extensions) as response,
            ):
                if response.status_code != 200:
                    return []
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_FILE_BYTES:
                        return []
        except httpx.HTTPError:
            return []
        return body.decode("utf-8", errors="replace").splitlines()


@dataclass(frozen=True)
class DnsTxt:
    """TXT records of the domain, asked of `nameserver` (host:port) by dnspython's resolver:
    over UDP with EDNS0 (answers up to EDNS_PAYLOAD bytes), and again over TCP when the answer
    comes back truncated. The hand-written UDP query before it sent no EDNS record and read a
    truncated answer as the whole one: a company's domain whose TXT records (SPF, other
    providers' verification strings) passed 512 bytes never showed the token (found in
    review)."""

    nameserver: str = "1.1.1.1:53"
    timeout: float = 5.0

    def where(self, domain: str) -> str:
        return f"the TXT records of {domain} (nameserver {self.nameserver})"

    async def published(self, domain: str) -> list[str]:
        host, _, port = self.nameserver.rpartition(":")
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = int(port)
        resolver.use_edns(0, 0, EDNS_PAYLOAD)
        try:
            answer = await resolver.resolve(
                dns.name.from_text(domain), "TXT", search=False, lifetime=self.timeout
            )
        except (dns.exception.DNSException, OSError, ValueError):
            return []  # no such domain, no TXT record, no answer in time: nothing proven
        return [
            b"".join(record.strings).decode("utf-8", errors="replace")
            for record in answer
            if isinstance(record, dns.rdtypes.ANY.TXT.TXT)
        ]
