"""CRM payloads as each upstream source delivers them, for tests, the demo story and the
benchmark. Each builder starts from the source's documented shape (the samples in
`tests/fixtures/samples`) and sets what a caller varies."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "samples"


@cache
def _sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def sample(name: str) -> Any:
    """A fresh copy of one of the stored upstream samples (`hubspot_deal_webhook.json`, ...)."""
    return copy.deepcopy(_sample(name))


def hubspot_deal_webhook() -> tuple[int, list[dict[str, Any]]]:
    """The stored HubSpot webhook batch, about a deal of its own (a new object id, event ids no
    other batch has used): the deal's id and the batch."""
    batch: list[dict[str, Any]] = sample("hubspot_deal_webhook.json")
    deal_id = int(uuid.uuid4().int % 10**12)
    for event in batch:
        event["objectId"] = deal_id
        event["eventId"] = int(f"{event['eventId']}{deal_id % 10**6}")
    return deal_id, batch


def salesforce_cdc(record_id: str, change: str, at: datetime, fields: dict[str, Any]) -> Any:
    """An Opportunity Change Data Capture message as Salesforce delivers it: `change` is
    CREATE | UPDATE | DELETE | UNDELETE, `fields` the changed Opportunity fields."""
    return {
        "schema": "IeRuaY6cbI_HsV8Rv1Mc5g",
        "payload": {
            "ChangeEventHeader": {
                "entityName": "Opportunity",
                "recordIds": [record_id],
                "changeType": change,
                "transactionKey": uuid.uuid4().hex,
                "sequenceNumber": 1,
                "commitTimestamp": int(at.timestamp() * 1000),
                "changedFields": sorted(fields),
            },
            **fields,
        },
        "event": {"replayId": int(at.timestamp() * 1000)},
    }


def hubspot_property_change(
    deal_id: int, name: str, value: str, at: datetime, *, event_id: int | None = None
) -> dict[str, Any]:
    """One `deal.propertyChange` webhook event as HubSpot sends it (a batch is a list)."""
    event: dict[str, Any] = dict(_sample("hubspot_deal_webhook.json")[1])
    event.update(
        eventId=event_id if event_id is not None else uuid.uuid4().int % 10**9,
        objectId=deal_id,
        propertyName=name,
        propertyValue=value,
        occurredAt=int(at.timestamp() * 1000),
    )
    return event


def aws_ace_opportunity(
    opportunity_id: str, *, stage: str = "Technical Validation", **project: Any
) -> Any:
    """An AWS Partner Central `GetOpportunity` answer wrapped with its EventBridge event, as a
    fetcher relays it; `project` overrides fields of its `Project`."""
    payload = sample("aws_ace_opportunity.json")
    payload["event"]["detail"]["opportunity"]["identifier"] = opportunity_id
    payload["getOpportunity"]["Id"] = opportunity_id
    payload["getOpportunity"]["LifeCycle"]["Stage"] = stage
    payload["getOpportunity"]["Project"].update(project)
    return payload


def microsoft_referral(referral_id: str, *, status: str = "Active", **details: Any) -> Any:
    """A Partner Center referral webhook with the referral it names; `details` overrides
    fields of its `Details`."""
    payload = sample("microsoft_referral.json")
    payload["referral"]["Id"] = referral_id
    payload["referral"]["Status"] = status
    payload["referral"]["Details"].update(details)
    return payload
