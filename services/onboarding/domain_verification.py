"""Checking a claimed domain: where the platform looks for the partner's token. One small
interface (`DomainVerifier`) with two methods, chosen by setting: DNS TXT records asked of a
configured nameserver (the standard), or the well-known file on the domain's web site (the
site's address configurable, so a local server can play the partner's site)."""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import ssl
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import httpx

from services.onboarding.domain.verification import WELL_KNOWN_PATH
from shared.addresses import is_public

TXT = 16
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
    """TXT records of the domain, asked of `nameserver` (host:port) over UDP."""

    nameserver: str = "1.1.1.1:53"
    timeout: float = 5.0

    def where(self, domain: str) -> str:
        return f"the TXT records of {domain} (nameserver {self.nameserver})"

    async def published(self, domain: str) -> list[str]:
        host, _, port = self.nameserver.rpartition(":")
        query_id = secrets.randbelow(1 << 16)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bytes] = loop.create_future()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Answer(answer), remote_addr=(host, int(port))
            )
        except OSError:
            return []
        try:
            transport.sendto(txt_query(query_id, domain))
            return txt_answers(await asyncio.wait_for(answer, self.timeout), query_id)
        except (TimeoutError, ValueError, struct.error):
            return []
        finally:
            transport.close()


class _Answer(asyncio.DatagramProtocol):
    def __init__(self, answer: asyncio.Future[bytes]) -> None:
        self.answer = answer

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if not self.answer.done():
            self.answer.set_result(data)


def txt_query(query_id: int, domain: str) -> bytes:
    """A recursive DNS query for the TXT records of `domain`."""
    name = b"".join(
        bytes([len(label)]) + label for label in domain.encode("idna").split(b".") if label
    )
    return (
        struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0)
        + name
        + b"\0"
        + struct.pack("!HH", TXT, 1)
    )


def _skip_name(message: bytes, at: int) -> int:
    while True:
        length = message[at]
        if length & 0xC0 == 0xC0:  # a compression pointer ends the name
            return at + 2
        if length == 0:
            return at + 1
        at += 1 + length


def txt_answers(message: bytes, query_id: int) -> list[str]:
    """The TXT records of a DNS response to `query_id` (each record's strings joined)."""
    answer_id, flags, questions, answers, _, _ = struct.unpack("!HHHHHH", message[:12])
    if answer_id != query_id or not flags & 0x8000 or flags & 0x000F:
        return []
    at = 12
    for _ in range(questions):
        at = _skip_name(message, at) + 4
    texts: list[str] = []
    for _ in range(answers):
        at = _skip_name(message, at)
        kind, _, _, length = struct.unpack("!HHIH", message[at : at + 10])
        at += 10
        data, at = message[at : at + length], at + length
        if kind != TXT:
            continue
        parts, i = [], 0
        while i < len(data):
            parts.append(data[i + 1 : i + 1 + data[i]])
            i += 1 + data[i]
        texts.append(b"".join(parts).decode("utf-8", errors="replace"))
    return texts
