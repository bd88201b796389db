"""CRM ingestion: payloads exactly as each upstream source delivers them (Salesforce CDC,
HubSpot webhooks, AWS ACE, Microsoft referrals) become canonical changes on crm.deals.v1.

The event id of a change derives from the source's own event id, so a repeated delivery is
recorded (and counted) once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from services.deals.adapters import (
    AdapterError,
    from_aws_ace,
    from_hubspot,
    from_microsoft_referral,
    from_salesforce_cdc,
)
from services.deals.adapters.common import obj, parse_datetime, require
from shared.db import Pool
from shared.errors import Unprocessable
from shared.events.crm import CrmDealChanged
from shared.inputs import MalformedJson as MalformedJson  # the CRM routes answer 400 with it
from shared.inputs import parse_json as parse_json
from shared.outbox import Outbox, OutgoingEvent
from shared.topics import CRM_DEALS

CRM_EVENT_NAMESPACE = uuid.UUID("0b6d3f0e-5a7c-4a43-9d0e-2b1f6c9a8e21")
# A source's clock may run a little ahead of ours; a moment further ahead is refused (it would
# win every later change of the fields it sets).
MAX_FUTURE_SKEW = timedelta(minutes=5)


def event_id(change: CrmDealChanged) -> uuid.UUID:
    """The id of a change's event: uuid5 of its source and the source's own event id, so a
    repeated delivery is the same event and no source can take another source's ids (a source
    name never contains the separator)."""
    return uuid.uuid5(CRM_EVENT_NAMESPACE, f"{change.source.value}/{change.source_event_id}")


async def record_changes(pool: Pool, outbox: Outbox, changes: Sequence[CrmDealChanged]) -> int:
    """Record the changes on crm.deals.v1 in one statement; returns how many were not recorded
    before (a repeated delivery, or a repeat within the request, is not)."""
    events = [
        OutgoingEvent(
            CRM_DEALS,
            change,
            change.deal_key,
            event_id=event_id(change),
        )
        for change in changes
    ]
    async with pool.acquire() as conn, conn.transaction():
        recorded = await outbox.publish_many(conn, events)
    return len(recorded)


def _adapt(adapter: Callable[[Any], list[CrmDealChanged]], payload: Any) -> list[CrmDealChanged]:
    try:
        return adapter(payload)
    except AdapterError as error:
        raise Unprocessable(str(error)) from error
    except ValueError as error:  # pydantic validation of the canonical change
        raise Unprocessable(f"cannot build canonical deal: {error}") from error


def not_ahead(moment: datetime, at: datetime, where: str) -> None:
    """A source's timestamp may lead our clock by at most MAX_FUTURE_SKEW."""
    if moment > at + MAX_FUTURE_SKEW:
        raise Unprocessable(f"{where} is more than 5 minutes in the future")


def _bounded(changes: list[CrmDealChanged], at: datetime, where: str) -> list[CrmDealChanged]:
    for change in changes:
        not_ahead(change.source_timestamp, at, where)
    return changes


def salesforce_changes(payload: Any, at: datetime) -> list[CrmDealChanged]:
    """Opportunity Change Data Capture messages: one, or a list."""
    messages = payload if isinstance(payload, list) else [payload]
    where = "payload.ChangeEventHeader.commitTimestamp"
    return [
        change
        for index, message in enumerate(messages)
        for change in _bounded(
            _adapt(from_salesforce_cdc, message),
            at,
            f"[{index}].{where}" if isinstance(payload, list) else where,
        )
    ]


def hubspot_changes(payload: Any, at: datetime) -> list[CrmDealChanged]:
    """A HubSpot webhook batch (a JSON array): one change per event, in order."""
    changes = _adapt(from_hubspot, payload)
    for index, change in enumerate(changes):
        not_ahead(change.source_timestamp, at, f"[{index}].occurredAt")
    return changes


def aws_ace_changes(payload: Any, at: datetime) -> list[CrmDealChanged]:
    """The fetched GetOpportunity response, or {event, getOpportunity} as a fetcher relays it
    (the EventBridge event's `time` is then bounded too)."""
    opportunity = payload.get("getOpportunity", payload) if isinstance(payload, dict) else payload
    if isinstance(payload, dict) and "event" in payload:
        not_ahead(_event_time(payload["event"]), at, "event.time")
    return _bounded(_adapt(from_aws_ace, opportunity), at, "opportunity.LastModifiedDate")


def microsoft_changes(payload: Any, at: datetime) -> list[CrmDealChanged]:
    """A Partner Center referral resource, bare or as {"referral": ...}."""
    referral = payload.get("referral", payload) if isinstance(payload, dict) else payload
    return _bounded(_adapt(from_microsoft_referral, referral), at, "referral.UpdatedDateTime")


def _event_time(event: Any) -> datetime:
    """The EventBridge event's `time` (when AWS emitted it)."""
    try:
        return parse_datetime(require(obj(event, "event"), "time", "event"), "event.time")
    except AdapterError as error:
        raise Unprocessable(str(error)) from error
