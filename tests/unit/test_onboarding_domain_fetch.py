"""The well-known domain check never makes the platform call its own network: with the default
site, a domain resolving to a private, loopback, link-local or unresolvable address is not
fetched at all, and the address checked is the address connected to (no DNS rebinding)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from services.onboarding.domain.verification import WELL_KNOWN_PATH
from services.onboarding.domain_verification import (
    IpAddress,
    WellKnownFile,
    resolves_to_public_addresses,
)
from tests.support.certificates import issue
from tests.support.local_http import LocalServer, QuietHandler


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.7",
        "169.254.169.254",
        "::1",
        "fd00::1",
        # IPv6 forms a gateway turns into 169.254.169.254 (NAT64, 6to4, IPv4-compatible)
        "64:ff9b::a9fe:a9fe",
        "2002:a9fe:a9fe::1",
        "::a9fe:a9fe",
    ],
)
async def test_private_and_loopback_addresses_are_not_public(host: str) -> None:
    assert not await resolves_to_public_addresses(host)


async def test_a_public_address_is_public() -> None:
    assert await resolves_to_public_addresses("8.8.8.8")


@dataclass
class Resolver:
    """Answers `answers` in turn (the last one again after that): a DNS server that rebinds."""

    answers: list[list[str]]
    asked: int = 0

    async def __call__(self, host: str) -> list[str]:
        answer = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        return answer


@pytest.fixture(scope="module")
def partner_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, ssl.SSLContext]]:
    """`partner.test`'s web site over real TLS on a local port: a certificate for that name,
    the token at the well-known path, and only for requests whose Host is `partner.test`.
    Yields the port and a client context that trusts the certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "partner.test")])
    certificate = issue(
        name,
        name,
        key,
        key,
        days=1,
        extensions=[
            (x509.SubjectAlternativeName([x509.DNSName("partner.test")]), False),
            (x509.BasicConstraints(ca=True, path_length=None), True),
        ],
    )
    folder = tmp_path_factory.mktemp("site")
    (folder / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    class Site(QuietHandler):
        def do_GET(self) -> None:
            right = self.headers.get("Host") == "partner.test" and self.path == WELL_KNOWN_PATH
            body = b"pollinate-verification=token-1\n" if right else b""
            self.send_response(200 if right else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    site = LocalServer(Site)
    serving = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    serving.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    site.server.socket = serving.wrap_socket(site.server.socket, server_side=True)
    trusting = ssl.create_default_context(cafile=str(folder / "cert.pem"))
    with site:
        yield site.server.server_address[1], trusting


def loopback_allowed(address: IpAddress) -> bool:
    """The test site is on loopback: allowed here, so the check has something to reach."""
    return address.is_loopback


async def test_the_fetch_goes_to_the_address_that_was_checked(
    partner_site: tuple[int, ssl.SSLContext],
) -> None:
    """DNS rebinding: the domain answers an allowed address when checked and another one when
    connected to. The domain is resolved once; the request goes to the checked address, with
    the domain's name for TLS and Host, so the second answer is never used."""
    port, trusting = partner_site
    rebinding = Resolver([["127.0.0.1"], ["169.254.169.254"]])
    site = WellKnownFile(
        resolve=rebinding, allowed=loopback_allowed, tls=trusting, port=port, timeout=5
    )
    assert await site.published("partner.test") == ["pollinate-verification=token-1"]
    assert rebinding.asked == 1


async def test_a_domain_with_any_disallowed_address_is_not_fetched(
    partner_site: tuple[int, ssl.SSLContext],
) -> None:
    port, trusting = partner_site
    mixed = Resolver([["127.0.0.1", "10.0.0.5"]])
    site = WellKnownFile(resolve=mixed, allowed=loopback_allowed, tls=trusting, port=port)
    assert await site.published("partner.test") == []
