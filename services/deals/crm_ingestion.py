"""CRM ingestion: payloads exactly as each upstream source delivers them (Salesforce CDC,
HubSpot webhooks, AWS ACE, Microsoft referrals) become canonical changes on crm.deals.v1.

The event id of a change derives from the source's own event id, so a repeated delivery is
recorded (and counted) once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from services.deals.adapters import (
    AdapterError,
    from_aws_ace,
    from_hubspot,
    from_microsoft_referral,
    from_salesforce_cdc,
)
from shared.db import Pool
from shared.errors import RequestError, Unprocessable
from shared.events.crm import CrmDealChanged
from shared.inputs import MalformedJson as MalformedJson  # the CRM routes answer 400 with it
from shared.inputs import parse_json as parse_json
from shared.outbox import Outbox, OutgoingEvent
from shared.topics import CRM_DEALS

CRM_EVENT_NAMESPACE = uuid.UUID("0b6d3f0e-5a7c-4a43-9d0e-2b1f6c9a8e21")
HUBSPOT_SIGNATURE_MAX_AGE_MS = 5 * 60 * 1000


class SignatureRefused(RequestError):
    """The upstream's request signature is missing, stale or wrong."""

    status = 401


async def record_changes(pool: Pool, outbox: Outbox, changes: Sequence[CrmDealChanged]) -> int:
    """Record the changes on crm.deals.v1 in one statement; returns how many were not recorded
    before (a repeated delivery, or a repeat within the request, is not)."""
    events = [
        OutgoingEvent(
            CRM_DEALS,
            change,
            change.deal_key,
            # The id derives from the source's own event id: a repeated delivery is the same event.
            event_id=uuid.uuid5(
                CRM_EVENT_NAMESPACE, f"{change.source.value}/{change.source_event_id}"
            ),
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


def salesforce_changes(payload: Any) -> list[CrmDealChanged]:
    """Opportunity Change Data Capture messages: one, or a list."""
    messages = payload if isinstance(payload, list) else [payload]
    return [change for message in messages for change in _adapt(from_salesforce_cdc, message)]


def hubspot_changes(payload: Any) -> list[CrmDealChanged]:
    """A HubSpot webhook batch (a JSON array)."""
    return _adapt(from_hubspot, payload)


def aws_ace_changes(payload: Any) -> list[CrmDealChanged]:
    """The fetched GetOpportunity response, or {event, getOpportunity} as a fetcher relays it."""
    opportunity = payload.get("getOpportunity", payload) if isinstance(payload, dict) else payload
    return _adapt(from_aws_ace, opportunity)


def microsoft_changes(payload: Any) -> list[CrmDealChanged]:
    """A Partner Center referral resource, bare or as {"referral": ...}."""
    referral = payload.get("referral", payload) if isinstance(payload, dict) else payload
    return _adapt(from_microsoft_referral, referral)


def verify_hubspot_signature(
    secret: str,
    url: str,
    raw: bytes,
    signature: str | None,
    timestamp: str | None,
    at: datetime,
) -> None:
    """HubSpot's v3 request signature: HMAC-SHA256 (base64) of method, URL, body and timestamp,
    at most five minutes old."""
    if not signature or not timestamp:
        raise SignatureRefused(
            "X-HubSpot-Signature-v3 and X-HubSpot-Request-Timestamp are required"
        )
    if not timestamp.isascii() or not timestamp.isdigit():
        raise SignatureRefused("X-HubSpot-Request-Timestamp must be epoch milliseconds")
    if abs(at.timestamp() * 1000 - int(timestamp)) > HUBSPOT_SIGNATURE_MAX_AGE_MS:
        raise SignatureRefused("X-HubSpot-Request-Timestamp is older than 5 minutes")
    message = f"POST{url}{raw.decode(errors='replace')}{timestamp}".encode()
    expected = base64.b64encode(
        hmac.new(secret.encode(), message, hashlib.sha256).digest()
    ).decode()
    if not signature.isascii() or not hmac.compare_digest(expected, signature):
        raise SignatureRefused("X-HubSpot-Signature-v3 does not match")
