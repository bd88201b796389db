"""The local demo: seeds a small ecosystem, tells the scripted story through the running
services, and prints what happened: decisions with reasons, credits, earnings, notifications per
partner as its app received them (a webhook receiver verifying signatures and a live-stream
reader, examples/partner_app.py), and one trace across the services.

    make demo          # starts Kafka, Postgres and the six services, then runs this

The stack stays up afterwards (`make stop` stops it); run `make demo` again for another story.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from deploy.demo_portal import SIGN_IN_HOURS, SignIns, portal_sign_ins
from deploy.story import (
    DEFAULT_URLS,
    HTTP_PORT_BASE,
    Partner,
    channel_manager_token,
    tell_story,
)
from examples.partner_app import WebhookReceiver, register, stream

PORTAL_URL = f"http://127.0.0.1:{HTTP_PORT_BASE}"
# deploy/services.sh writes the services' spans in the stack's work folder.
WORK = Path(
    os.environ.get("POLLINATE_WORK_DIR") or Path(__file__).resolve().parent.parent / ".work"
)
TRACES = WORK / "services" / "traces.jsonl"


@dataclass
class PartnerApp:
    """One partner's app as examples/partner_app.py runs it: a webhook receiver verifying
    signatures, and a live-stream reader; the inbox read once at the end for comparison."""

    partner: Partner
    receiver: WebhookReceiver
    streamed: list[dict[str, Any]] = field(default_factory=list)
    hooked: list[dict[str, Any]] = field(default_factory=list)
    inbox: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class PartnerApps:
    def __init__(self, urls: dict[str, str], admin_token: str) -> None:
        self.urls = urls
        self.admin = {"Authorization": f"Bearer {admin_token}"}
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(10, read=None))
        self.apps: dict[str, PartnerApp] = {}

    async def join(self, partner: Partner) -> None:
        """A partner just onboarded: its app gets a partner_admin token from the channel
        manager, registers its webhook receiver and opens its live stream."""
        issued = await self.client.post(
            f"{self.urls['onboarding']}/admin/partner-tokens/{partner.partner_id}",
            params={"user": "partner-app", "role": "partner_admin"},
            headers=self.admin,
        )
        issued.raise_for_status()
        token = issued.json()["token"]
        app = PartnerApp(partner, WebhookReceiver(lambda _c, m: app.hooked.append(m)))
        app.receiver.start()
        endpoint = await register(
            self.client, self.urls["notifications"], partner.partner_id, token, app.receiver.url
        )
        app.receiver.secret = endpoint["secret"]
        opened = asyncio.Event()

        async def follow() -> None:
            async for message in stream(
                self.client, self.urls["notifications"], partner.partner_id, token, opened=opened
            ):
                app.streamed.append(message)

        app.task = asyncio.create_task(follow())
        await asyncio.wait_for(opened.wait(), 10)
        self.apps[partner.partner_id] = app

    async def settle(self) -> None:
        """Wait until the webhooks have caught up with the streams (the demo's last messages
        are seconds old), at most 20 s."""
        for _ in range(100):
            if all(len(a.hooked) >= len(a.streamed) for a in self.apps.values()):
                break
            await asyncio.sleep(0.2)
        for app in self.apps.values():
            page = await self.client.get(
                f"{self.urls['notifications']}/partners/{app.partner.partner_id}/notifications",
                params={"limit": 200},
                headers=self.admin,
            )
            app.inbox = [("inbox", m) for m in page.json()["items"]]

    async def owner_inbox(self, owner: str) -> list[dict[str, Any]]:
        page = await self.client.get(
            f"{self.urls['notifications']}/owners/{owner}/notifications", headers=self.admin
        )
        items: list[dict[str, Any]] = page.json()["items"]
        return items

    async def close(self) -> None:
        for app in self.apps.values():
            if app.task is not None:
                app.task.cancel()
            app.receiver.stop()
        await self.client.aclose()


def section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 74 - len(title)))


def print_credits(label: str, view: dict[str, Any], names: dict[str, str]) -> None:
    print(f"{label}: sourced {view['sourced']} / influenced {view['influenced']}")
    for credit in view["credits"]:
        print(
            f"  {names.get(credit['partner_id'], credit['partner_id']):28} {credit['kind']:10}"
            f" {credit['amount']:>10} {credit['currency']}  share {credit['share']}"
            f"  ({credit['model']}: {credit['reasons'][0] if credit['reasons'] else ''})"
        )


def print_trace(deal_key: str) -> None:
    """The spans of the trace that carried the won deal's correction through the chain."""
    if not TRACES.exists():
        print("(no trace file: services run with TRACE_EXPORTER=file:.work/services/traces.jsonl)")
        return
    spans = [json.loads(line) for line in TRACES.read_text().splitlines() if line.strip()]
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in spans:
        by_trace[span["context"]["trace_id"]].append(span)
    chains = [
        trace
        for trace in by_trace.values()
        if any(deal_key in json.dumps(s.get("attributes", {})) for s in trace)
        or any(s["name"].startswith("POST /crm/salesforce") for s in trace)
    ]
    if not chains:
        print("(no trace for the deal yet)")
        return
    longest = max(
        chains, key=lambda t: len({s["resource"]["attributes"].get("service.name") for s in t})
    )
    longest.sort(key=lambda s: s["start_time"])
    print(f"trace {longest[0]['context']['trace_id']} ({len(longest)} spans):")
    for span in longest:
        service = span["resource"]["attributes"].get("service.name", "?")
        print(f"  {span['start_time'][11:23]}  {service:12} {span['name']}")


