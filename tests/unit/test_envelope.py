from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.events import (
    Envelope,
    EventPayload,
    InvalidEvent,
    decode_envelope,
    event_type,
    header_text,
    header_texts,
)
from shared.events.envelope import new_event_id
from tests.support import factories


@event_type("unit.thing_happened.v1")
class ThingHappened(EventPayload):
    thing_id: str
    amount: Decimal


EXPECTED = {ThingHappened.event_type: ThingHappened}


def test_envelope_round_trips_with_cloudevents_attributes() -> None:
    event = Envelope.wrap(
        ThingHappened(thing_id="t-1", amount=Decimal("10.05")),
        source="pollinate/unit",
        subject="t-1",
    )
    body = json.loads(event.to_bytes())
    assert body["specversion"] == "1.0"
    assert body["type"] == "unit.thing_happened.v1"
    assert body["subject"] == "t-1"
    assert body["data"] == {"thing_id": "t-1", "amount": "10.05"}
    decoded = decode_envelope(event.to_bytes(), EXPECTED)
    assert decoded is not None
    assert decoded.id == event.id
    assert decoded.data == ThingHappened(thing_id="t-1", amount=Decimal("10.05"))


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    event = Envelope.wrap(ThingHappened(thing_id="t", amount=Decimal(1)), source="s", subject="t")
    body = event.model_dump(mode="json")
    body["data"]["added_in_v1_1"] = {"anything": True}
    body["newattribute"] = "x"
    decoded = decode_envelope(json.dumps(body).encode(), EXPECTED)
    assert decoded is not None
    assert decoded.data.thing_id == "t"


def test_event_types_the_consumer_does_not_handle_are_skipped() -> None:
    event = Envelope.wrap(ThingHappened(thing_id="t", amount=Decimal(1)), source="s", subject="t")
    assert decode_envelope(event.to_bytes(), {}) is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{nope", "malformed CloudEvents envelope: <root>: Invalid JSON"),
        (b"[]", "malformed CloudEvents envelope: <root>: Input should be an object"),
        (
            json.dumps(
                {
                    "specversion": "1.0",
                    "id": str(uuid.uuid4()),
                    "source": "s",
                    "type": "unit.thing_happened.v1",
                    "time": "2026-01-01T00:00:00Z",
                    "data": {},
                }
            ).encode(),
            "malformed CloudEvents envelope: subject: Field required",
        ),
        (
            json.dumps(
                {
                    "specversion": "0.3",
                    "id": str(uuid.uuid4()),
                    "source": "s",
                    "type": "x",
                    "subject": "s",
                    "time": "2026-01-01T00:00:00Z",
                    "data": {},
                }
            ).encode(),
            "unsupported CloudEvents specversion '0.3'",
        ),
        (
            json.dumps(
                {
                    "specversion": "1.0",
                    "id": str(uuid.uuid4()),
                    "source": "s",
                    "type": "unit.thing_happened.v1",
                    "subject": "s",
                    "time": "2026-01-01T00:00:00Z",
                    "data": {"thing_id": "t", "amount": "ten"},
                }
            ).encode(),
            "invalid unit.thing_happened.v1 payload: amount: Input should be a valid decimal",
        ),
    ],
)
def test_invalid_events_get_a_precise_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as error:
        decode_envelope(raw, EXPECTED)
    assert str(error.value).startswith(reason)


def type_header(name: str) -> list[tuple[str, bytes]]:
    """The record headers a platform relay sets, naming the event's type."""
    return [("content-type", b"application/cloudevents+json"), ("ce_type", name.encode())]


THING = ThingHappened.event_type


def test_a_record_naming_its_type_is_validated_against_that_model_in_one_pass() -> None:
    event = Envelope.wrap(
        ThingHappened(thing_id="t-1", amount=Decimal("10.05")),
        source="pollinate/unit",
        subject="t-1",
        traceparent=f"00-{'a' * 32}-{'b' * 16}-01",
    )
    hinted = decode_envelope(event.to_bytes(), EXPECTED, type_header(THING))
    general = decode_envelope(event.to_bytes(), EXPECTED)
    assert hinted == general == event
    assert type(hinted) is Envelope[ThingHappened]  # the one pass, not the general path
    assert type(general) is Envelope[Any]


