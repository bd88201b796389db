"""How fast the portal's pages answer in front of the five services, and how long a partner's
notification takes from the write that causes it to the portal's live stream.

    eval "$(deploy/local-stack.sh env)"
    .venv/bin/python -m benchmarks.portal_pages [--requests 100] [--inbox 1000]

Starts the five services and the portal as processes on the local stack (as the end-to-end
tests do), onboards one partner, then: `--requests` sequential GETs of each partner page with
its session cookie (p50/p95/max in ms; each page fans out to two to five service calls), and
ten registrations, each timed from the POST's answer to its decision notification arriving on
the portal's `/live/notifications` (the notifications service's stream passed through).
With `--inbox N` the partner's inbox first holds N messages (filed through Kafka as the
services file them), and the two ways home can read its latest ten are timed against it:
oldest first, paging on to the end 200 at a time (at most 5 pages: what home did), and one
newest-first read (`/notifications/newest?limit=10`: what it does now).
Loopback only; numbers depend on the machine (2 shared cores here). With --inbox 1000 on
2026-12-02 (a machine shared with four other stacks): the latest ten oldest first, paged,
p50 359 / p95 658 ms; newest first, one read, p50 49 / p95 124 ms; GET /home p50 261 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid

import httpx

from deploy.story import Partner, Story
from shared.topics import PARTNER_NOTIFICATIONS
from tests.support.factories import partner_notification
from tests.support.infra import Infra
from tests.support.kafka import publish
from tests.support.polling import eventually
from tests.support.portal import PARTNER_PAGES, portal_process
from tests.support.processes import ADMIN_TOKEN, SERVICES, Fleet


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    return f"p50 {statistics.median(ordered):6.1f}  p95 {p95:6.1f}  max {ordered[-1]:6.1f} ms"


async def page_times(portal: str, token: str, requests: int) -> None:
    cookies = {"pollinate_session": token}
    async with httpx.AsyncClient(base_url=portal, cookies=cookies, timeout=30) as client:
        for path in PARTNER_PAGES:
            samples = []
            for _ in range(requests):
                started = time.perf_counter()
                answer = await client.get(path)
                samples.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200, (path, answer.status_code)
            print(f"GET {path:15} {summary(samples)}")


async def live_latency(fleet: Fleet, portal: str, partner: Partner, count: int = 10) -> None:
    samples: list[float] = []
    cookies = {"pollinate_session": partner.token}
    async with (
        httpx.AsyncClient(cookies=cookies, timeout=httpx.Timeout(30, read=None)) as browser,
        httpx.AsyncClient(timeout=30) as writer,
        browser.stream("GET", f"{portal}/live/notifications") as stream,
    ):
        lines = stream.aiter_lines()
        for n in range(count):
            body = {
                "customer_name": f"Bench {uuid.uuid4().hex[:8]} {n} Ltd",
                "customer_country": "US",
                "products": ["data"],
                "amount": "1000.00",
                "currency": "USD",
            }
            answer = await writer.post(
                f"{fleet.url('deals')}/registrations", headers=partner.auth, json=body
            )
            answered = time.perf_counter()
            registration_id = answer.json()["registration_id"]
            async for line in lines:
                if line.startswith("data:") and registration_id in line:
                    item = json.loads(line.removeprefix("data:"))
                    if item.get("registration_id") == registration_id:
                        samples.append((time.perf_counter() - answered) * 1000)
                        break
    print(f"registration answered -> notification on the portal's stream: {summary(samples)}")


async def fill_inbox(fleet: Fleet, partner: Partner, count: int) -> None:
    notes = [
        partner_notification(partner_id=partner.partner_id, subject=f"bench {n}")
        for n in range(count)
    ]
    await publish(
        fleet.infra, PARTNER_NOTIFICATIONS, notes, subject=partner.partner_id, source="deals"
    )
    url = f"{fleet.url('notifications')}/partners/{partner.partner_id}/notifications/newest"
    async with httpx.AsyncClient(timeout=30) as client:

        async def filed() -> bool:
            page = (await client.get(url, headers=partner.auth, params={"limit": 1})).json()
            return bool(page["items"]) and page["items"][0]["subject"] == f"bench {count - 1}"

        await eventually(filed, 120, what=f"{count} messages filed")


async def inbox_reads(fleet: Fleet, partner: Partner, requests: int) -> None:
    base = f"{fleet.url('notifications')}/partners/{partner.partner_id}/notifications"
    async with httpx.AsyncClient(timeout=30, headers=partner.auth) as client:
        paged, newest = [], []
        for _ in range(requests):
            started = time.perf_counter()
            after: str | None = None
            for _ in range(5):
                params = {"limit": 200, **({"after": after} if after else {})}
                page = (await client.get(base, params=params)).json()
                after = page["next_cursor"] or after
                if len(page["items"]) < 200:
                    break
            paged.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            (await client.get(f"{base}/newest", params={"limit": 10})).raise_for_status()
            newest.append((time.perf_counter() - started) * 1000)
    print(f"latest 10, oldest first paged 200 at a time: {summary(paged)}")
    print(f"latest 10, one newest-first read:            {summary(newest)}")


async def main(requests: int, inbox: int) -> None:
    fleet = Fleet(Infra.from_env(os.environ))
    try:
        for service in SERVICES:
            await fleet.start(service)
        async with portal_process(fleet, DEVELOPMENT_MODE="true") as portal:
            async with httpx.AsyncClient(timeout=30) as client:
                story = Story(client, fleet.urls, ADMIN_TOKEN)
                partner = Partner("bench", "Bench Partners", "gsi")
                await story.onboard(partner, ["data", "ai"])
                await story.known_to_deals(partner)
            if inbox:
                await fill_inbox(fleet, partner, inbox)
                await inbox_reads(fleet, partner, requests)
            await page_times(portal, partner.token, requests)
            await live_latency(fleet, portal, partner)
    finally:
        await fleet.stop_all()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--inbox", type=int, default=0)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.requests, arguments.inbox))
