"""Onboarding's applications a page at a time: the queues waiting for a manager soonest due
first, the scoring's rejections (which the public intake can make numerous) latest first, each
page starting after the application a caller names."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.support.onboarding import (
    MIDDLING,
    applications,
    onboarding_fixture,
    strong_application,
    weak_application,
)
from tests.support.processes import ADMIN

pytestmark = pytest.mark.integration


onboarding = onboarding_fixture("pages")


async def applied(client: httpx.AsyncClient, url: str, body: dict[str, Any], outcome: str) -> str:
    answer = await client.post(f"{url}/applications", json=body)
    assert answer.status_code == 201, answer.text
    assert answer.json()["qualification"]["outcome"] == outcome
    return str(answer.json()["partner_id"])


async def listed(client: httpx.AsyncClient, url: str, **query: Any) -> list[str]:
    answer = await client.get(f"{url}/applications", params=query, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return [a["partner_id"] for a in answer.json()]


async def test_the_waiting_queue_pages_soonest_due_first_and_rejections_latest_first(
    onboarding: str,
) -> None:
    run = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(timeout=30) as client:
        waiting = [
            await applied(
                client,
                onboarding,
                strong_application(f"w{i}-{run}.example", **MIDDLING),
                "review",
            )
            for i in range(3)
        ]
        rejected = [
            await applied(client, onboarding, weak_application(f"r{i}-{run}.example"), "reject")
            for i in range(3)
        ]
        # Applied last, so the newest of the queue: after the first of them come the other two.
        assert await listed(client, onboarding, after=waiting[0], limit=5) == waiting[1:]
        assert await listed(client, onboarding, after=waiting[0], limit=1) == waiting[1:2]
        queue = [a["partner_id"] for a in await applications(client, onboarding)]
        assert queue[-3:] == waiting
        assert not set(rejected) & set(queue)
        # The rejections come latest first, and go on from the one named.
        assert await listed(client, onboarding, outcome="reject", limit=2) == rejected[:0:-1]
        later = await listed(client, onboarding, outcome="reject", after=rejected[1], limit=5)
        assert later[0] == rejected[0]
        assert not set(waiting) & set(later)


async def test_a_page_refuses_a_cursor_naming_no_application_and_a_limit_out_of_range(
    onboarding: str,
) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        for query, says in (
            ({"after": "ptn_nobody"}, "after names no application: 'ptn_nobody'"),
            ({"limit": 0}, "greater than or equal to 1"),
            ({"limit": 501}, "less than or equal to 500"),
            ({"after": ""}, "after"),
        ):
            answer = await client.get(f"{onboarding}/applications", params=query, headers=ADMIN)
            assert answer.status_code == 422, (query, answer.text)
            assert says in answer.text, (query, answer.text)
