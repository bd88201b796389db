"""The /crm/* edge without infrastructure: malformed JSON, payloads an adapter cannot map and
timestamps from a source's future answer precisely; event ids are namespaced per source."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.deals.crm_ingestion import (
    Delivery,
    Item,
    MalformedJson,
    aws_ace_changes,
    event_id,
    exact_json,
    hubspot_changes,
    hubspot_items,
    microsoft_changes,
    parse_json,
    raw_event,
    salesforce_changes,
    salesforce_items,
)
from shared.errors import Unprocessable
from shared.events import Envelope
from shared.events.crm import CrmSource
from tests.support.crm import (
    aws_ace_opportunity,
    hubspot_property_change,
    microsoft_referral,
    salesforce_cdc,
)

AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_malformed_json_is_a_400() -> None:
    with pytest.raises(MalformedJson, match="malformed JSON") as refused:
        parse_json(b"{not json")
    assert refused.value.status == 400


def test_a_payload_an_adapter_cannot_map_is_unprocessable_saying_why() -> None:
    with pytest.raises(Unprocessable, match=r"payload\.ChangeEventHeader is required"):
        salesforce_changes({"payload": {}}, AT)
    change = hubspot_property_change(1, "dealstage", "haggling", AT)
    with pytest.raises(Unprocessable, match="unknown stage 'haggling'"):
        hubspot_changes([change], AT)


def test_a_source_timestamp_more_than_five_minutes_ahead_is_refused_naming_the_field() -> None:
    soon, later = AT + timedelta(minutes=4), AT + timedelta(minutes=6)
    assert salesforce_changes(salesforce_cdc("006A", "UPDATE", soon, {}), AT)
    with pytest.raises(Unprocessable, match=r"^\[1\]\.payload\.ChangeEventHeader\.commitTimestamp"):
        salesforce_changes(
            [
                salesforce_cdc("006A", "UPDATE", soon, {}),
                salesforce_cdc("006A", "UPDATE", later, {}),
            ],
            AT,
        )
    batch = [
        hubspot_property_change(1, "amount", "10", soon),
        hubspot_property_change(1, "amount", "20", later),
    ]
    with pytest.raises(Unprocessable, match=r"^\[1\]\.occurredAt is more than 5 minutes"):
        hubspot_changes(batch, AT)

    ace = aws_ace_opportunity("O1")
    ace["getOpportunity"]["LastModifiedDate"] = later.isoformat()
    with pytest.raises(Unprocessable, match=r"^opportunity\.LastModifiedDate is more than"):
        aws_ace_changes(ace, AT)
    ace = aws_ace_opportunity("O1")
    ace["event"]["time"] = "2030-01-01T00:00:00Z"
    with pytest.raises(Unprocessable, match=r"^event\.time is more than 5 minutes"):
        aws_ace_changes(ace, AT)
    del ace["event"]["time"]
    with pytest.raises(Unprocessable, match=r"event\.time is required"):
        aws_ace_changes(ace, AT)

    referral = microsoft_referral("R1")
    referral["referral"]["UpdatedDateTime"] = later.isoformat()
    with pytest.raises(Unprocessable, match=r"^referral\.UpdatedDateTime is more than"):
        microsoft_changes(referral, AT)


def test_one_source_cannot_take_another_sources_event_ids() -> None:
    [hubspot] = hubspot_changes([hubspot_property_change(7, "amount", "10", AT, event_id=9)], AT)
    [salesforce] = salesforce_changes(salesforce_cdc("006A", "UPDATE", AT, {}), AT)
    forged = salesforce.model_copy(update={"source_event_id": hubspot.source_event_id})
    assert event_id(forged) != event_id(hubspot)
    assert event_id(hubspot) == event_id(hubspot.model_copy())


def _outcome(item: Item) -> tuple[int, str, str | None]:
    if item.refused is not None:
        return item.index, "refused", item.refused
    if item.ignored is not None:
        return item.index, "ignored", item.ignored
    return item.index, "read", ",".join(change.deal_key for change in item.changes)


def test_each_salesforce_message_is_read_alone_and_a_bad_one_is_refused_by_index() -> None:
    account = salesforce_cdc("001A", "UPDATE", AT, {"Name": "Northwind"})
    account["payload"]["ChangeEventHeader"]["entityName"] = "Account"
    items = salesforce_items(
        [
            salesforce_cdc("006A", "UPDATE", AT, {"StageName": "Closed Won"}),
            salesforce_cdc("006B", "UPDATE", AT, {"StageName": "Haggling"}),
            account,  # a lead conversion's transaction: not an Opportunity, not refused
            {"payload": []},
            salesforce_cdc("006C", "CREATE", AT, {"Name": "New"}),
        ],
        AT,
    )
    assert [_outcome(item) for item in items] == [
        (0, "read", "salesforce:006A"),
        (
            1,
            "refused",
            "[1].payload.StageName: unknown stage 'Haggling' (known: closed lost, closed won, "
            "id. decision makers, needs analysis, negotiation/review, perception analysis, "
            "proposal/price quote, prospecting, qualification, value proposition; map it to "
            "open, won or lost in DEALS_SALESFORCE_STAGES)",
        ),
        (2, "ignored", "[2].payload.ChangeEventHeader.entityName is 'Account', not 'Opportunity'"),
        (3, "refused", "[3].payload: expected an object, got list"),
        (4, "read", "salesforce:006C"),
    ]
    with pytest.raises(Unprocessable, match=r"messages: at most 1000 items, got 1001"):
        salesforce_items([{}] * 1001, AT)


def test_each_hubspot_event_is_read_alone_and_a_foreign_portal_refused_alone() -> None:
    stage = hubspot_property_change(7, "dealstage", "closedwon", AT)
    association = {**stage, "subscriptionType": "deal.associationChange"}
    foreign = {**stage, "portalId": 99887766}
    contact = {**stage, "subscriptionType": "contact.creation"}
    items = hubspot_items([association, stage, foreign, contact], AT, frozenset({"44556677"}))
    assert [_outcome(item) for item in items] == [
        (0, "ignored", "[0]: a deal association carries nothing Pollinate keeps"),
        (1, "read", "hubspot:44556677:7"),
        (2, "refused", "[2].portalId '99887766' is not a HubSpot portal this platform ingests"),
        (3, "ignored", "[3].subscriptionType 'contact.creation' is not a deal subscription"),
    ]
    with pytest.raises(Unprocessable, match="HubSpot delivers a JSON array"):
        hubspot_items({"not": "a list"}, AT)


# JSON values as parse_json gives them: fractions as exact Decimals, any text (quotes,
# backslashes, lone surrogates, strings shaped like exact_json's own placeholders).
# Hypothesis' text leaves surrogates out: half pairs are mixed in, never a high half right
# before a low one (JSON reads that pair's escapes as the one character they make).
ANY_TEXT = st.text(
    st.characters() | st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"])
).filter(lambda text: re.search("[\ud800-\udbff][\udc00-\udfff]", text) is None)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | ANY_TEXT
    | st.from_regex(r'"?[0-9a-f]{32}[0-9]{1,3}"?', fullmatch=True),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_an_items_text_reads_back_as_the_item(value: Any) -> None:
    text = exact_json(value)
    assert parse_json(text.encode("utf-8")) == value  # UTF-8 as it is: nothing left unwritable
    assert exact_json(value) == text  # the same item, the same text (its raw event id)


def test_an_item_with_half_a_surrogate_pair_becomes_a_raw_event_that_can_be_written() -> None:
    """Found from outside: a signed delivery with "\\ud800" in any field answered 500 (its
    raw event's text had a character UTF-8 cannot hold). It is kept escaped, as sent."""
    sent = b'{"Name": "Acme \\ud83d\\ude00", "x": "a\\ud800b", "\\udfff": 1}'
    item = parse_json(sent)
    text = exact_json(item)
    assert text == '{"Name":"Acme \U0001f600","x":"a\\ud800b","\\udfff":1}'
    event = raw_event(
        CrmSource.SALESFORCE, item, 0, ("read",), (), Delivery("http", "/crm"), AT, None
    )
    envelope = Envelope.wrap(event.payload, source="pollinate/deals", subject=event.subject)
    assert parse_json(envelope.to_bytes())["data"]["item"] == text


def test_an_items_numbers_are_written_as_sent_and_compactly() -> None:
    sent = b'{"Amount": 1.50, "rates": [2.500, -0.0, 1e400], "n": 7, "s": "1.50"}'
    assert exact_json(parse_json(sent)) == (
        '{"Amount":1.50,"rates":[2.500,-0.0,1E+400],"n":7,"s":"1.50"}'
    )
