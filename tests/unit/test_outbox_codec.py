"""The outbox's codec: what it packs unpacks to the same bytes, its dictionary never changes,
and a value it cannot read says so in a way the relay can tell apart."""

import hashlib
from pathlib import Path
from typing import Any

import pytest

from shared import outbox_codec
from shared.events import Envelope
from shared.outbox_codec import ZSTD_DICTIONARY_V1, UnknownCodec, UnreadableValue
from tests.support import factories

# Rows written with codec 1 are read with this dictionary for as long as they are kept: a
# change to the file is a new codec (a new file and number), never an edit.
DICTIONARY_V1_SHA256 = "9ace06421a3e4740afe8458d5a8c99108ec10480304353708a18abf095edb467"

EVENTS: list[Any] = [
    factories.crm_deal_changed(),
    factories.deal_state_changed(),
    factories.credit_issued(),
    factories.credit_booked(),
    factories.partner_notification(),
    factories.partner_state_changed(),
    factories.registration_decided(),
]


def _value(payload: Any) -> bytes:
    return Envelope.wrap(payload, source="pollinate/test", subject="subject-1").to_bytes()


def test_dictionary_v1_is_frozen() -> None:
    text = (Path(outbox_codec.__file__).parent / "outbox_dictionary_v1.jsonl").read_bytes()
    assert hashlib.sha256(text).hexdigest() == DICTIONARY_V1_SHA256


@pytest.mark.parametrize("payload", EVENTS, ids=lambda p: type(p).__name__)
def test_a_packed_event_unpacks_to_its_bytes_and_is_smaller(payload: Any) -> None:
    value = _value(payload)
    packed, codec = outbox_codec.pack(value)
    assert codec == ZSTD_DICTIONARY_V1
    assert outbox_codec.unpack(packed, codec) == value
    # Events the dictionary never saw (other ids, names, times) still shrink to under half.
    assert len(packed) < len(value) / 2


def test_a_value_stored_as_is_is_read_as_is() -> None:
    value = _value(EVENTS[0])
    assert outbox_codec.unpack(value, None) is value


def test_a_codec_of_a_newer_version_is_unknown_not_unreadable() -> None:
    packed, _ = outbox_codec.pack(_value(EVENTS[0]))
    with pytest.raises(UnknownCodec, match="codec 2 is not known"):
        outbox_codec.unpack(packed, 2)


def test_a_damaged_value_is_unreadable() -> None:
    packed, codec = outbox_codec.pack(_value(EVENTS[0]))
    with pytest.raises(UnreadableValue, match="does not unpack"):
        outbox_codec.unpack(packed[: len(packed) // 2], codec)
    with pytest.raises(UnreadableValue):
        outbox_codec.unpack(b'{"not": "packed"}', codec)
