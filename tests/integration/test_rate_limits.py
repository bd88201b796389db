"""Request rate limits on a real onboarding process (shared/rate_limits.py): the public intake
per client address, a partner's people and apps per partner, staff not at all. Each refusal is
a 429 with Retry-After, given before the body is read, and records nothing."""

from __future__ import annotations

import uuid

import asyncpg
import httpx

from tests.support.infra import Infra
from tests.support.onboarding import strong_application
from tests.support.processes import service_fixture
from tests.support.tokens import ADMIN, auth

ANONYMOUS_ALLOWANCE = 3
PARTNER_ALLOWANCE = 4

onboarding = service_fixture(
    "onboarding",
    env={
        "ANONYMOUS_REQUESTS_PER_MINUTE": str(ANONYMOUS_ALLOWANCE),
        "PARTNER_REQUESTS_PER_MINUTE": str(PARTNER_ALLOWANCE),
    },
)


def refused_for_rate(answer: httpx.Response) -> bool:
    return (
        answer.status_code == 429
        and int(answer.headers["retry-after"]) >= 1
        and "retry after" in answer.json()["detail"]
    )


async def applications_for(infra: Infra, domain: str) -> int:
    conn = await asyncpg.connect(infra.dsn_for("onboarding_svc", "onboarding_svc"))
    try:
        found: int = await conn.fetchval(
            "SELECT count(*) FROM onboarding.partners WHERE domain = $1", domain
        )
        return found
    finally:
        await conn.close()


async def test_the_public_intake_takes_a_few_applications_a_minute_from_one_address(
    infra: Infra, onboarding: str
) -> None:
    domains = [f"intake-{uuid.uuid4().hex[:10]}.example" for _ in range(ANONYMOUS_ALLOWANCE + 1)]
    async with httpx.AsyncClient(base_url=onboarding, timeout=10) as client:
        accepted = [
            await client.post("/applications", json=strong_application(domain))
            for domain in domains[:ANONYMOUS_ALLOWANCE]
        ]
        assert [a.status_code for a in accepted] == [201] * ANONYMOUS_ALLOWANCE
        refused = await client.post("/applications", json=strong_application(domains[-1]))
        assert refused_for_rate(refused), refused.text
        assert "from your address" in refused.json()["detail"]
        # Counted before the body is read: a malformed one is refused for the rate too.
        malformed = await client.post(
            "/applications", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert refused_for_rate(malformed), malformed.text
    assert await applications_for(infra, domains[0]) == 1
    assert await applications_for(infra, domains[-1]) == 0  # refused: nothing recorded


async def test_a_partner_has_an_allowance_of_its_own_and_staff_have_none(onboarding: str) -> None:
    busy, other = (f"ratepartner-{uuid.uuid4().hex[:8]}" for _ in range(2))
    async with httpx.AsyncClient(base_url=onboarding, timeout=10) as client:
        answered = [
            await client.get(f"/partners/{busy}", headers=auth(busy))
            for _ in range(PARTNER_ALLOWANCE)
        ]
        assert all(a.status_code != 429 for a in answered), [a.status_code for a in answered]
        limited = await client.get(f"/partners/{busy}", headers=auth(busy))
        assert refused_for_rate(limited), limited.text
        assert busy in limited.json()["detail"]
        # Before its body is read: a write with a malformed body is refused for the rate too.
        write = await client.post(
            f"/partners/{busy}/people",
            content=b"{not json",
            headers={**auth(busy), "Content-Type": "application/json"},
        )
        assert refused_for_rate(write), write.text
        # Another partner's people are not held back by the busy one's.
        assert (await client.get(f"/partners/{other}", headers=auth(other))).status_code != 429
        # Channel managers are the platform's own: not limited.
        staff = [
            await client.get(f"/partners/{busy}", headers=ADMIN)
            for _ in range(PARTNER_ALLOWANCE * 2)
        ]
        assert all(a.status_code != 429 for a in staff), [a.status_code for a in staff]
