"""What an outside tester's realistic CRM payloads found, without infrastructure: HubSpot
event ids that are not unique, stages of other pipelines and custom stages, programme
snapshots that stop carrying a field, and the thin events EventBridge and Partner Center's
webhooks really send."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from services.deals.adapters import (
    AdapterError,
    from_aws_ace,
    from_hubspot,
    from_microsoft_referral,
    from_salesforce_cdc,
)
from services.deals.adapters.common import Ignored, ResyncNeeded
from services.deals.adapters.salesforce import SalesforceOrg, from_salesforce_record
from services.deals.crm_ingestion import aws_ace_items, microsoft_items
from services.deals.crm_resync import asked_for
from services.deals.domain.crm import merge_crm_change
from services.deals.settings import DealsSettings
from shared.events.crm import CrmDealChanged, DealStage
from tests.support.crm import hubspot_property_change, microsoft_event, salesforce_cdc, sample

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


# ---- HubSpot: eventId is documented as not guaranteed to be unique


def _shared_event_id(attempt: int) -> list[dict[str, Any]]:
    """The tester's batch: three changes of two deals under one eventId."""
    changes = [
        (1001, "amount", "18000"),
        (1002, "amount", "5000"),
        (1001, "dealstage", "closedwon"),
    ]
    return [
        {**hubspot_property_change(deal, name, value, AT, event_id=77), "attemptNumber": attempt}
        for deal, name, value in changes
    ]


def test_hubspot_events_sharing_an_event_id_are_three_events_and_a_redelivery_is_the_same() -> None:
    first = [c.source_event_id for c in from_hubspot(_shared_event_id(attempt=0))]
    again = [c.source_event_id for c in from_hubspot(_shared_event_id(attempt=1))]
    assert len(set(first)) == 3
    assert all(ident.startswith("44556677:77:") for ident in first)
    assert again == first  # HubSpot's retry counts attemptNumber up: still the same events


def test_hubspot_merges_sharing_an_event_id_name_each_deal_they_touch_apart() -> None:
    merge = {
        **hubspot_property_change(10, "amount", "1", AT, event_id=5),
        "subscriptionType": "deal.merge",
        "primaryObjectId": 10,
    }
    one = from_hubspot([{**merge, "mergedObjectIds": [11]}])
    other = from_hubspot([{**merge, "mergedObjectIds": [12]}])
    # The survivor's change of each merge was one id: the second merge's was a duplicate.
    ids = [change.source_event_id for change in [*one, *other]]
    assert len(set(ids)) == 4


# ---- stages outside the defaults


def _second_pipeline(stage: str) -> list[dict[str, Any]]:
    return [hubspot_property_change(1001, "dealstage", stage, AT)]


def test_a_hubspot_stage_of_another_pipeline_is_read_through_the_configured_map() -> None:
    stages = DealsSettings(hubspot_stages={"1034567": "open", "1034572": "won"}).hubspot_stages
    [opened] = from_hubspot(_second_pipeline("1034567"), stages)
    [won] = from_hubspot(_second_pipeline("1034572"), stages)
    assert (opened.stage, won.stage) == (DealStage.PROSPECTING, DealStage.CLOSED_WON)
    with pytest.raises(AdapterError) as unknown:
        from_hubspot(_second_pipeline("1034599"), stages)
    assert str(unknown.value).endswith(
        "(known: appointmentscheduled, closedlost, closedwon, contractsent, "
        "decisionmakerboughtin, presentationscheduled, qualifiedtobuy, and the 2 of "
        "DEALS_HUBSPOT_STAGES; map it to open, won or lost in DEALS_HUBSPOT_STAGES)"
    )


