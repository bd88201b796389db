"""The well-known domain check never makes the platform call its own network: with the default
site, a domain resolving to a private, loopback, link-local or unresolvable address is not
fetched at all (WellKnownFile.published asks resolves_to_public_addresses first)."""

from __future__ import annotations

import pytest

from services.onboarding.domain_verification import resolves_to_public_addresses


@pytest.mark.parametrize(
    "host",
    ["localhost", "127.0.0.1", "10.1.2.3", "192.168.0.7", "169.254.169.254", "::1", "fd00::1"],
)
async def test_private_and_loopback_addresses_are_not_public(host: str) -> None:
    assert not await resolves_to_public_addresses(host)


async def test_a_public_address_is_public() -> None:
    assert await resolves_to_public_addresses("8.8.8.8")
