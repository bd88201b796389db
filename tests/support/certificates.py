"""X.509 certificates for the local servers that play outside parties over real TLS."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa


def issue(
    subject: x509.Name,
    issuer: x509.Name,
    key: rsa.RSAPrivateKey,
    by: rsa.RSAPrivateKey,
    *,
    days: int = 30,
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> x509.Certificate:
    """`subject`'s certificate for `key`, signed by `by` as `issuer` (the same name and key:
    self-signed), valid from yesterday for `days`; each extension with whether it is critical."""
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    return builder.sign(by, hashes.SHA256())