def test_hubspot_generic_deal_events_read_as_the_legacy_ones_and_other_objects_are_ignored() -> (
    None
):
    """An app subscribed with `crmObjects` gets `object.*` events, the object's type in
    `objectTypeId` (0-3: a deal); they were ignored, answered 2xx and lost."""
    legacy = hubspot_property_change(1001, "dealstage", "closedwon", AT, event_id=9)
    generic = {**legacy, "subscriptionType": "object.propertyChange", "objectTypeId": "0-3"}
    [read] = from_hubspot([generic])
    [expected] = from_hubspot([legacy])
    assert read.model_dump(exclude={"source_event_id"}) == expected.model_dump(
        exclude={"source_event_id"}
    )
    created = {**generic, "subscriptionType": "object.creation"}
    assert [c.change_type for c in from_hubspot([created])] == ["created"]
    contact = {**generic, "objectTypeId": "0-1"}
    with pytest.raises(Ignored, match=r"\[0\]\.objectTypeId '0-1' is not a deal \(0-3\)"):
        from_hubspot([contact])
    untyped = {k: v for k, v in generic.items() if k != "objectTypeId"}
    with pytest.raises(AdapterError, match=r"objectTypeId"):
        from_hubspot([untyped])
    company = {
        **generic,
        "subscriptionType": "object.associationChange",
        "associationType": "COMPANY_TO_DEAL",
        "fromObjectId": 77,
        "toObjectId": 1001,
    }
    with pytest.raises(ResyncNeeded) as needed:
        from_hubspot([company])
    assert needed.value.record_ids == (f"{legacy['portalId']}:1001",)


def test_the_stage_maps_are_read_from_json_settings_and_a_bad_entry_stops_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEALS_SALESFORCE_STAGES", '{" Discovery ": "Qualification"}')
    assert DealsSettings().salesforce_stages == {"discovery": DealStage.QUALIFICATION}
    monkeypatch.setenv("DEALS_HUBSPOT_STAGES", '{"1034572": "signed"}')
    with pytest.raises(ValidationError, match="DEALS_HUBSPOT_STAGES: '1034572' -> 'signed'"):
        DealsSettings()


def _salesforce_stage(fields: dict[str, Any], **stages: DealStage) -> DealStage | None:
    [change] = from_salesforce_cdc(
        salesforce_cdc("006S", "UPDATE", AT, fields), SalesforceOrg(stages)
    )
    return change.stage


def test_salesforce_reads_won_lost_and_open_from_is_won_and_is_closed() -> None:
    read = [
        # an org's own won stage: Salesforce says it is won
        {"StageName": "Closed Won - Signed", "IsClosed": True, "IsWon": True},
        # closed from an open stage: IsWon did not change (false), so it is not carried
        {"StageName": "Closed - Budget Cut", "IsClosed": True},
        {"StageName": "Discovery Call", "IsClosed": False},
        # a known name agreeing with the flags keeps its stage; disagreeing, the flags win
        {"StageName": "Negotiation/Review", "IsClosed": False},
        {"StageName": "Closed Won", "IsClosed": False, "IsWon": False},
        # won to an org's own lost stage: IsWon changed, IsClosed stayed true (not carried)
        {"StageName": "Closed Lost - Budget", "IsWon": False},
    ]
    assert [_salesforce_stage(fields) for fields in read] == [
        DealStage.CLOSED_WON,
        DealStage.CLOSED_LOST,
        DealStage.PROSPECTING,
        DealStage.NEGOTIATION,
        DealStage.PROSPECTING,
        DealStage.CLOSED_LOST,
    ]


def test_a_salesforce_stage_without_flags_is_read_by_its_name_or_refused_naming_the_setting() -> (
    None
):
    # An open stage to another, or a won one to another: IsClosed/IsWon did not change.
    assert _salesforce_stage({"StageName": "Discovery"}, discovery=DealStage.QUALIFICATION) == (
        DealStage.QUALIFICATION
    )
    with pytest.raises(AdapterError, match=r"'Discovery' .*in DEALS_SALESFORCE_STAGES\)$"):
        _salesforce_stage({"StageName": "Discovery"})
    with pytest.raises(AdapterError, match=r"payload\.IsWon: expected a boolean, got str"):
        _salesforce_stage({"StageName": "Closed Won", "IsWon": "true"})


