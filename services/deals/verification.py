"""Who sent a CRM delivery: each source verified the way it really signs or delivers, before
anything in the body is read. Fail closed: a source without a configured credential refuses
everything.

- HubSpot: `X-HubSpot-Signature-v3`, base64 HMAC-SHA256 with the app's client secret over
  method + URI + body + `X-HubSpot-Request-Timestamp` (at most 5 minutes old).
- Salesforce: CDC relayed by a subscriber that signs with Standard Webhooks (`webhook-id`,
  `webhook-timestamp`, `webhook-signature`), verified by the specification's own library.
- AWS Partner Central: EventBridge's API destination sends the connection's API key header.
- Microsoft Partner Center: `Authorization: Signature <base64>`, an RSA signature of the body
  by the certificate at `X-MS-Certificate-Url` (an allowed origin; the signing certificate
  first, then any intermediates; a chain to a configured CA built and checked by
  cryptography's X.509 verifier, the issuer naming the configured organisation), hash from
  `X-MS-Signature-Algorithm`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import ssl
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.deals.settings import DealsSettings
from shared.errors import RequestError

SIGNATURE_MAX_AGE_MS = 5 * 60 * 1000
# HubSpot signs the URI with these escapes decoded (its request-validation documentation).
_HUBSPOT_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_ESCAPE = re.compile("|".join(_HUBSPOT_DECODED), re.IGNORECASE)
MICROSOFT_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "rsa-sha256": hashes.SHA256,
    "rsa-sha384": hashes.SHA384,
    "rsa-sha512": hashes.SHA512,
}
CERTIFICATE_MAX_BYTES = 64 * 1024
CERTIFICATE_CACHE_SECONDS = 3600.0
# A URL that served no certificate is not fetched again for this long, and at most this many
# fetches start a minute: found in review, an anonymous sender naming a new URL under the
# allowed host with each delivery (a query, a path) had deals build a TLS client (about 25 ms
# of the event loop) and fetch from Microsoft's host every time, before any signature check.
CERTIFICATE_FAILURE_SECONDS = 60.0
CERTIFICATE_FETCHES_PER_MINUTE = 30


class SignatureRefused(RequestError):
    """The delivery's credential or signature is missing, stale or wrong."""

    status = 401


class SourceRefused(RequestError):
    """Authentic, but from an account the platform does not ingest (a HubSpot portal)."""

    status = 403


def closed(source: str) -> SignatureRefused:
    return SignatureRefused(f"{source} deliveries are not accepted: no credential is configured")


def hubspot_uri(public_base_url: str, arrived_at: str, path: str, query: str) -> str:
    """The URI HubSpot signed: the public URL it called (or the one the request arrived at),
    with the escapes HubSpot decodes decoded."""
    base = (public_base_url or arrived_at).rstrip("/")
    uri = base + path + (f"?{query}" if query else "")
    return _ESCAPE.sub(lambda m: _HUBSPOT_DECODED[m.group(0).upper()], uri)


def verify_hubspot(
    settings: DealsSettings,
    method: str,
    uri: str,
    raw: bytes,
    headers: Mapping[str, str],
    at: datetime,
) -> None:
    secret = settings.hubspot_client_secret.get_secret_value()
    if "hubspot" in settings.closed_sources():
        raise closed("HubSpot")
    signature = headers.get("x-hubspot-signature-v3")
    timestamp = headers.get("x-hubspot-request-timestamp")
    if not signature or not timestamp:
        raise SignatureRefused(
            "X-HubSpot-Signature-v3 and X-HubSpot-Request-Timestamp are required"
        )
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 15:
        raise SignatureRefused("X-HubSpot-Request-Timestamp must be epoch milliseconds")
    if at.timestamp() * 1000 - int(timestamp) > SIGNATURE_MAX_AGE_MS:
        raise SignatureRefused("X-HubSpot-Request-Timestamp is older than 5 minutes")
    if int(timestamp) - at.timestamp() * 1000 > SIGNATURE_MAX_AGE_MS:
        raise SignatureRefused("X-HubSpot-Request-Timestamp is more than 5 minutes ahead")
    message = method.encode() + uri.encode() + raw + timestamp.encode()
    expected = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest())
    if not signature.isascii() or not hmac.compare_digest(expected, signature.encode()):
        raise SignatureRefused("X-HubSpot-Signature-v3 does not match")


