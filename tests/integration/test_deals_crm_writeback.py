"""CRM write-back on real Kafka records and Postgres, against local servers speaking
Salesforce's and HubSpot's documented REST shapes: a registration decided on a CRM deal is
written to that deal; while the CRM is down the event is retried and redelivered, never
skipped, and written once the CRM is back; a write the CRM refuses for good is dead-lettered
with the CRM's reason."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from services.deals.settings import DealsSettings
from shared.consumer import Outcome
from shared.events.registrations import RegistrationStatus
from tests.support.crm import HUBSPOT_PORTAL, HubSpotCrm, SalesforceServer
from tests.support.deals import (
    registration_won,
    write_back_through_an_outage,
)
from tests.support.factories import registration_decided
from tests.support.infra import Infra

pytestmark = pytest.mark.integration
AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def test_a_write_back_waits_out_a_crm_outage_and_a_refused_one_is_dead_lettered(
    infra: Infra,
) -> None:
    run = uuid.uuid4().hex[:8]
    with SalesforceServer() as salesforce, HubSpotCrm() as hubspot:
        salesforce.put(f"006W{run}", AT)
        hubspot.deals["555"] = {}
        settings = DealsSettings(
            salesforce_instance_url=salesforce.url,
            salesforce_access_token=SecretStr(salesforce.TOKEN),
            hubspot_api_url=hubspot.url,
            hubspot_access_tokens=SecretStr(f"{HUBSPOT_PORTAL}={hubspot.TOKEN}"),
        )
        decided = registration_decided(
            registration_id=f"reg-sf-{run}", crm_deal_key=f"salesforce:006W{run}"
        )
        on_hubspot = registration_decided(
            registration_id=f"reg-hs-{run}",
            crm_deal_key=f"hubspot:{HUBSPOT_PORTAL}:555",
            status=RegistrationStatus.PENDING_REVIEW,
        )
        won = registration_won(decided, AT)
        gone = registration_decided(
            registration_id=f"reg-gone-{run}", crm_deal_key=f"salesforce:006Gone{run}"
        )
        unlinked = registration_decided(registration_id=f"reg-none-{run}")
        outcomes, reasons = await write_back_through_an_outage(
            infra,
            settings,
            [decided, on_hubspot, won, gone, unlinked],
            [salesforce],
            nothing_written=lambda: salesforce.updates == [],
        )
    assert outcomes == [
        Outcome.PROCESSED,
        Outcome.PROCESSED,
        Outcome.PROCESSED,
        Outcome.DEAD_LETTERED,
        Outcome.PROCESSED,
    ]
    assert reasons == [
        "rejected by handler: CRM write-back refused: Salesforce answered 404 NOT_FOUND"
    ]
    # The refused write sends the batch round again record by record (each in a savepoint),
    # so a write may be sent twice: each sets the same values, in the events' order.
    distinct = list({json.dumps(update): update for update in salesforce.updates}.values())
    assert salesforce.records[f"006W{run}"]["Pollinate_Registration_Status__c"] == "won"
    assert distinct == [
        (
            f"006W{run}",
            {
                "Pollinate_Registration_Status__c": "approved",
                "Pollinate_Partner_Id__c": decided.partner_id,
                "Pollinate_Registration_Id__c": f"reg-sf-{run}",
                "Pollinate_Decided_At__c": decided.decided_at.isoformat(),
            },
        ),
        (
            f"006W{run}",
            {
                "Pollinate_Registration_Status__c": "won",
                "Pollinate_Partner_Id__c": decided.partner_id,
                "Pollinate_Registration_Id__c": f"reg-sf-{run}",
                "Pollinate_Decided_At__c": AT.isoformat(),
            },
        ),
    ]
    assert hubspot.deals["555"]["pollinate_registration_status"] == "pending_review"
