"""CRM fidelity without infrastructure: payloads shaped as the vendors document them (not only
the repo's samples) read as the CRM meant them, and merge faithfully: cleared fields clear,
one moment's changes follow their sequence, restores restore, merges name their survivor."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.deals.adapters import (
    Ignored,
    ResyncNeeded,
    from_aws_ace,
    from_hubspot,
    from_microsoft_referral,
    from_salesforce_cdc,
)
from services.deals.crm_clients import backoff, retry_after
from services.deals.domain.crm import is_stale, merge_crm_change
from services.deals.domain.writeback import write_back_for
from shared.events.crm import CrmDealChanged, DealStage
from shared.events.registrations import RegistrationStatus
from tests.support.crm import hubspot_property_change, salesforce_cdc, sample

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
STORED: dict[str, Any] = {
    "name": "Renewal",
    "owner": "rep-1",
    "partner_ref": "p-ref",
    "co_sell": None,
    "currency": "USD",
    "amount": Decimal("1000"),
    "close_date": date(2026, 5, 1),
    "created_at": None,
    "products": ["data"],
    "stage": "proposal",
    "status": "open",
    "customer_name": "Northwind",
    "customer_domain": "northwind.example",
    "customer_country": "US",
    "deleted": False,
}


def _merged(stamps: dict[str, str], *changes: CrmDealChanged) -> dict[str, Any]:
    row = dict(STORED)
    for change in changes:
        row.update(merge_crm_change(row, stamps, change))
    return row


def test_salesforce_nulled_fields_clear_what_the_crm_cleared() -> None:
    message = salesforce_cdc("006A", "UPDATE", AT, {"StageName": "Closed Won"})
    header = message["payload"]["ChangeEventHeader"]
    header["nulledFields"] = ["Amount", "Partner_Account__c", "Account_Website__c", "Description"]
    header["changedFields"] = ["StageName", "Amount", "Partner_Account__c", "Account_Website__c"]
    [change] = from_salesforce_cdc(message)
    assert change.cleared == ("customer.domain", "amount", "partner_ref")
    row = _merged({}, change)
    assert (row["amount"], row["partner_ref"], row["customer_domain"]) == (None, None, None)
    assert (row["stage"], row["status"], row["name"]) == ("closed_won", "won", "Renewal")
    # An older change cannot bring a cleared value back.
    stamps: dict[str, str] = {}
    older = from_salesforce_cdc(
        salesforce_cdc("006A", "UPDATE", AT - timedelta(seconds=1), {"Amount": 5})
    )[0]
    assert _merged(stamps, change, older)["amount"] is None
    assert is_stale(stamps, older)


def test_a_pub_sub_api_event_as_decoded_reads_null_as_unchanged_and_epoch_dates() -> None:
    """The Pub/Sub API's Avro record: every field present, unchanged ones null; datetimes in
    epoch milliseconds, CloseDate in days since the epoch; header lists decoded to names."""
    record = {
        "ChangeEventHeader": {
            "entityName": "Opportunity",
            "recordIds": ["006P"],
            "changeType": "UPDATE",
            "changeOrigin": "com/salesforce/api/rest/61.0",
            "transactionKey": "000a-11",
            "sequenceNumber": 2,
            "commitTimestamp": int(AT.timestamp() * 1000),
            "commitNumber": 10991200001,
            "commitUser": "005x",
            "changedFields": ["StageName", "CloseDate", "LastModifiedDate"],
            "nulledFields": [],
            "diffFields": [],
        },
        "Name": None,
        "AccountId": None,
        "Amount": None,
        "StageName": "Negotiation/Review",
        "CloseDate": (date(2026, 5, 25) - date(1970, 1, 1)).days,
        "OwnerId": None,
        "Partner_Account__c": None,
        "Account_Name__c": None,
        "Account_Website__c": None,
        "Products__c": None,
        "CreatedDate": None,
        "LastModifiedDate": int(AT.timestamp() * 1000),
    }
    [change] = from_salesforce_cdc(record)
    assert (change.stage, change.close_date) == (DealStage.NEGOTIATION, date(2026, 5, 25))
    assert (change.amount, change.customer, change.owner, change.cleared) == (None, None, None, ())
    assert (change.source_commit, change.source_sequence) == (10991200001, 2)
    row = _merged({}, change)
    assert (row["amount"], row["owner"], row["stage"]) == (Decimal("1000"), "rep-1", "negotiation")
    # CometD's wrapper reads the same; a created date in epoch milliseconds too.
    wrapped = {"channel": "/data/OpportunityChangeEvent", "data": {"payload": record, "event": {}}}
    wrapped["data"]["payload"]["CreatedDate"] = int(AT.timestamp() * 1000)
    [again] = from_salesforce_cdc(wrapped)
    assert again.created_at == AT
    bitmap = copy.deepcopy(record)
    bitmap["ChangeEventHeader"]["nulledFields"] = ["0x04"]
    with pytest.raises(ValueError, match=r"nulledFields\[0\] is a field bitmap"):
        from_salesforce_cdc(bitmap)


def test_one_transactions_changes_of_one_moment_end_on_the_last_sequence() -> None:
    def step(sequence: int, stage: str) -> CrmDealChanged:
        message = salesforce_cdc("006S", "UPDATE", AT, {"StageName": stage})
        header = message["payload"]["ChangeEventHeader"]
        header.update(transactionKey="tx-1", sequenceNumber=sequence, commitNumber=77)
        [change] = from_salesforce_cdc(message)
        return change

    first, second = step(1, "Negotiation/Review"), step(2, "Closed Won")
    stamps: dict[str, str] = {}
    assert _merged(stamps, second, first)["stage"] == "closed_won"  # delivered out of order
    assert is_stale(stamps, first)
    assert _merged({}, first, second)["stage"] == "closed_won"
    assert first.source_event_id != second.source_event_id


def test_undelete_and_hubspot_restore_bring_a_deleted_deal_back() -> None:
    [deleted] = from_salesforce_cdc(salesforce_cdc("006U", "DELETE", AT, {}))
    [undeleted] = from_salesforce_cdc(
        salesforce_cdc("006U", "UNDELETE", AT + timedelta(seconds=1), {})
    )
    stamps: dict[str, str] = {}
    assert _merged(stamps, deleted)["deleted"] is True
    assert _merged(stamps, deleted, undeleted)["deleted"] is False
    deletion = hubspot_property_change(9, "amount", "1", AT)
    batch = [
        {**deletion, "subscriptionType": "deal.deletion", "eventId": 1},
        {
            **deletion,
            "subscriptionType": "deal.restore",
            "eventId": 2,
            "occurredAt": 1 + deletion["occurredAt"],
        },
    ]
    gone, back = from_hubspot(batch)
    assert _merged({}, gone, back)["deleted"] is False


def test_a_hubspot_empty_value_clears_and_events_are_told_apart_by_portal() -> None:
    cleared, named = from_hubspot(
        [
            hubspot_property_change(9, "amount", "", AT, event_id=5),
            {**hubspot_property_change(9, "dealname", "", AT, event_id=5), "portalId": 11},
        ]
    )
    assert (cleared.cleared, cleared.amount) == (("amount",), None)
    assert _merged({}, cleared)["amount"] is None
    assert _merged({}, named)["name"] is None
    # The same event id in two portals: two events, two deals.
    assert cleared.source_event_id != named.source_event_id
    assert cleared.deal_key != named.deal_key
    with pytest.raises(ValueError, match="a deal stage cannot be cleared"):
        from_hubspot([hubspot_property_change(9, "dealstage", "", AT)])


def test_a_hubspot_merge_deletes_the_merged_deals_into_the_survivor() -> None:
    event = {
        **hubspot_property_change(1, "amount", "1", AT, event_id=77),
        "subscriptionType": "deal.merge",
        "primaryObjectId": 100,
        "mergedObjectIds": [200, 300],
        "newObjectId": 400,
        "numberOfPropertiesMoved": 3,
    }
    kept, *merged = from_hubspot([event])
    portal = event["portalId"]
    assert (kept.source_id, kept.deleted, kept.merged_into) == (f"{portal}:400", False, None)
    assert [(m.source_id, m.change_type, m.merged_into) for m in merged] == [
        (f"{portal}:{loser}", "deleted", f"{portal}:400") for loser in (200, 300, 100)
    ]
    assert len({c.source_event_id for c in [kept, *merged]}) == 4


def test_a_salesforce_gap_event_asks_for_a_resync_of_its_records() -> None:
    message = salesforce_cdc("006G", "UPDATE", AT, {})
    message["payload"]["ChangeEventHeader"].update(
        changeType="GAP_UPDATE", recordIds=["006G", "006H"]
    )
    with pytest.raises(ResyncNeeded) as gap:
        from_salesforce_cdc(message)
    assert gap.value.record_ids == ("006G", "006H")


def test_a_deleted_salesforce_account_is_checked_for_a_merge_and_other_account_changes_ignored() -> (
    None
):
    """A merge arrives as the losers' Account DELETE (one event may name several) with no
    field values: each deleted Account is asked for its MasterRecordId."""
    deleted = salesforce_cdc("001A", "DELETE", AT, {})
    deleted["payload"]["ChangeEventHeader"].update(entityName="Account", recordIds=["001A", "001B"])
    with pytest.raises(ResyncNeeded) as merge:
        from_salesforce_cdc(deleted)
    assert merge.value.record_ids == ("Account/001A", "Account/001B")
    assert merge.value.since == AT.replace(microsecond=0)
    updated = salesforce_cdc("001M", "UPDATE", AT, {"Name": "Northwind"})
    updated["payload"]["ChangeEventHeader"]["entityName"] = "Account"
    with pytest.raises(Ignored) as ignored:
        from_salesforce_cdc(updated)
    assert not isinstance(ignored.value, ResyncNeeded)


def test_only_a_salesforce_record_id_reaches_a_soql_query() -> None:
    from services.deals.crm_clients import CrmRefused, soql_id

    assert soql_id("001M00000000001AAA") == "001M00000000001AAA"
    assert soql_id("001M00000000001") == "001M00000000001"
    for hostile in ("001' OR Id != '", "001M0000000000", "001M00000000001AAAA", ""):
        with pytest.raises(CrmRefused):
            soql_id(hostile)


def test_an_ace_opportunity_sums_its_spend_and_skips_an_entry_sized_by_a_link() -> None:
    opportunity = sample("aws_ace_opportunity.json")["getOpportunity"]
    opportunity["Project"]["ExpectedCustomerSpend"] = [
        {
            "Amount": "1000.50",
            "CurrencyCode": "USD",
            "Frequency": "Monthly",
            "TargetCompany": "AWS",
        },
        {
            "CurrencyCode": "USD",
            "Frequency": "Monthly",
            "EstimationUrl": "https://calculator.aws/#/estimate?id=1",
        },
        {"Amount": "250", "CurrencyCode": "USD", "Frequency": "Monthly", "TargetCompany": "AWS"},
    ]
    [change] = from_aws_ace(opportunity)
    assert (change.amount, change.currency) == (Decimal("15006.00"), "USD")
    opportunity["Project"]["ExpectedCustomerSpend"].append(
        {"Amount": "10", "CurrencyCode": "EUR", "Frequency": "Monthly"}
    )
    [mixed] = from_aws_ace(opportunity)  # no exact sum across currencies: left unknown
    assert (mixed.amount, mixed.currency, mixed.stage) == (None, None, DealStage.VALIDATION)


def test_a_microsoft_referral_as_the_rest_api_returns_it() -> None:
    referral = {
        "id": "b2a6f1de-0f44-4d0e-9d55-7c1e7b3a2c11",
        "engagementId": "5c9a0e3b-77d2-4a61-b1f0-2e8d4c6a9b70",
        "name": "Fabrikam - Security modernisation",
        "externalReferenceId": "CRM-OPP-21007",
        "createdDateTime": "2026-01-15T09:00:00Z",
        "updatedDateTime": "2026-01-20T10:31:00Z",
        "status": "Active",
        "substatus": "Accepted",
        "type": "Shared",
        "customerProfile": {
            "name": "Fabrikam Inc",
            "address": {"city": "Seattle", "country": "US"},
            "ids": [{"type": "CrmId", "value": "ACC 42"}, "fabrikam.com"],
        },
        "details": {
            "dealValue": 240000,
            "currency": "USD",
            "closingDateTime": "2026-05-30T00:00:00Z",
            "requirements": {"products": [{"id": "security-suite"}]},
        },
        "eTag": "W/\"datetime'2026-01-20T10%3A31%3A00.12Z'\"",
    }
    [change] = from_microsoft_referral(referral)
    assert change.customer is not None
    assert (change.customer.name, change.customer.domain) == ("Fabrikam Inc", "fabrikam.com")
    assert (change.amount, change.stage, change.co_sell) == (
        Decimal("240000"),
        DealStage.QUALIFICATION,
        True,
    )
    assert change.products == ("security-suite",)
    assert change.partner_ref == "CRM-OPP-21007"


def test_a_write_back_names_the_crm_record_and_its_own_fields() -> None:
    approved = RegistrationStatus.APPROVED
    salesforce = write_back_for("salesforce:006A", "reg-1", "p-1", approved, AT)
    assert salesforce is not None
    assert (salesforce.source, salesforce.record_id) == ("salesforce", "006A")
    assert salesforce.fields["Pollinate_Registration_Status__c"] == "approved"
    hubspot = write_back_for("hubspot:44556677:9", "reg-1", "p-1", approved, AT)
    assert hubspot is not None
    assert (hubspot.portal, hubspot.record_id) == ("44556677", "9")
    assert hubspot.fields["pollinate_partner_id"] == "p-1"
    ace = write_back_for("aws_ace:O1", "reg-1", "p-1", approved, AT)
    assert ace is not None
    assert (ace.source, ace.record_id, ace.fields["PartnerOpportunityIdentifier"]) == (
        "aws_ace",
        "O1",
        "reg-1",
    )
    assert ace.fields["LifeCycle.NextSteps"].startswith("Pollinate registration reg-1")
    microsoft = write_back_for("microsoft:r1", "reg-1", "p-1", approved, AT)
    assert microsoft is not None
    assert microsoft.fields == {
        "/externalReferenceId": "reg-1",
        "/status": "Active",
        "/substatus": "Accepted",
    }
    # A review or an expiry is no change of the referral: only the reference is written.
    review = write_back_for("microsoft:r1", "reg-1", "p-1", RegistrationStatus.EXPIRED, AT)
    assert review is not None
    assert review.fields == {"/externalReferenceId": "reg-1"}
    # A partner's registration refused is not the vendor declining the referral: nothing is
    # written (declined, it closed the vendor's co-sell opportunity; found in review).
    rejected = RegistrationStatus.REJECTED
    assert write_back_for("microsoft:r1", "reg-1", "p-1", rejected, AT) is None
    # Not linked, or a key naming no record: nothing to write.
    for key in (None, "aws_ace:", "microsoft:", "hubspot:44556677"):
        assert write_back_for(key, "reg-1", "p-1", approved, AT) is None


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("300000000000", 3600.0),  # no date lies that far: the cap (it failed every run)
        ("\u00b2", 60.0),  # a superscript two passed isdigit and failed float
        ("Wed, 21 Oct 2015 07:28:00 GMT", 60.0),  # a date: the default wait
        ("", 60.0),
    ],
)
def test_a_crms_retry_after_is_read_within_bounds(header: str, seconds: float) -> None:
    sent = [(b"Retry-After", header.encode("latin-1"))] if header else []  # as on the wire
    answer = httpx.Response(429, headers=sent)
    assert retry_after(answer) == seconds


def test_the_backoff_doubles_to_an_hour_and_stops_doubling_there() -> None:
    """5 s times 2**44 has no timedelta: a request failing for a day and a half made every run
    of its job fail (found in review)."""
    assert [backoff(n) for n in (1, 2, 3)] == [timedelta(seconds=s) for s in (5, 10, 20)]
    assert backoff(11) == backoff(45) == backoff(10**6) == timedelta(hours=1)