def check_portals(settings: DealsSettings, payload: object) -> None:
    """A batch none of whose events comes from a portal the platform ingests was not meant
    for it: 403 naming the first. Otherwise each foreign event is refused on its own (by the
    ingestion), so its neighbours are not lost: HubSpot does not retry a 4xx."""
    if not isinstance(payload, list):
        return
    allowed = settings.portals
    foreign: tuple[int, object] | None = None
    for index, event in enumerate(payload):
        portal = event.get("portalId") if isinstance(event, dict) else None
        if portal is None or isinstance(portal, bool) or not isinstance(portal, int | str):
            return  # left to the adapter, which names the missing or wrong field
        if str(portal) in allowed:
            return
        foreign = foreign or (index, portal)
    if foreign is not None:
        index, portal = foreign
        raise SourceRefused(
            f"[{index}].portalId {str(portal)[:32]!r} is not a HubSpot portal this platform ingests"
        )


def verify_salesforce(settings: DealsSettings, raw: bytes, headers: Mapping[str, str]) -> None:
    secret = settings.salesforce_webhook_secret.get_secret_value()
    if not secret:
        raise closed("Salesforce")
    wanted = ("webhook-id", "webhook-timestamp", "webhook-signature")
    if not all(headers.get(name) for name in wanted):
        raise SignatureRefused("webhook-id, webhook-timestamp and webhook-signature are required")
    try:
        Webhook(secret).verify(raw, {name: headers[name] for name in wanted}, json_parse=False)
    except WebhookVerificationError as error:
        raise SignatureRefused(f"webhook-signature refused: {error}") from error
    except ValueError as error:  # a body that is not UTF-8, a signature that is not base64
        raise SignatureRefused("webhook-signature refused: malformed signature") from error


def verify_aws_ace(settings: DealsSettings, headers: Mapping[str, str]) -> None:
    expected = settings.aws_ace_api_key.get_secret_value()
    name = settings.aws_ace_api_key_header
    if not expected or not name:
        raise closed("AWS ACE")
    given = headers.get(name)
    if not given:
        raise SignatureRefused(f"the {name} header is required")
    if not hmac.compare_digest(expected.encode(), given.encode(errors="surrogateescape")):
        raise SignatureRefused(f"the {name} header does not match")


# Partner Center's signing certificate is not a web server's: no name or key-usage profile is
# imposed on it, but every issuer on the way up must be a CA (basicConstraints cA asserted).
_CA_POLICY = ExtensionPolicy.permit_all().require_present(
    x509.BasicConstraints, Criticality.AGNOSTIC, None
)
MAX_CHAIN_DEPTH = 4


@dataclass(frozen=True)
class SigningChain:
    """What the certificate URL served: the signing certificate, then its intermediates."""

    signer: x509.Certificate
    intermediates: tuple[x509.Certificate, ...]


