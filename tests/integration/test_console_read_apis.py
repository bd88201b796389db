"""The read APIs the console's partners list needs, on real processes: onboarding's partner
directory (every partner, filtered by tier, status and type, paged) and attribution's health of
many partners at once (the same answer as one partner's health route)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.support.infra import Infra
from tests.support.onboarding import strong_application
from tests.support.processes import ADMIN, auth, service_processes

pytestmark = pytest.mark.integration


async def every_page(client: httpx.AsyncClient, url: str, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    offset = 0
    while True:
        query = {**params, "offset": offset, "limit": 7}
        answer = await client.get(f"{url}/admin/partners", params=query, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        found += page["partners"]
        offset += 7
        if offset >= page["total"]:
            assert len(found) == page["total"]
            return found


async def test_the_directory_filters_and_pages_every_partner(infra: Infra) -> None:
    run = uuid.uuid4().hex[:8]
    async with (
        service_processes(infra, "onboarding") as [url],
        httpx.AsyncClient(timeout=30) as client,
    ):
        applied = []
        for n, kind in enumerate(("msp", "msp", "isv")):
            body = strong_application(f"dir{n}-{run}.example", partner_type=kind)
            answer = await client.post(f"{url}/applications", json=body)
            assert answer.status_code == 201, answer.text
            applied.append((answer.json()["partner_id"], kind))

        msps = await every_page(client, url, partner_type="msp")
        ids = [p["partner_id"] for p in msps]
        assert len(ids) == len(set(ids))  # pages neither repeat nor skip
        assert {p for p, kind in applied if kind == "msp"} <= set(ids)
        assert {p["partner_type"] for p in msps} == {"msp"}
        names = [(p["company_name"].lower(), p["partner_id"]) for p in msps]
        assert names == sorted(names)

        status = msps[0]["status"]
        by_status = await every_page(client, url, partner_type="msp", status=status)
        assert {p["status"] for p in by_status} == {status}
        tier = msps[0]["tier"]
        by_tier = await every_page(client, url, tier=tier, partner_type="msp")
        assert {p["tier"] for p in by_tier} == {tier}

        # A search: a part of the company name or domain, any case, or the id itself.
        first, _ = applied[0]
        for text in (f"DIR0-{run}", f"dir0-{run}.EXAMPLE", first):
            found = await every_page(client, url, q=text)
            assert [p["partner_id"] for p in found] == [first], text
        assert await every_page(client, url, q=f"%-{run}") == []  # no wildcards
        assert len(await every_page(client, url, q=run, partner_type="msp")) == 2

        for bad in (
            {"q": "a\u202eb"},
            {"status": "dormant"},
            {"partner_type": "pirate"},
            {"limit": 0},
            {"tier": "A B"},
        ):
            answer = await client.get(f"{url}/admin/partners", params=bad, headers=ADMIN)
            assert answer.status_code == 422, (bad, answer.text)
        partner = applied[0][0]
        refused = await client.get(f"{url}/admin/partners", headers=auth(partner))
        assert refused.status_code == 403


async def test_health_of_many_partners_is_each_one_s_health(infra: Infra) -> None:
    partners = [f"p-health-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    async with (
        service_processes(infra, "attribution") as [url],
        httpx.AsyncClient(timeout=30) as client,
    ):
        answer = await client.get(
            f"{url}/admin/partner-health",
            params=[("partner_id", p) for p in [*partners, partners[0]]],
            headers=ADMIN,
        )
        assert answer.status_code == 200, answer.text
        many = answer.json()
        assert [h["partner_id"] for h in many] == partners
        for health in many:
            one = await client.get(f"{url}/partners/{health['partner_id']}/health", headers=ADMIN)
            assert one.json() == health
        none = await client.get(f"{url}/admin/partner-health", headers=ADMIN)
        assert none.status_code == 422
        too_many = [("partner_id", f"p{n}") for n in range(101)]
        answer = await client.get(f"{url}/admin/partner-health", params=too_many, headers=ADMIN)
        assert answer.status_code == 422
        refused = await client.get(
            f"{url}/admin/partner-health",
            params={"partner_id": partners[0]},
            headers=auth(partners[0]),
        )
        assert refused.status_code == 403
