"""The /crm/* edge without infrastructure: HubSpot's v3 signature, malformed JSON and payloads
an adapter cannot map answer precisely."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from services.deals.crm_ingestion import (
    MalformedJson,
    SignatureRefused,
    hubspot_changes,
    parse_json,
    salesforce_changes,
    verify_hubspot_signature,
)
from shared.errors import Unprocessable
from tests.support.crm import hubspot_property_change

SECRET = "hubspot-client-secret"
URL = "https://deals.example/crm/hubspot"
BODY = b'[{"objectId": 1}]'
AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def signed(at: datetime, body: bytes = BODY) -> tuple[str, str]:
    timestamp = str(int(at.timestamp() * 1000))
    message = f"POST{URL}{body.decode()}{timestamp}".encode()
    digest = hmac.new(SECRET.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode(), timestamp


def test_a_fresh_correct_signature_is_accepted() -> None:
    signature, timestamp = signed(AT - timedelta(minutes=4))
    verify_hubspot_signature(SECRET, URL, BODY, signature, timestamp, AT)


@pytest.mark.parametrize(
    ("signature", "timestamp", "message"),
    [
        (None, "1", "X-HubSpot-Signature-v3 and X-HubSpot-Request-Timestamp are required"),
        (signed(AT - timedelta(minutes=6))[0], signed(AT - timedelta(minutes=6))[1], "older"),
        (signed(AT, b"[]")[0], signed(AT)[1], "X-HubSpot-Signature-v3 does not match"),
    ],
)
def test_a_missing_stale_or_wrong_signature_is_refused(
    signature: str | None, timestamp: str, message: str
) -> None:
    with pytest.raises(SignatureRefused, match=message) as refused:
        verify_hubspot_signature(SECRET, URL, BODY, signature, timestamp, AT)
    assert refused.value.status == 401


def test_malformed_json_is_a_400() -> None:
    with pytest.raises(MalformedJson, match="malformed JSON") as refused:
        parse_json(b"{not json")
    assert refused.value.status == 400


def test_a_payload_an_adapter_cannot_map_is_unprocessable_saying_why() -> None:
    with pytest.raises(Unprocessable, match=r"payload\.ChangeEventHeader is required"):
        salesforce_changes({"payload": {}})
    change = hubspot_property_change(1, "dealstage", "haggling", AT)
    with pytest.raises(Unprocessable, match="unknown stage 'haggling'"):
        hubspot_changes([change])
