"""Raw per-source topics against the running deals processes on real Kafka and Postgres: every
item a CRM delivered that deals read reaches `crm.raw.<source>.v1` exactly as sent (numbers as
written), with how it arrived; a refused item does not (it is kept in crm_refused), and the
same item delivered again is published once."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.crm import (
    HUBSPOT_PORTAL,
    hubspot_company_association,
    hubspot_headers,
    hubspot_property_change,
    salesforce_cdc,
    salesforce_headers,
)
from tests.support.infra import Infra
from tests.support.kafka import read_records
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


async def _raw(infra: Infra, topic: str, marker: str) -> list[dict[str, Any]]:
    """The records on `topic` whose item holds `marker` (the topic holds other tests' too),
    read with the principal the tests use: the payloads, in offset order per partition."""
    records = await read_records(infra.kafka, topic, 1)
    found = []
    for record in records:
        envelope = json.loads(record.value)
        if marker in envelope["data"]["item"]:
            found.append({**envelope["data"], "_key": record.key.decode(), "_id": envelope["id"]})
    return found


async def test_hubspot_items_read_reach_the_raw_topic_once_and_refused_ones_do_not(
    infra: Infra, deals_instances: list[str]
) -> None:
    deal = uuid.uuid4().int % 10**12
    marker = str(deal)
    now = datetime.now(UTC) - timedelta(seconds=5)
    stage = hubspot_property_change(deal, "dealstage", "contractsent", now)
    association = hubspot_company_association(deal, 5, now)
    bad = hubspot_property_change(deal, "amount", "lots", now)
    batch = json.dumps([stage, bad, association]).encode()
    async with httpx.AsyncClient(timeout=30) as client:
        for url in deals_instances:  # delivered twice, to both instances
            answer = await client.post(
                f"{url}/crm/hubspot", content=batch, headers=hubspot_headers(batch)
            )
            assert answer.status_code == 202, answer.text

    async def both() -> list[dict[str, Any]] | None:
        found = await _raw(infra, "crm.raw.hubspot.v1", marker)
        return found if len(found) >= 2 else None

    found = await eventually(both, what="the two items read on crm.raw.hubspot.v1")
    key = f"hubspot:{HUBSPOT_PORTAL}:{deal}"
    assert [json.loads(r["item"]) for r in found] == [stage, association]
    assert [(r["index"], r["outcomes"], r["deal_keys"]) for r in found] == [
        (0, ["accepted"], [key]),
        (2, ["resync"], [key]),
    ]
    assert {(r["source"], r["transport"], r["route"], r["_key"]) for r in found} == {
        ("hubspot", "http", "/crm/hubspot", key)
    }
    # The second delivery (a duplicate) added nothing: the items' ids are their content's.
    assert len({r["_id"] for r in found}) == 2


async def test_a_salesforce_message_reaches_the_raw_topic_with_its_numbers_as_written(
    infra: Infra, deals_instances: list[str]
) -> None:
    record = f"006R{uuid.uuid4().hex[:10]}"
    at = datetime.now(UTC) - timedelta(seconds=5)
    message = salesforce_cdc(record, "CREATE", at, {"StageName": "Prospecting", "Amount": "N"})
    # The amount as the relay wrote it: a JSON number with a trailing zero.
    body = json.dumps([message]).replace('"Amount": "N"', '"Amount": 1200.50').encode()
    headers = salesforce_headers(body)
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(
            f"{deals_instances[0]}/crm/salesforce", content=body, headers=headers
        )
    assert answer.json()["accepted"] == 1, answer.text

    async def one() -> list[dict[str, Any]] | None:
        return await _raw(infra, "crm.raw.salesforce.v1", record) or None

    [found] = await eventually(one, what="the message on crm.raw.salesforce.v1")
    assert '"Amount":1200.50' in found["item"]
    assert json.loads(found["item"])["payload"]["ChangeEventHeader"]["recordIds"] == [record]
    assert found["delivery_id"] == headers["webhook-id"]
    assert (found["route"], found["outcomes"], found["_key"]) == (
        "/crm/salesforce",
        ["accepted"],
        f"salesforce:{record}",
    )
