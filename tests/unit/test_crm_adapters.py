from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.deals.adapters import (
    AdapterError,
    from_aws_ace,
    from_hubspot,
    from_microsoft_referral,
    from_salesforce_cdc,
)
from shared.events.crm import CrmSource, DealStage

# Copies of the upstream samples from the project handout (../shared/samples).
SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "samples"


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def test_salesforce_create_then_partial_update_to_closed_won() -> None:
    create, update = sample("salesforce_opportunity_cdc.json")
    [created] = from_salesforce_cdc(create)
    assert created.deal_key == "salesforce:0065g00000XyZaAAAV"
    assert created.customer is not None
    assert created.customer.domain == "northwind-traders.com"
    assert created.amount == Decimal("185000.0")
    assert created.stage is DealStage.QUALIFICATION
    assert created.owner == "0055g00000DirRepAAA"
    assert created.products == (
        "data-platform",
        "migration-services",
    )
    [won] = from_salesforce_cdc(update)
    assert won.stage is DealStage.CLOSED_WON
    assert won.amount == Decimal("192500.0")
    assert won.customer is None
    assert won.name is None
    assert won.source_timestamp > created.source_timestamp


def test_hubspot_batch_maps_each_event() -> None:
    changes = from_hubspot(sample("hubspot_deal_webhook.json"))
    assert [c.change_type for c in changes] == ["created", "updated", "updated"]
    assert changes[1].amount == Decimal("48000")
    assert changes[2].stage is DealStage.PROSPECTING
    assert {c.source for c in changes} == {CrmSource.HUBSPOT}
    # Two portals number their deals independently: the portal is part of the key.
    assert {c.deal_key for c in changes} == {"hubspot:44556677:987654321"}
    # HubSpot's eventId is not unique: what the event says is part of its own id.
    assert changes[0].source_event_id.startswith("44556677:4100021:")


def test_aws_ace_fetched_opportunity() -> None:
    [change] = from_aws_ace(sample("aws_ace_opportunity.json")["getOpportunity"])
    assert change.customer is not None
    assert change.customer.country == "DE"
    assert change.amount == Decimal("144000")
    assert change.currency == "EUR"
    assert change.stage is DealStage.VALIDATION
    assert change.co_sell is True


def test_microsoft_referral_resource() -> None:
    [change] = from_microsoft_referral(sample("microsoft_referral.json")["referral"])
    assert change.customer is not None
    assert change.customer.domain == "fabrikam.com"
    assert change.customer.country == "US"
    assert change.products == ("security-suite",)
    assert change.amount == Decimal("240000")
    assert change.stage is DealStage.QUALIFICATION


@pytest.mark.parametrize(
    ("adapter", "payload", "message"),
    [
        (from_hubspot, {"not": "a list"}, "HubSpot delivers a JSON array"),
        (
            from_hubspot,
            [
                {
                    "subscriptionType": "deal.propertyChange",
                    "portalId": 5,
                    "objectId": 1,
                    "eventId": 2,
                    "occurredAt": 3,
                    "propertyName": "dealstage",
                    "propertyValue": "haggling",
                }
            ],
            "[0].propertyValue: unknown stage 'haggling'",
        ),
        (
            from_hubspot,
            [{"subscriptionType": "deal.creation", "portalId": 5, "eventId": 2, "occurredAt": 3}],
            "[0].objectId is required",
        ),
        (
            from_hubspot,
            [{"subscriptionType": "deal.creation", "objectId": 1, "eventId": 2, "occurredAt": 3}],
            "[0].portalId is required",
        ),
        (
            from_salesforce_cdc,
            {"payload": {"ChangeEventHeader": {"entityName": "Account"}}},
            "payload.ChangeEventHeader.entityName",
        ),
        (
            from_salesforce_cdc,
            {
                "payload": {
                    "ChangeEventHeader": {
                        "entityName": "Opportunity",
                        "recordIds": ["1"],
                        "changeType": "GAP_UPDATE",
                        "commitTimestamp": 1,
                    }
                }
            },
            "changeType 'GAP_UPDATE'",
        ),
        (from_aws_ace, {"Id": "O1"}, "opportunity.LastModifiedDate is required"),
        (
            from_microsoft_referral,
            {
                "Id": "r",
                "CustomerProfile": {"Name": "F"},
                "Status": "Active",
                "Substatus": "Accepted",
                "UpdatedDateTime": "yesterday",
            },
            "is not an ISO-8601 timestamp",
        ),
    ],
)
def test_bad_upstream_payloads_get_precise_errors(adapter: Any, payload: Any, message: str) -> None:
    with pytest.raises(AdapterError) as error:
        adapter(payload)
    assert message in str(error.value)


def _salesforce(**fields: Any) -> Any:
    create = sample("salesforce_opportunity_cdc.json")[0]
    create["payload"].update(fields)
    return create


def _hubspot(**fields: Any) -> Any:
    return [{**sample("hubspot_deal_webhook.json")[1], **fields}]


def _ace(**fields: Any) -> Any:
    return {**sample("aws_ace_opportunity.json")["getOpportunity"], **fields}


@pytest.mark.parametrize(
    ("adapter", "payload", "message"),
    [
        # Avro dates past date's range were an OverflowError: a 500 taking the batch with it
        (
            from_salesforce_cdc,
            _salesforce(CloseDate=5_000_000),
            "5000000 days from 1970 is no date",
        ),
        (from_salesforce_cdc, _salesforce(CloseDate=-3_000_000), "days from 1970 is no date"),
        # Dates the platform adds windows to stay within a hundred years of now
        (from_salesforce_cdc, _salesforce(CloseDate=2_900_000), "within a hundred years of now"),
        (
            from_salesforce_cdc,
            _salesforce(CloseDate="9999-12-31"),
            "CloseDate must be before 9999-12-31",
        ),
        (from_salesforce_cdc, _salesforce(CloseDate=-719_162), "within a hundred years"),
        (from_aws_ace, _ace(CreatedDate="9999-12-31T00:00:00Z"), "within a hundred years"),
        # An amount is read exactly or refused: never cut to 64 characters, never rounded
        (from_hubspot, _hubspot(propertyValue="0" * 60 + "12345"), "at most 64"),
        (from_hubspot, _hubspot(propertyValue="1_000"), "is not a number of ASCII digits"),
        (from_hubspot, _hubspot(propertyValue="\u0661\u0662\u0663"), "ASCII digits"),
        (from_hubspot, _hubspot(propertyValue=" 100 "), "ASCII digits"),
        (
            from_salesforce_cdc,
            _salesforce(Amount="99999999999999.999999999999999999999"),
            "has 21 decimals",
        ),
        (from_salesforce_cdc, _salesforce(Amount=10**70), "at most 64"),
        # An integer id is bounded like a string one (4,000 digits were accepted, then parked)
        (from_hubspot, _hubspot(objectId=10**4000 - 1), "at most 200 characters"),
        # HubSpot's ids are positive integers (" " and "0" made keys like hubspot:44556677: )
        (from_hubspot, _hubspot(objectId=" "), "' ' is not a HubSpot object id"),
        (from_hubspot, _hubspot(objectId="0"), "'0' is not a HubSpot object id"),
        (
            from_hubspot,
            _hubspot(subscriptionType="deal.merge", primaryObjectId=7, mergedObjectIds=["0"]),
            "mergedObjectIds[0]: '0' is not a HubSpot object id",
        ),
    ],
)
def test_values_past_what_the_platform_holds_are_refused_exactly(
    adapter: Any, payload: Any, message: str
) -> None:
    with pytest.raises(AdapterError) as error:
        adapter(payload)
    assert message in str(error.value)