@pytest.mark.parametrize("change", ["UPDATE", "GAP_UPDATE"])
def test_a_salesforce_event_for_every_record_is_no_deal_and_fetches_the_changes(
    change: str,
) -> None:
    """A field's type converted: Salesforce sends one event naming `006*` (the key prefix and
    a wildcard) and no values. It made a deal `salesforce:006*`."""
    message = salesforce_cdc("006*", change, AT, {})
    message["payload"]["ChangeEventHeader"]["nulledFields"] = ["Products__c"]
    with pytest.raises(ResyncNeeded, match=r"names every Opportunity \('006\*'") as needed:
        from_salesforce_cdc(message)
    assert (needed.value.record_ids, needed.value.since) == ((), AT)


def test_a_single_currency_salesforce_org_reads_amounts_in_its_currency(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Multiple currencies are off by default: changes carry no CurrencyIsoCode."""
    euro = SalesforceOrg(currency="EUR")
    created = salesforce_cdc("006E", "CREATE", AT, {"Amount": 1200.5, "StageName": "Prospecting"})
    [change] = from_salesforce_cdc(created, euro)
    assert (change.amount, change.currency) == (Decimal("1200.5"), "EUR")
    [unknown] = from_salesforce_cdc(created)  # an org said to have many: no currency named
    assert unknown.currency is None
    renamed = salesforce_cdc("006E", "UPDATE", AT, {"Name": "Renamed"})
    assert from_salesforce_cdc(renamed, euro)[0].currency is None  # no amount: nothing said
    assert "CurrencyIsoCode" not in euro.record_fields
    assert "CurrencyIsoCode" in SalesforceOrg().record_fields
    monkeypatch.setenv("DEALS_SALESFORCE_CURRENCY", "EUR")
    assert DealsSettings().salesforce_org.currency == "EUR"
    monkeypatch.setenv("DEALS_SALESFORCE_CURRENCY", "EURO")
    with pytest.raises(ValidationError, match="DEALS_SALESFORCE_CURRENCY 'EURO' is not an ISO"):
        DealsSettings()


def test_a_salesforce_snapshot_of_a_custom_won_stage_is_won() -> None:
    record = {
        "Id": "006R",
        "StageName": "Closed Won - Signed",
        "IsClosed": True,
        "IsWon": True,
        "SystemModstamp": "2026-03-02T09:00:00.000+0000",
    }
    assert from_salesforce_record(record).stage is DealStage.CLOSED_WON


# ---- programme snapshots are whole records: what they stop carrying is cleared

STORED: dict[str, Any] = {
    "name": "Migration",
    "partner_ref": "CRM-OPP-1",
    "currency": "USD",
    "amount": Decimal("12000"),
    "close_date": date(2026, 5, 1),
    "products": ["security-suite"],
    "customer_name": "Contoso",
    "customer_domain": "contoso.example",
    "customer_country": "DE",
    "stage": "closed_won",
    "status": "won",
}


def _merged(*changes: CrmDealChanged) -> dict[str, Any]:
    row, stamps = dict(STORED), {}
    for change in changes:
        row.update(merge_crm_change(row, stamps, change))
    return row


def test_an_ace_opportunity_without_the_fields_the_api_leaves_optional_is_read() -> None:
    """GetOpportunity requires only the ids and times: a draft may have no stage, no
    LifeCycle or no Customer (they were refused, and the opportunity lost until its next
    update); what it does not say stays as it was, not cleared."""
    opportunity = sample("aws_ace_opportunity.json")["getOpportunity"]
    [whole] = from_aws_ace(opportunity)
    without_stage = copy.deepcopy(opportunity)
    del without_stage["LifeCycle"]["Stage"]
    [no_stage] = from_aws_ace(without_stage)
    assert (no_stage.stage, no_stage.close_date) == (None, whole.close_date)
    assert "stage" not in no_stage.cleared
    bare = {k: v for k, v in opportunity.items() if k not in ("LifeCycle", "Customer")}
    [draft] = from_aws_ace(bare)
    assert (draft.stage, draft.close_date, draft.customer) == (None, None, None)
    assert not {"stage", "close_date"} & set(draft.cleared)
    assert not any(field.startswith("customer") for field in draft.cleared)
    assert draft.amount == whole.amount


def test_an_ace_snapshot_without_the_partner_ref_or_with_spend_in_two_currencies_clears_them() -> (
    None
):
    opportunity = sample("aws_ace_opportunity.json")["getOpportunity"]
    later = copy.deepcopy(opportunity)
    later["LastModifiedDate"] = "2026-01-12T16:00:00Z"
    del later["PartnerOpportunityIdentifier"]
    later["Project"]["ExpectedCustomerSpend"] = [
        {"Amount": "1000", "CurrencyCode": "USD", "Frequency": "Monthly"},
        {"Amount": "500", "CurrencyCode": "EUR", "Frequency": "Monthly"},
    ]
    [first], [second] = from_aws_ace(opportunity), from_aws_ace(later)
    assert first.cleared == ()
    assert set(second.cleared) == {"partner_ref", "amount", "currency"}
    row = _merged(first, second)
    assert (row["partner_ref"], row["amount"], row["currency"]) == (None, None, None)
    # An older snapshot arriving late cannot bring them back.
    assert _merged(second, first)["partner_ref"] is None


def test_a_referral_snapshot_without_a_deal_value_or_reference_clears_them() -> None:
    referral = sample("microsoft_referral.json")["referral"]
    del referral["Details"]["DealValue"], referral["ExternalReferenceId"]
    del referral["CustomerProfile"]["Ids"], referral["ETag"]
    [change] = from_microsoft_referral(referral)
    assert set(change.cleared) == {"amount", "partner_ref", "customer.domain"}
    row = _merged(change)
    assert (row["amount"], row["partner_ref"], row["customer_domain"]) == (None, None, None)
    assert (row["currency"], row["products"]) == ("USD", ["security-suite"])


# ---- AWS ACE: what an EventBridge API destination sends


def _event(kind: str, **detail: Any) -> dict[str, Any]:
    event: dict[str, Any] = copy.deepcopy(sample("aws_ace_opportunity.json")["event"])
    event["detail-type"] = kind
    event["time"] = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    event["detail"].update(detail)
    return event


@pytest.mark.parametrize("kind", ["Opportunity Created", "Opportunity Updated"])
def test_a_thin_opportunity_event_is_a_request_to_fetch_the_opportunity(kind: str) -> None:
    [item] = aws_ace_items(_event(kind), datetime.now(UTC))
    assert item.refused is None
    assert item.resync is not None
    assert item.resync.record_ids == ("O4417723",)
    assert f"{kind!r} names opportunity O4417723" in str(item.resync)


def test_a_thin_event_without_ace_credentials_says_it_waits_for_them() -> None:
    [item] = aws_ace_items(_event("Opportunity Updated"), datetime.now(UTC), fetching=False)
    assert item.resync is not None
    assert str(item.resync).endswith(
        "no ACE credentials are configured (DEALS_ACE_ACCESS_KEY_ID, "
        "DEALS_ACE_SECRET_ACCESS_KEY): the request waits in crm_resyncs until they are"
    )


def test_other_partner_central_events_and_other_catalogs_are_ignored() -> None:
    invitation = _event("Engagement Invitation Created", engagementInvitation={"id": "engi-1"})
    del invitation["detail"]["opportunity"]
    sandbox = _event("Opportunity Updated", catalog="Sandbox")
    [ignored] = aws_ace_items(invitation, datetime.now(UTC))
    [elsewhere] = aws_ace_items(sandbox, datetime.now(UTC))
    assert ignored.ignored == (
        "event.detail-type 'Engagement Invitation Created' carries nothing Pollinate keeps"
    )
    assert "DEALS_ACE_CATALOG 'AWS'" in str(elsewhere.ignored)


def test_a_thin_event_from_the_future_or_naming_no_opportunity_is_refused() -> None:
    ahead = _event("Opportunity Updated")
    ahead["time"] = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    nameless = _event("Opportunity Updated", opportunity={})
    [future] = aws_ace_items(ahead, datetime.now(UTC))
    [unnamed] = aws_ace_items(nameless, datetime.now(UTC))
    assert future.refused == "event.time is more than 5 minutes in the future"
    assert unnamed.refused == "event.detail.opportunity.identifier is required"


# ---- Microsoft: what a Partner Center webhook sends (the event's name and a resource URI)

REFERRAL = "c5fbb3b6-be74-4795-9fb5-4324c73fed37"
EVENT_REFERRALS = "https://api.partnercenter.microsoft.com/engagements/v1/referrals"


def _referral_event(kind: str = "referral-updated", uri: Any = None) -> dict[str, Any]:
    at = datetime.now(UTC) - timedelta(seconds=5)
    event = microsoft_event(kind, REFERRAL, at)
    if uri is not None:
        event["ResourceUri"] = uri
    return event


@pytest.mark.parametrize("kind", ["referral-created", "referral-updated"])
def test_a_referral_event_is_a_request_to_fetch_the_referral(kind: str) -> None:
    event = _referral_event(kind)
    [item] = microsoft_items(event, datetime.now(UTC))
    assert item.refused is None
    assert item.resync is not None
    assert item.resync.record_ids == (REFERRAL,)
    assert item.resync.since == datetime.fromisoformat(event["ResourceChangeUtcDate"])
    assert str(item.resync) == (
        f"event.EventName {kind!r} names referral {REFERRAL} without its fields: it is fetched"
        " (GET engagements/referrals/<id>)"
    )


@pytest.mark.parametrize(
    "uri",
    [
        f"{EVENT_REFERRALS}/{REFERRAL}",
        f"https://API.PartnerCenter.microsoft.com/engagements/v1/Referrals/{REFERRAL}",
        f"https://api.partner.microsoft.com/v1.0/engagements/referrals/{REFERRAL}",
    ],
)
def test_the_referral_is_named_as_the_webhook_or_the_referrals_api_writes_it(uri: str) -> None:
    [item] = microsoft_items(_referral_event(uri=uri), datetime.now(UTC))
    assert item.resync is not None
    assert item.resync.record_ids == (REFERRAL,)


def test_a_referral_of_the_configured_referrals_api_is_named_by_its_url() -> None:
    configured = "http://127.0.0.1:8123/v1.0/engagements/referrals"
    event = _referral_event(uri=f"{configured}/{REFERRAL}")
    [item] = microsoft_items(event, datetime.now(UTC), configured)
    [default] = microsoft_items(event, datetime.now(UTC))
    assert item.resync is not None
    assert item.resync.record_ids == (REFERRAL,)
    assert default.refused is not None


def test_a_referral_event_without_a_partner_center_token_says_it_waits_for_one() -> None:
    [item] = microsoft_items(_referral_event(), datetime.now(UTC), fetching=False)
    assert item.resync is not None
    assert item.resync.record_ids == (REFERRAL,)
    assert str(item.resync).endswith(
        "no Partner Center credentials are configured (DEALS_MICROSOFT_ACCESS_TOKEN): the "
        "request waits in crm_resyncs until they are"
    )


@pytest.mark.parametrize("kind", ["test-created", "invoice-ready", "create-transfer"])
def test_other_partner_center_events_are_ignored(kind: str) -> None:
    event = {"EventName": kind, "ResourceUri": "https://api.partnercenter.microsoft.com/v1/x"}
    [item] = microsoft_items(event, datetime.now(UTC))
    assert (item.refused, item.resync) == (None, None)
    assert item.ignored == f"event.EventName {kind!r} carries nothing Pollinate keeps"


NOT_A_REFERRAL = "event.ResourceUri does not name a referral of the Partner Center Referrals API"
ONE_SEGMENT = "event.ResourceUri: the referral id must be one path segment"


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        (f"https://partner-center.example/engagements/v1/referrals/{REFERRAL}", NOT_A_REFERRAL),
        (
            f"http://api.partnercenter.microsoft.com/engagements/v1/referrals/{REFERRAL}",
            NOT_A_REFERRAL,
        ),
        (
            f"https://a@api.partnercenter.microsoft.com/engagements/v1/referrals/{REFERRAL}",
            NOT_A_REFERRAL,
        ),
        (
            f"https://api.partnercenter.microsoft.com:8443/engagements/v1/referrals/{REFERRAL}",
            NOT_A_REFERRAL,
        ),
        (f"https://api.partnercenter.microsoft.com/v1/customers/{REFERRAL}", NOT_A_REFERRAL),
        (
            f"https://api.partnercenter.microsoft.com/engagements/v1/referrals2/{REFERRAL}",
            NOT_A_REFERRAL,
        ),
        (f"{EVENT_REFERRALS}/{REFERRAL}/notes", ONE_SEGMENT),
        (f"{EVENT_REFERRALS}/{REFERRAL}%2Fnotes", ONE_SEGMENT),
        (f"{EVENT_REFERRALS}//{REFERRAL}", ONE_SEGMENT),
        (f"{EVENT_REFERRALS}/..", ONE_SEGMENT),
        (f"{EVENT_REFERRALS}/", ONE_SEGMENT),
        (f"{EVENT_REFERRALS}/{'a' * 201}", ONE_SEGMENT),
        (
            f"{EVENT_REFERRALS}/{REFERRAL}?$expand=team",
            "event.ResourceUri: a referral's URI has no",
        ),
        (f"{EVENT_REFERRALS}/{REFERRAL}#top", "event.ResourceUri: a referral's URI has no"),
        ("https://[::1/engagements/v1/referrals/x", "event.ResourceUri is not a URI"),
        (42, "event.ResourceUri: expected a string, got int"),
        ("", "event.ResourceUri is required"),
    ],
)
def test_a_referral_event_naming_anything_else_is_refused_with_its_reason(
    uri: Any, reason: str
) -> None:
    [item] = microsoft_items(_referral_event(uri=uri), datetime.now(UTC))
    assert item.resync is None
    assert item.refused is not None
    assert item.refused.startswith(reason)
    assert "partner-center.example" not in item.refused  # the sender's text is not echoed


def test_a_referral_event_from_the_future_or_without_its_time_is_refused() -> None:
    ahead = _referral_event()
    ahead["ResourceChangeUtcDate"] = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    timeless = _referral_event()
    del timeless["ResourceChangeUtcDate"]
    hidden = _referral_event("referral-\u202eupdated")
    [future], [untimed], [bidi] = (
        microsoft_items(event, datetime.now(UTC)) for event in (ahead, timeless, hidden)
    )
    assert future.refused == "event.ResourceChangeUtcDate is more than 5 minutes in the future"
    assert untimed.refused == "event.ResourceChangeUtcDate is required"
    assert bidi.refused is not None
    assert "bidirectional" in bidi.refused


def test_a_fetch_answering_another_record_than_asked_is_refused() -> None:
    """A fetch recorded under the answer's own id changed a deal no event named and marked the
    one asked for done, unfetched."""
    [change] = from_aws_ace(sample("aws_ace_opportunity.json")["getOpportunity"])
    assert asked_for({"record_id": change.source_id}, change, "GetOpportunity") is change
    with pytest.raises(AdapterError) as refused:
        asked_for({"record_id": "O-asked"}, change, "GetOpportunity")
    assert (
        str(refused.value)
        == f"GetOpportunity answered {change.source_id!r} when asked for 'O-asked'"
    )