@pytest.mark.parametrize(
    "factory",
    [
        factories.crm_deal_changed,
        factories.deal_state_changed,
        factories.registration_decided,
        factories.partner_state_changed,
        factories.credit_issued,
        factories.incentive_earned,
        factories.mdf_accrued,
        factories.credit_booked,
        factories.partner_notification,
        factories.campaign_changed,
    ],
)
def test_the_one_pass_gives_what_the_general_path_gives_for_every_contract(factory: Any) -> None:
    payload = factory()
    raw = Envelope.wrap(payload, source="pollinate/unit", subject="s").to_bytes()
    expected = {payload.event_type: type(payload)}
    hinted = decode_envelope(raw, expected, type_header(payload.event_type))
    assert type(hinted) is Envelope[type(payload)]
    assert hinted == decode_envelope(raw, expected)


def body(**changes: Any) -> dict[str, Any]:
    event = Envelope.wrap(ThingHappened(thing_id="t", amount=Decimal(1)), source="s", subject="t")
    return {**event.model_dump(mode="json"), **changes}


@pytest.mark.parametrize("missing", ["id", "time", "specversion"])
def test_an_event_lacking_an_attribute_is_refused_whatever_its_headers_say(missing: str) -> None:
    """Envelope makes these up for an event being written; one read off the wire must carry
    them."""
    raw = json.dumps({k: v for k, v in body().items() if k != missing}).encode()
    with pytest.raises(InvalidEvent, match=f"malformed CloudEvents envelope: {missing}: Field"):
        decode_envelope(raw, EXPECTED, type_header(THING))


def test_the_body_decides_when_the_header_names_another_type() -> None:
    @event_type("unit.other_thing_happened.v1")
    class OtherThingHappened(EventPayload):
        thing_id: str

    expected = {**EXPECTED, OtherThingHappened.event_type: OtherThingHappened}
    raw = json.dumps(body()).encode()
    decoded = decode_envelope(raw, expected, type_header(OtherThingHappened.event_type))
    assert decoded is not None
    assert decoded.type == THING
    assert decoded.data == ThingHappened(thing_id="t", amount=Decimal(1))
    assert decode_envelope(raw, {}, type_header(THING)) is None  # not handled here


def test_a_content_type_other_than_json_is_read_as_the_general_path_reads_it() -> None:
    raw = json.dumps(body(datacontenttype="text/plain")).encode()
    hinted = decode_envelope(raw, EXPECTED, type_header(THING))
    assert hinted == decode_envelope(raw, EXPECTED)
    assert hinted is not None
    assert hinted.datacontenttype == "application/json"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"data": {"thing_id": "t", "amount": "ten"}}, "invalid unit.thing_happened.v1 payload"),
        ({"data": None}, "malformed CloudEvents envelope: data: Input should be an object"),
        ({"subject": 7}, "malformed CloudEvents envelope: subject"),
        ({"specversion": "0.3"}, "unsupported CloudEvents specversion '0.3'"),
    ],
)
def test_a_record_naming_its_type_gets_the_same_precise_reason(
    changes: dict[str, Any], reason: str
) -> None:
    raw = json.dumps(body(**changes)).encode()
    with pytest.raises(InvalidEvent) as hinted:
        decode_envelope(raw, EXPECTED, type_header(THING))
    with pytest.raises(InvalidEvent) as general:
        decode_envelope(raw, EXPECTED)
    assert str(hinted.value) == str(general.value)
    assert str(hinted.value).startswith(reason)


