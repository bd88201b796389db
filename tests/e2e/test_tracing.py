"""One trace follows a won deal from the platform's HTTP edge (a CRM delivery carrying its
caller's `traceparent`: FastAPI's server span is its child) through every service, by the
outbox rows and Kafka headers, to the partner's inbox: the spans (and the log lines, which
carry the trace id) of the whole chain join on one trace id."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest

from deploy.story import Partner
from tests.e2e.conftest import TRACES
from tests.support.crm import salesforce_delivery, salesforce_won_deal
from tests.support.polling import eventually
from tests.support.processes import SERVICES, Fleet
from tests.support.tokens import auth

pytestmark = pytest.mark.e2e


def spans_of(trace_id: str) -> list[dict[str, Any]]:
    spans = []
    for line in TRACES.read_text().splitlines():
        try:
            span = json.loads(line)
        except ValueError:
            continue  # a line another process is still writing
        if span["context"]["trace_id"] == f"0x{trace_id}":
            spans.append(span)
    return spans


async def test_one_trace_follows_a_won_deal_from_the_crm_edge_to_the_partners_inbox(
    fleet: Fleet, referral_partner: Partner
) -> None:
    trace_id, caller_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    record = f"006Tr{uuid.uuid4().hex[:8]}"
    delivery = salesforce_delivery(
        [salesforce_won_deal(record, Decimal("4321.00"), referral_partner.partner_id)]
    )
    delivery["headers"]["traceparent"] = f"00-{trace_id}-{caller_span}-01"
    partner = referral_partner.partner_id
    async with httpx.AsyncClient(timeout=30) as client:
        accepted = await client.post(f"{fleet.url('deals')}/crm/salesforce", **delivery)
        assert accepted.status_code == 202, accepted.text

        async def earning_told() -> bool:
            """The partner's whole inbox, page after page, holds the deal's earning."""
            params: dict[str, str | int] = {"limit": 100}
            while True:
                answer = await client.get(
                    f"{fleet.url('notifications')}/partners/{partner}/notifications",
                    params=params,
                    headers=auth(partner),
                )
                assert answer.status_code == 200, answer.text
                page = answer.json()
                if any(
                    item["kind"] == "earning" and record in (item["deal_key"] or "")
                    for item in page["items"]
                ):
                    return True
                if not page["items"]:
                    return False
                params["after"] = page["next_cursor"]

        await eventually(earning_told, 60, what="the partner's earning message in its inbox")

    def every_service_in_the_trace() -> set[str]:
        return {span["resource"]["attributes"]["service.name"] for span in spans_of(trace_id)}

    async def whole_chain() -> bool:
        return every_service_in_the_trace() == set(SERVICES)

    await eventually(whole_chain, 30, what="every service's spans in the caller's trace")
    spans = spans_of(trace_id)
    edge = [s for s in spans if s["name"] == "POST /crm/salesforce"]
    assert [s["parent_id"] for s in edge] == [f"0x{caller_span}"]
