from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal

import pytest

from shared.events import Envelope, EventPayload, InvalidEvent, decode_envelope, event_type
from shared.events.envelope import new_event_id


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