def print_sign_ins(signs: SignIns) -> None:
    """Where the portal is and who to sign in as (tokens valid for a working day)."""
    print(f"Open {signs.portal}/sign-in and paste one of these platform tokens")
    print(f"(valid for {SIGN_IN_HOURS} hours):")
    print(
        f"  a partner's person: {signs.person}, partner admin at {signs.partner.company}"
        f" ({signs.partner.partner_id}): home, registrations, earnings, learning, resources,"
        f" webhooks\n    {signs.partner_token}"
    )
    print(f"  a channel manager (the console):\n    {signs.manager_token}")


async def main() -> None:
    apps = PartnerApps(DEFAULT_URLS, channel_manager_token())
    result, log = await tell_story(joined=apps.join)
    names = {p.partner_id: p.company for p in result.partners.values()}

    section("What happened")
    for line in log:
        print(f"- {line}")

    section("Decisions")
    for label, decision in result.decisions.items():
        print(f"{label}: {decision['status']} (policy {decision['policy_version']})")
        for reason in decision["reasons"]:
            print(f"    reason: {reason}")
        for conflict in decision["conflicts"]:
            print(
                f"    conflict: {conflict['kind']} with {names.get(conflict['party'], conflict['party'])}"
                f" ({conflict['reference']}), matched on {conflict['matched_on']},"
                f" registered {conflict['registered_at']}"
            )

    section(f"Credits for {result.won_deal_key}")
    print_credits(f"won at {result.won_amount}", result.credits_before, names)
    print_credits(f"corrected to {result.corrected_amount}", result.credits_after, names)
    print(f"reversed credits: {len(result.credits_after['history'])}")

    section("Earnings (incentives ledger)")
    for key, booked in result.balances.items():
        partner = result.partners[key]
        balance = booked["balance"]
        print(f"{partner.company}: balance {balance['balance']} {booked['statement']['currency']}")
        for entry in booked["statement"]["entries"]:
            print(f"    {entry['entry_type']:10} {entry['rule']:28} {entry['amount']:>10}")

    section("Notifications per partner (as each partner's app received them)")
    await apps.settle()
    for app in apps.apps.values():
        streamed = {m["notification_id"] for m in app.streamed}
        hooked = {m["notification_id"] for m in app.hooked}
        print(
            f"{app.partner.company}: {len(app.inbox)} in its inbox; since its app joined "
            f"{len(streamed)} on the live stream, {len(hooked)} by webhook "
            f"(signatures verified, {app.receiver.refused} refused)"
        )
        for _, message in app.inbox:
            ways = [
                w
                for w, ids in (("stream", streamed), ("webhook", hooked))
                if message["notification_id"] in ids
            ]
            print(
                f"    [{message['kind']}] {message['subject']}  ({', '.join(ways) or 'inbox only'})"
            )
    rep = await apps.owner_inbox(result.rep)
    print(f"direct account owner {result.rep} (their own inbox, never a partner's):")
    for message in rep:
        print(f"    inbox   [{message['kind']}] {message['subject']}")
    await apps.close()

    section("One trace across the services")
    print_trace(result.won_deal_key)

    section("The portal")
    alpine = result.partners["alpine"]
    async with httpx.AsyncClient(timeout=30) as client:
        signs = await portal_sign_ins(
            client, DEFAULT_URLS, PORTAL_URL, alpine, channel_manager_token(), result.run
        )
    print_sign_ins(signs)
    print(
        f"\nThe platform keeps running: the portal on {PORTAL_URL}, the APIs on "
        f"http://127.0.0.1:{HTTP_PORT_BASE + 1}..{HTTP_PORT_BASE + 6} (/docs for each). "
        "Follow a partner with `.venv/bin/python -m examples.partner_app --partner <id> "
        "--token <partner_admin token>`; stop everything with `make stop`."
    )


if __name__ == "__main__":
    asyncio.run(main())
