"""Deals as real processes on real Kafka + Postgres: the registration race across two instances,
CRM ingestion into the projection, decisions published, and bad input refused precisely."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from shared.events import Envelope
from shared.events.crm import DealStage, DealStatus
from shared.events.opportunities import DealStateChanged
from shared.topics import CRM_DEALS, DEAL_OPPORTUNITIES
from tests.support.crm import (
    HUBSPOT_PORTAL,
    CrmSenders,
    hubspot_deal_webhook,
    hubspot_headers,
    hubspot_property_change,
)
from tests.support.deals import fresh_partners, register, registration_request
from tests.support.infra import Infra
from tests.support.outbox import event_bytes
from tests.support.polling import eventually
from tests.support.processes import ADMIN, auth

pytestmark = pytest.mark.integration


async def test_racing_registrations_on_two_instances_never_both_win(
    infra: Infra, deals_instances: list[str]
) -> None:
    run, (first, second) = await fresh_partners(infra, "a", "b")

    async with httpx.AsyncClient(timeout=30) as client:
        for attempt in range(5):
            body = registration_request(
                f"{uuid.uuid4().hex[:12]} Traders Inc",
                f"race-{run}-{attempt}.example",
                amount="10000.00",
            )
            responses = await asyncio.gather(
                register(client, deals_instances[0], first, body),
                register(client, deals_instances[1], second, body),
            )
            assert [r.status_code for r in responses] == [201, 201]
            decisions = sorted((r.json() for r in responses), key=lambda d: d["status"])
            assert [d["status"] for d in decisions] == ["approved", "rejected"]
            winner, loser = decisions
            # The loser hears only that another partner holds the customer...
            assert [(c["kind"], c["reference"]) for c in loser["conflicts"]] == [("partner", None)]
            assert "already registered inside the protection window" in loser["reasons"][0]
            assert winner["registration_id"] not in json.dumps(loser)
            # ...a channel manager sees which registration it lost to.
            stored = await client.get(
                f"{deals_instances[0]}/registrations/{loser['registration_id']}", headers=ADMIN
            )
            assert stored.json()["conflicts"][0]["reference"] == winner["registration_id"]

        # Partners see only their own registrations.
        mine = (await client.get(f"{deals_instances[0]}/registrations", headers=auth(first))).json()
        assert mine
        assert {r["partner_id"] for r in mine} == {first}
        theirs = (
            await client.get(f"{deals_instances[1]}/registrations", headers=auth(second))
        ).json()
        hidden = await client.get(
            f"{deals_instances[0]}/registrations/{theirs[0]['registration_id']}",
            headers=auth(first),
        )
        assert hidden.status_code == 404


async def test_decision_is_published_and_crm_changes_land_in_the_projection(
    infra: Infra, deals_instances: list[str]
) -> None:
    run, (partner,) = await fresh_partners(infra, "c")
    object_id, batch = hubspot_deal_webhook()

    conn = await asyncpg.connect(infra.admin_dsn)
    async with httpx.AsyncClient(timeout=30) as client:
        try:
            body = json.dumps(batch).encode()
            for _ in range(2):  # a repeated webhook delivery changes nothing
                ingested = await client.post(
                    f"{deals_instances[0]}/crm/hubspot", content=body, headers=hubspot_headers(body)
                )
                assert ingested.status_code == 202

            async def projected() -> Any:
                return await conn.fetchrow(
                    "SELECT amount, stage, status FROM deals.crm_deals WHERE deal_key = $1",
                    f"hubspot:{HUBSPOT_PORTAL}:{object_id}",
                )

            row = await eventually(lambda: _with_stage(projected))
            assert (str(row["amount"]), row["stage"], row["status"]) == (
                "48000.0000",
                "prospecting",
                "open",
            )
            crm_events = await conn.fetchval(
                "SELECT count(*) FROM deals.outbox WHERE message_key = $1 AND topic = $2",
                f"hubspot:{HUBSPOT_PORTAL}:{object_id}",
                CRM_DEALS.name,
            )
            assert crm_events == 3
            # Every merged change is published whole, with a revision that only grows.
            states = await conn.fetch(
                """SELECT value, value_codec FROM deals.outbox WHERE message_key = $1 AND topic = $2
                   ORDER BY position""",
                f"hubspot:{HUBSPOT_PORTAL}:{object_id}",
                DEAL_OPPORTUNITIES.name,
            )
            snapshots = [
                Envelope[DealStateChanged].model_validate_json(event_bytes(r)).data for r in states
            ]
            assert [s.revision for s in snapshots] == list(range(1, len(snapshots) + 1))
            assert (snapshots[-1].amount, snapshots[-1].stage, snapshots[-1].status) == (
                Decimal("48000"),
                DealStage.PROSPECTING,
                DealStatus.OPEN,
            )

            created = await register(
                client,
                deals_instances[1],
                partner,
                {
                    "customer_name": f"{uuid.uuid4().hex[:12]} Clean Co",
                    "customer_domain": f"clean-{run}.example",
                    "products": ["ai"],
                    "amount": "20000",
                    "currency": "USD",
                },
            )
            registration_id = created.json()["registration_id"]

            async def published() -> bool:
                value = await conn.fetchval(
                    "SELECT bool_and(published_at IS NOT NULL) FROM deals.outbox WHERE message_key = $1",
                    registration_id,
                )
                return bool(value)

            await eventually(published)
        finally:
            await conn.close()


async def _with_stage(projected: Callable[[], Awaitable[Any]]) -> Any:
    row = await projected()
    return (
        row if row is not None and row["stage"] is not None and row["amount"] is not None else None
    )


@pytest.mark.parametrize(
    ("path", "content", "headers", "status", "detail"),
    [
        ("/crm/hubspot", "{not json", {}, 400, "malformed JSON"),
        # A batch source answers each item: a refused one carries its reason (HubSpot 202, as
        # it never retries a 4xx; the Salesforce relay 207).
        (
            "/crm/hubspot",
            json.dumps([hubspot_property_change(1, "dealstage", "haggling", datetime.now(UTC))]),
            {},
            202,
            "unknown stage 'haggling'",
        ),
        (
            "/crm/salesforce",
            json.dumps({"payload": {}}),
            {},
            207,
            "payload.ChangeEventHeader is required",
        ),
        (
            "/registrations",
            json.dumps(
                {"customer_name": "X Corp", "products": ["data"], "amount": "1", "currency": "USD"}
            ),
            {},
            401,
            "missing bearer token",
        ),
        (
            "/registrations",
            json.dumps(
                {
                    "customer_name": "X Corp",
                    "products": ["data"],
                    "amount": "abc",
                    "currency": "USD",
                }
            ),
            auth("p-x"),
            422,
            "amount",
        ),
    ],
)
async def test_bad_input_gets_a_precise_4xx(
    deals_instances: list[str],
    crm_senders: CrmSenders,
    path: str,
    content: str,
    headers: dict[str, str],
    status: int,
    detail: str,
) -> None:
    if path.startswith("/crm/"):  # signed as the source signs: the body is what is wrong
        headers = crm_senders.headers(path, content.encode())
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{deals_instances[0]}{path}",
            content=content,
            headers={"content-type": "application/json", **headers},
        )
    assert response.status_code == status
    assert detail in json.dumps(response.json())
