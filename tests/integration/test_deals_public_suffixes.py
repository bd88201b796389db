"""Customers under a multi-label public suffix, on real processes (found from outside: the
former rule knew a dozen such suffixes, so partner A's anadolu.com.tr blocked partner B's
unrelated bosphorus.com.tr), and registrations stored under the former rule's key."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.support.deals import fresh_partners, register, registration_request
from tests.support.infra import Infra
from tests.support.processes import auth

pytestmark = pytest.mark.integration


def named(run: str, name: str) -> str:
    """A customer name nothing else of the run resembles (names match too)."""
    return f"{name} {uuid.uuid5(uuid.NAMESPACE_URL, name + run).hex[:12]}"


async def test_customers_sharing_a_multi_label_suffix_are_different_customers(
    infra: Infra, deals_instances: list[str], admin_db: Any
) -> None:
    run, (first, second, third) = await fresh_partners(infra, "tra", "trb", "trc")
    deals = deals_instances[0]
    async with httpx.AsyncClient(timeout=30) as client:

        async def decided(partner: str, name: str, domain: str) -> Any:
            response = await register(
                client, deals, partner, registration_request(named(run, name), domain)
            )
            assert response.status_code == 201, response.text
            return response.json()

        anadolu = await decided(first, "Anadolu", f"anadolu-{run}.com.tr")
        bosphorus = await decided(second, "Bosphorus", f"https://www.bosphorus-{run}.com.tr")
        assert (anadolu["status"], bosphorus["status"]) == ("approved", "approved")
        assert bosphorus["conflicts"] == []
        stored = await admin_db.fetchval(
            "SELECT customer_domain FROM deals.registrations WHERE registration_id = $1",
            bosphorus["registration_id"],
        )
        assert stored == f"bosphorus-{run}.com.tr"

        # The first registration as the former rule stored it: keyed by the bare suffix. It
        # still holds its own customer by domain, and no other.
        await admin_db.execute(
            "UPDATE deals.registrations SET customer_domain = 'com.tr' WHERE registration_id = $1",
            anadolu["registration_id"],
        )
        same = await decided(third, "Unrelated", f"https://shop.anadolu-{run}.com.tr/tr")
        assert same["status"] == "rejected", same
        assert [(c["kind"], c["matched_on"]) for c in same["conflicts"]] == [("partner", "domain")]
        other = await client.post(
            f"{deals}/registrations/check",
            headers=auth(third),
            json=registration_request(named(run, "Kapadokya"), f"kapadokya-{run}.com.tr"),
        )
        assert other.json()["would_be"] == "approved", other.text
