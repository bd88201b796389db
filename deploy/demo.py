"""The local demo: seeds a small ecosystem, tells the scripted story through the running
services, and prints what happened: decisions with reasons, credits, earnings, notifications per
partner, and one trace across the services.

    make demo          # starts Kafka, Postgres and the four services, then runs this

The stack stays up afterwards (`make stop` stops it); run `make demo` again for another story.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from deploy.story import channel_manager_token, tell_story
from examples.partner_app import notifications
from shared.kafka_client import KafkaConnection

TRACES = Path(__file__).resolve().parent.parent / ".work" / "services" / "traces.jsonl"


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


async def main() -> None:
    started = datetime.now(UTC) - timedelta(seconds=2)
    result, log = await tell_story()
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

    section("Notifications per partner (as a partner app receives them)")
    kafka = KafkaConnection.from_env(os.environ)
    received: dict[str, list[str]] = defaultdict(list)
    async for note in notifications(kafka, names, since=started, idle_seconds=2.0):
        received[note.partner_id].append(f"[{note.kind}] to {note.recipient}: {note.subject}")
    for partner_id, lines in received.items():
        print(f"{names[partner_id]}:")
        for line in lines:
            print(f"    {line}")

    section("One trace across the services")
    print_trace(result.won_deal_key)

    section("The portal")
    alpine = result.partners["alpine"]
    print("Open http://127.0.0.1:8000/sign-in and paste one of these platform tokens:")
    print(f"  a partner's person ({alpine.company}, {alpine.partner_id}):\n    {alpine.token}")
    print(f"  a channel manager (the console):\n    {channel_manager_token()}")
    print(
        "\nThe platform keeps running: the portal on http://127.0.0.1:8000, the APIs on "
        "http://127.0.0.1:8001..8005 (/docs for each). "
        "Follow a partner with `.venv/bin/python -m examples.partner_app --partner <id>`; "
        "stop everything with `make stop`."
    )


if __name__ == "__main__":
    asyncio.run(main())