@pytest.mark.parametrize("amount", [75110097642892.12, 12500.0, 1e2, 0.5, 1e15])
def test_a_number_with_a_fraction_reads_as_the_general_path_reads_it(amount: float) -> None:
    """Read in one pass, a JSON number would become a Decimal by another rounding (the first
    amount's cents, the others' scale): an event carrying one takes the general path."""
    change = factories.crm_deal_changed().model_dump(mode="json")
    raw = json.dumps(
        {**body(), "type": "crm.deal.changed.v1", "data": {**change, "amount": amount}}
    ).encode()
    expected: dict[str, Any] = {"crm.deal.changed.v1": type(factories.crm_deal_changed())}
    hinted = decode_envelope(raw, expected, type_header("crm.deal.changed.v1"))
    general = decode_envelope(raw, expected)
    assert hinted is not None
    assert general is not None
    assert hinted.data.amount.as_tuple() == general.data.amount.as_tuple()
    assert type(hinted) is Envelope[Any]  # the general path


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
AMOUNTS = (
    st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str)
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(extra=JSON_VALUES, amount=AMOUNTS, compact=st.booleans())
def test_the_one_pass_is_taken_exactly_when_no_number_with_a_fraction_stands_outside_strings(
    extra: Any, amount: Any, compact: bool
) -> None:
    """Whatever else the event carries (strings holding dots, quotes and escapes; numbers in
    lists and objects; any spacing), it is read as the general path reads it, and in one pass
    whenever it has no number with a fraction or an exponent and nothing escaped. `json`'s
    own parser is the witness of which numbers are there."""
    data = {"thing_id": "t", "amount": amount, "extra": extra}
    raw = json.dumps(
        {**body(), "data": data},
        separators=(",", ":") if compact else (" , ", " : "),
        ensure_ascii=not compact,
    ).encode()
    fractional: list[str] = []
    json.loads(raw, parse_float=fractional.append)
    hinted = decode_envelope(raw, EXPECTED, type_header(THING))
    general = decode_envelope(raw, EXPECTED)
    assert hinted is not None
    assert general is not None
    assert hinted == general
    assert hinted.data.amount.as_tuple() == general.data.amount.as_tuple()
    if b"\\" not in raw:
        assert (type(hinted) is Envelope[ThingHappened]) == (not fractional)
    elif fractional:
        assert type(hinted) is Envelope[Any]


def test_headers_without_a_value_are_left_out() -> None:
    """Kafka lets a header carry no value; aiokafka reads it as None."""
    raw = json.dumps(body()).encode()
    headers = [("ce_type", None), ("traceparent", b"00-x"), ("ce_type", b"ignored"), ("k", None)]
    assert header_texts(headers) == {"traceparent": "00-x", "ce_type": "ignored"}
    assert header_texts(None) == {}
    decoded = decode_envelope(raw, EXPECTED, [("ce_type", None)])
    assert decoded == decode_envelope(raw, EXPECTED)


def test_an_event_type_name_cannot_be_registered_twice() -> None:
    with pytest.raises(ValueError, match="already registered"):

        @event_type("unit.thing_happened.v1")
        class Impostor(EventPayload):
            pass


def test_new_event_ids_are_uuid7_and_sort_by_creation_time() -> None:
    """Time-ordered ids keep the outbox's and inboxes' event-id indexes growing at one edge."""
    before = time.time_ns() // 1_000_000
    ids = [new_event_id() for _ in range(1000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    assert {i.version for i in ids} == {7}
    assert {i.variant for i in ids} == {uuid.RFC_4122}
    stamps = [i.int >> 80 for i in ids]
    assert before <= stamps[0]
    assert stamps[-1] <= after
    assert stamps == sorted(stamps)  # by millisecond; ids within one are random
    later = Envelope.wrap(
        ThingHappened(thing_id="t-1", amount=Decimal("1")), source="pollinate/unit", subject="t"
    )
    assert later.id.version == 7
    assert later.id.int >> 80 >= stamps[-1]


header_lists = st.lists(
    st.tuples(
        st.sampled_from(["ce_type", "traceparent", "ce_id", "x"]),
        st.none() | st.binary(max_size=12) | st.sampled_from([b"ce.v1", b"\xff\xfe"]),
    ),
    max_size=6,
)


@given(header_lists | st.none(), st.sampled_from(["ce_type", "traceparent", "absent"]))
def test_one_header_reads_as_it_does_among_all_of_them(
    headers: list[tuple[str, bytes | None]] | None, name: str
) -> None:
    assert header_text(headers, name) == header_texts(headers).get(name)
