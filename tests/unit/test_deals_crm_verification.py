"""Each CRM source's verification without infrastructure: HubSpot's v3 signature and its URI,
the Standard Webhooks relay, EventBridge's API key, Partner Center's certificate checks; the
settings production refuses."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from services.deals.settings import LOCAL_AWS_ACE_API_KEY, DealsSettings
from services.deals.verification import (
    MicrosoftCertificates,
    SignatureRefused,
    SourceRefused,
    check_portals,
    hubspot_uri,
    verify_aws_ace,
    verify_hubspot,
    verify_salesforce,
)
from tests.support.certificates import issue
from tests.support.crm import (
    CertificateHost,
    MicrosoftSigner,
    aws_ace_headers,
    hubspot_headers,
    salesforce_headers,
)

URI = "https://deals.example/crm/hubspot"
BODY = b'[{"objectId": 1, "portalId": 44556677}]'
AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SETTINGS = DealsSettings()


def _lower(headers: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def test_a_fresh_correct_hubspot_signature_is_accepted() -> None:
    headers = _lower(hubspot_headers(BODY, URI, at=AT - timedelta(minutes=4)))
    verify_hubspot(SETTINGS, "POST", URI, BODY, headers, AT)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "X-HubSpot-Signature-v3 and X-HubSpot-Request-Timestamp are required"),
        (hubspot_headers(BODY, URI, at=AT - timedelta(minutes=6)), "older than 5 minutes"),
        (hubspot_headers(BODY, URI, at=AT + timedelta(minutes=6)), "more than 5 minutes ahead"),
        (hubspot_headers(b"[]", URI, at=AT), "X-HubSpot-Signature-v3 does not match"),
        (hubspot_headers(BODY, URI + "?x=1", at=AT), "X-HubSpot-Signature-v3 does not match"),
        (hubspot_headers(BODY, URI, secret="another-app-secret", at=AT), "does not match"),
        (
            {**hubspot_headers(BODY, URI, at=AT), "X-HubSpot-Request-Timestamp": "1e3"},
            "must be epoch milliseconds",
        ),
    ],
)
def test_a_missing_stale_or_wrong_hubspot_signature_is_refused(
    headers: dict[str, str], message: str
) -> None:
    with pytest.raises(SignatureRefused, match=message) as refused:
        verify_hubspot(SETTINGS, "POST", URI, BODY, _lower(headers), AT)
    assert refused.value.status == 401


def test_hubspot_signs_the_public_url_with_its_escapes_decoded() -> None:
    assert (
        hubspot_uri("https://deals.example/", "http://10.0.0.5:8002/", "/crm/hubspot", "")
        == "https://deals.example/crm/hubspot"
    )
    assert (
        hubspot_uri("", "http://127.0.0.1:8002/", "/crm/hubspot", "a=b%3Ac%2Fd%40e%2c")
        == "http://127.0.0.1:8002/crm/hubspot?a=b:c/d@e,"
    )


def test_a_batch_with_no_event_from_a_configured_portal_is_refused_whole() -> None:
    check_portals(SETTINGS, [{"portalId": 44556677}, {"objectId": 1}])
    # One configured portal in the batch: the foreign event is refused on its own later.
    check_portals(SETTINGS, [{"portalId": 5}, {"portalId": "44556677"}])
    with pytest.raises(SourceRefused, match=r"\[0\]\.portalId '5' is not a HubSpot portal") as no:
        check_portals(SETTINGS, [{"portalId": 5}, {"portalId": 6}])
    assert no.value.status == 403


def test_the_salesforce_relay_is_verified_with_standard_webhooks() -> None:
    verify_salesforce(SETTINGS, BODY, _lower(salesforce_headers(BODY)))
    wrong = {
        "missing": {},
        "another secret": salesforce_headers(
            BODY, secret="whsec_" + "b3RoZXItcmVsYXktc2VjcmV0LW5vdC1vdXJzLTEyMw=="
        ),
        "stale": salesforce_headers(BODY, at=datetime.now(UTC) - timedelta(minutes=6)),
        "tampered": {**salesforce_headers(BODY), "webhook-signature": "v1,bm90IGl0"},
        "not base64": {**salesforce_headers(BODY), "webhook-signature": "v1"},
    }
    for why, headers in wrong.items():
        with pytest.raises(SignatureRefused) as refused:
            verify_salesforce(SETTINGS, BODY, _lower(headers))
        assert refused.value.status == 401, why
    with pytest.raises(SignatureRefused, match="malformed signature"):
        verify_salesforce(SETTINGS, b"\xff", _lower(salesforce_headers(BODY)))


def test_the_eventbridge_api_key_header_is_checked() -> None:
    verify_aws_ace(SETTINGS, _lower(aws_ace_headers()))
    with pytest.raises(SignatureRefused, match="the x-api-key header is required"):
        verify_aws_ace(SETTINGS, {})
    with pytest.raises(SignatureRefused, match="the x-api-key header does not match"):
        verify_aws_ace(SETTINGS, {"x-api-key": LOCAL_AWS_ACE_API_KEY + "x"})
    custom = DealsSettings(aws_ace_api_key_header="x-pollinate-key")
    with pytest.raises(SignatureRefused, match="x-pollinate-key header is required"):
        verify_aws_ace(custom, _lower(aws_ace_headers()))


def test_without_a_credential_every_source_is_closed() -> None:
    closed = DealsSettings(
        hubspot_client_secret="", salesforce_webhook_secret="", aws_ace_api_key=""
    )
    assert closed.closed_sources() == ["hubspot", "salesforce", "aws-ace", "microsoft"]
    with pytest.raises(SignatureRefused, match="HubSpot deliveries are not accepted"):
        verify_hubspot(closed, "POST", URI, BODY, _lower(hubspot_headers(BODY, URI)), AT)
    with pytest.raises(SignatureRefused, match="Salesforce deliveries are not accepted"):
        verify_salesforce(closed, BODY, _lower(salesforce_headers(BODY)))
    with pytest.raises(SignatureRefused, match="AWS ACE deliveries are not accepted"):
        verify_aws_ace(closed, _lower(aws_ace_headers()))


def test_production_refuses_the_committed_crm_credentials_but_not_a_closed_source() -> None:
    assert DealsSettings().production_problems() == [
        "DEALS_HUBSPOT_CLIENT_SECRET (the HubSpot app's client secret, or empty to close HubSpot)",
        "DEALS_HUBSPOT_PORTAL_IDS (the HubSpot portals to ingest)",
        "DEALS_SALESFORCE_WEBHOOK_SECRET (whsec_ and 24+ bytes in base64, or empty to close "
        "Salesforce)",
        "DEALS_AWS_ACE_API_KEY (a key of 32+ characters, or empty to close AWS ACE)",
    ]
    real = DealsSettings(
        hubspot_client_secret="h" * 36,
        hubspot_portal_ids="1234, 5678",
        salesforce_webhook_secret="whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=",
        aws_ace_api_key="",
    )
    assert real.production_problems() == []
    assert real.portals == frozenset({"1234", "5678"})
    short = DealsSettings(hubspot_client_secret="", salesforce_webhook_secret="whsec_c2hvcnQ=")
    assert "DEALS_SALESFORCE_WEBHOOK_SECRET" in short.production_problems()[0]
    # Found in review: a CRM API over plain http was taken, its bearer token sent in the clear.
    clear = real.model_copy(
        update={"salesforce_instance_url": "http://acme.my.salesforce.com", "hubspot_api_url": ""}
    )
    assert clear.production_problems() == [
        "DEALS_SALESFORCE_INSTANCE_URL (https://: the CRM's API is called with its credentials)"
    ]


@pytest.fixture(scope="module")
def host() -> Iterator[CertificateHost]:
    with CertificateHost() as serving:
        yield serving


async def test_partner_center_signature_by_an_allowed_trusted_certificate(
    host: CertificateHost, tmp_path: Path
) -> None:
    signer = MicrosoftSigner.create()
    issuers = tmp_path / "issuers.pem"
    issuers.write_bytes(signer.ca_pem)
    settings = DealsSettings(
        microsoft_certificate_origins=f"https://elsewhere.example, {host.origin}/",
        microsoft_certificate_issuers=str(issuers),
    )
    url = host.serve(f"/{tmp_path.name}.cer", signer.certificate_der)
    certificates = MicrosoftCertificates(settings)
    now = datetime.now(UTC)
    await certificates.verify(BODY, _lower(signer.headers(BODY, url)), now)
    await certificates.verify(BODY, _lower(signer.headers(BODY, url, "rsa-sha512")), now)

    async def refused(headers: dict[str, str], at: datetime = now) -> str:
        with pytest.raises(SignatureRefused) as error:
            await MicrosoftCertificates(settings).verify(BODY, _lower(headers), at)
        return error.value.message

    good = signer.headers(BODY, url)
    assert await refused({}) == "Authorization: Signature <base64 signature> is required"
    assert await refused({**good, "Authorization": "Bearer x"}) == (
        "Authorization: Signature <base64 signature> is required"
    )
    assert await refused({**good, "X-MS-Signature-Algorithm": "rsa-sha1"}) == (
        "X-MS-Signature-Algorithm 'rsa-sha1' is not accepted (rsa-sha256, rsa-sha384, rsa-sha512)"
    )
    assert await refused(signer.headers(b"[]", url)) == (
        "the Authorization signature does not match the body"
    )
    assert await refused({**good, "Authorization": "Signature !!"}) == (
        "the Authorization signature does not match the body"
    )
    assert await refused(good, now + timedelta(days=60)) == (
        "the signing certificate is not valid now"
    )
    # Issued by a CA of another organisation, or by one nobody configured.
    other = MicrosoftSigner.create(organization="Contoso Ltd")
    other_url = host.serve(f"/{tmp_path.name}-other.cer", other.certificate_der)
    assert await refused(other.headers(BODY, other_url)) == (
        "the signing certificate is not issued by Microsoft Corporation"
    )
    rogue = MicrosoftSigner.create()
    rogue_url = host.serve(f"/{tmp_path.name}-rogue.cer", rogue.certificate_der)
    assert await refused(rogue.headers(BODY, rogue_url)) == (
        "the signing certificate does not chain to a trusted issuer"
    )
    garbage_url = host.serve(f"/{tmp_path.name}-garbage.cer", b"not a certificate")
    assert await refused(signer.headers(BODY, garbage_url)) == (
        "X-MS-Certificate-Url did not serve a certificate"
    )
    assert await refused(signer.headers(BODY, "https://evil.example/cert.cer")) == (
        "X-MS-Certificate-Url 'https://evil.example' is not an allowed certificate origin"
    )
    unreachable = DealsSettings(
        microsoft_certificate_origins="http://127.0.0.1:9",
        microsoft_certificate_issuers=str(issuers),
    )
    with pytest.raises(SignatureRefused, match="could not be fetched"):
        await MicrosoftCertificates(unreachable).verify(
            BODY, _lower(signer.headers(BODY, "http://127.0.0.1:9/c.cer")), now
        )
    with pytest.raises(SignatureRefused, match="Microsoft Partner Center deliveries"):
        await MicrosoftCertificates(DealsSettings()).verify(BODY, _lower(good), now)


async def test_certificate_urls_are_fetched_sparingly_before_any_signature_is_checked(
    host: CertificateHost, tmp_path: Path
) -> None:
    """Found in review: each anonymous delivery naming a new URL under the allowed host (a
    query, a path) built a TLS client and fetched from the host, before the signature was
    checked. A query is refused unfetched; a URL that served no certificate is not fetched
    again for a minute; at most 30 fetches start a minute."""
    signer = MicrosoftSigner.create()
    issuers = tmp_path / "issuers.pem"
    issuers.write_bytes(signer.ca_pem)
    settings = DealsSettings(
        microsoft_certificate_origins=host.origin, microsoft_certificate_issuers=str(issuers)
    )
    certificates = MicrosoftCertificates(settings)
    now = datetime.now(UTC)
    url = host.serve(f"/{tmp_path.name}.cer", signer.certificate_der)
    before = len(host.requested)

    async def refused(at_url: str) -> str:
        with pytest.raises(SignatureRefused) as error:
            await certificates.verify(BODY, _lower(signer.headers(BODY, at_url)), now)
        return error.value.message

    assert await refused(f"{url}?nonce=1") == (
        "X-MS-Certificate-Url names a certificate file: no query or fragment"
    )
    assert len(host.requested) == before
    missing = f"{host.origin}/{tmp_path.name}-missing.cer"
    for _ in range(3):
        assert await refused(missing) == "X-MS-Certificate-Url answered 404, not a certificate"
    assert host.requested[before:] == [f"/{tmp_path.name}-missing.cer"]
    for n in range(29):
        await refused(f"{host.origin}/{tmp_path.name}-{n}.cer")
    assert await refused(f"{host.origin}/{tmp_path.name}-one-more.cer") == (
        "too many X-MS-Certificate-Url fetches this minute: try again later"
    )
    assert len(host.requested) == before + 30


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Microsoft Corporation"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _issue(
    subject: str, issuer: str, key: rsa.RSAPrivateKey, by: rsa.RSAPrivateKey, ca: bool | None
) -> x509.Certificate:
    """`subject`'s certificate for `key`, signed by `by` as `issuer`; `ca` None: no
    basicConstraints (an end-entity certificate)."""
    constraints = [] if ca is None else [(x509.BasicConstraints(ca=ca, path_length=None), True)]
    return issue(_name(subject), _name(issuer), key, by, extensions=constraints)


async def test_partner_center_certificate_chains_through_served_intermediates(
    host: CertificateHost, tmp_path: Path
) -> None:
    """Partner Center's signing certificate is issued by an intermediate CA, not by the root
    that is configured: the URL serves the signing certificate and its intermediate, and the
    chain is built up to the configured root; a chain that misses its intermediate, or whose
    "intermediate" is no CA, is refused."""
    root_key, middle_key, signing_key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)
    )
    root = _issue("Root", "Root", root_key, root_key, ca=True)
    middle = _issue("Intermediate", "Root", middle_key, root_key, ca=True)
    signing = _issue("pcnotifications", "Intermediate", signing_key, middle_key, ca=None)
    not_a_ca = _issue("Intermediate", "Root", middle_key, root_key, ca=False)
    issuers = tmp_path / "root.pem"
    issuers.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    settings = DealsSettings(
        microsoft_certificate_origins=host.origin, microsoft_certificate_issuers=str(issuers)
    )
    signer = MicrosoftSigner(
        ca_pem=b"",
        certificate_der=signing.public_bytes(serialization.Encoding.DER),
        key=signing_key,
    )

    def pem(*certificates: x509.Certificate) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)

    now = datetime.now(UTC)
    chained = host.serve(f"/{tmp_path.name}-chain.pem", pem(signing, middle))
    await MicrosoftCertificates(settings).verify(BODY, _lower(signer.headers(BODY, chained)), now)

    for path, served in (("alone", pem(signing)), ("not-a-ca", pem(signing, not_a_ca))):
        url = host.serve(f"/{tmp_path.name}-{path}.pem", served)
        with pytest.raises(SignatureRefused, match="does not chain to a trusted issuer"):
            await MicrosoftCertificates(settings).verify(
                BODY, _lower(signer.headers(BODY, url)), now
            )