@dataclass
class MicrosoftCertificates:
    """Partner Center's signing certificates: fetched only from allowed origins, checked
    against the configured issuers and organisation, cached an hour per URL."""

    settings: DealsSettings
    cache: dict[str, tuple[float, SigningChain]] = field(default_factory=dict)
    issuers: list[x509.Certificate] = field(default_factory=list)
    failed: dict[str, tuple[float, str]] = field(default_factory=dict)
    fetches: deque[float] = field(default_factory=deque)
    # One TLS context for every fetch: building one is most of a client's cost.
    tls: ssl.SSLContext = field(default_factory=httpx.create_ssl_context)

    def __post_init__(self) -> None:
        path = self.settings.microsoft_certificate_issuers
        if path and not self.issuers:
            self.issuers = x509.load_pem_x509_certificates(Path(path).read_bytes())

    async def chain(self, url: str) -> SigningChain:
        at = time.monotonic()
        cached = self.cache.get(url)
        if cached and at - cached[0] < CERTIFICATE_CACHE_SECONDS:
            return cached[1]
        failure = self.failed.get(url)
        if failure and at - failure[0] < CERTIFICATE_FAILURE_SECONDS:
            raise SignatureRefused(failure[1])
        while self.fetches and at - self.fetches[0] >= 60.0:
            self.fetches.popleft()
        if len(self.fetches) >= CERTIFICATE_FETCHES_PER_MINUTE:
            raise SignatureRefused(
                "too many X-MS-Certificate-Url fetches this minute: try again later"
            )
        self.fetches.append(at)
        try:
            chain = await self._fetch(url)
        except SignatureRefused as refused:
            if len(self.failed) > 256:
                self.failed.clear()
            self.failed[url] = (at, refused.message)
            raise
        if len(self.cache) > 16:
            self.cache.clear()
        self.cache[url] = (at, chain)
        return chain

    async def _fetch(self, url: str) -> SigningChain:
        try:
            async with httpx.AsyncClient(
                timeout=5.0, follow_redirects=False, verify=self.tls
            ) as client:
                response = await client.get(url)
        except httpx.HTTPError as error:
            raise SignatureRefused("X-MS-Certificate-Url could not be fetched") from error
        if response.status_code != 200 or len(response.content) > CERTIFICATE_MAX_BYTES:
            raise SignatureRefused(
                f"X-MS-Certificate-Url answered {response.status_code}, not a certificate"
            )
        return _load_chain(response.content)

    async def verify(self, raw: bytes, headers: Mapping[str, str], at: datetime) -> None:
        if "microsoft" in self.settings.closed_sources():
            raise closed("Microsoft Partner Center")
        scheme, _, signature = (headers.get("authorization") or "").partition(" ")
        url = headers.get("x-ms-certificate-url")
        algorithm = (headers.get("x-ms-signature-algorithm") or "").lower()
        if scheme != "Signature" or not signature.strip():
            raise SignatureRefused("Authorization: Signature <base64 signature> is required")
        if not url or not algorithm:
            raise SignatureRefused("X-MS-Certificate-Url and X-MS-Signature-Algorithm are required")
        if algorithm not in MICROSOFT_HASHES:
            raise SignatureRefused(
                f"X-MS-Signature-Algorithm {algorithm[:32]!r} is not accepted "
                f"({', '.join(MICROSOFT_HASHES)})"
            )
        try:
            parts = urlsplit(url)
        except ValueError as error:  # "https://[": an invalid IPv6 host answered 500
            raise SignatureRefused("X-MS-Certificate-Url is not a URL") from error
        origin = f"{parts.scheme}://{parts.netloc}".lower()
        if origin not in self.settings.certificate_origins:
            raise SignatureRefused(
                f"X-MS-Certificate-Url {origin[:100]!r} is not an allowed certificate origin"
            )
        if parts.query or parts.fragment or "?" in url or "#" in url:
            raise SignatureRefused(
                "X-MS-Certificate-Url names a certificate file: no query or fragment"
            )
        chain = await self.chain(url)
        self._check(chain, at)
        key = chain.signer.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise SignatureRefused("the signing certificate does not hold an RSA key")
        try:
            key.verify(
                base64.b64decode(signature.strip(), validate=True),
                raw,
                padding.PKCS1v15(),
                MICROSOFT_HASHES[algorithm](),
            )
        except (InvalidSignature, binascii.Error, ValueError) as error:
            raise SignatureRefused("the Authorization signature does not match the body") from error

    def _check(self, chain: SigningChain, at: datetime) -> None:
        """The signer's issuer names the configured organisation, and a chain through the
        served intermediates reaches a configured CA, every certificate valid at `at`."""
        organizations = chain.signer.issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        wanted = self.settings.microsoft_certificate_organization
        if not any(attribute.value == wanted for attribute in organizations):
            raise SignatureRefused(f"the signing certificate is not issued by {wanted}")
        if not self.issuers:
            raise SignatureRefused("no trusted issuer is configured for Partner Center")
        verifier = (
            PolicyBuilder()
            .store(Store(self.issuers))
            .time(at)
            .max_chain_depth(MAX_CHAIN_DEPTH)
            .extension_policies(ca_policy=_CA_POLICY, ee_policy=ExtensionPolicy.permit_all())
            .build_client_verifier()
        )
        try:
            verifier.verify(chain.signer, list(chain.intermediates))
        except VerificationError as error:
            if not chain.signer.not_valid_before_utc <= at <= chain.signer.not_valid_after_utc:
                raise SignatureRefused("the signing certificate is not valid now") from error
            raise SignatureRefused(
                "the signing certificate does not chain to a trusted issuer"
            ) from error


def _load_chain(content: bytes) -> SigningChain:
    """A .cer as published (DER, or PEM), or a PEM bundle: the signing certificate first, then
    its intermediates."""
    try:
        if content.lstrip().startswith(b"-----BEGIN"):
            certificates = x509.load_pem_x509_certificates(content)
        else:
            certificates = [x509.load_der_x509_certificate(content)]
    except ValueError as error:
        raise SignatureRefused("X-MS-Certificate-Url did not serve a certificate") from error
    if len(certificates) > MAX_CHAIN_DEPTH:
        raise SignatureRefused(
            f"X-MS-Certificate-Url served more than {MAX_CHAIN_DEPTH} certificates"
        )
    return SigningChain(certificates[0], tuple(certificates[1:]))
