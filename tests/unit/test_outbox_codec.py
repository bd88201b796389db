"""The outbox's codec: what it packs unpacks to the same bytes, its dictionary never changes,
and a value it cannot read says so in a way the relay can tell apart."""

import hashlib
from pathlib import Path
from typing import Any

import pytest
import zstandard

from shared import outbox_codec
from shared.events import Envelope
from shared.outbox import Outbox
from shared.outbox_codec import (
    ZSTD_DICTIONARY_V1,
    UnknownCodec,
    UnreadableValue,
    WrongDictionary,
)
from shared.service import service_outbox
from shared.settings import ServiceSettings
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
    assert outbox_codec.DICTIONARY_V1_SHA256 == DICTIONARY_V1_SHA256


@pytest.fixture
def another_dictionary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Codec 1's dictionary file replaced by another text (a broken installation)."""
    other = tmp_path / "outbox_dictionary_v1.jsonl"
    other.write_bytes(b'{"specversion":"1.0"}\n')
    monkeypatch.setattr(outbox_codec, "_DICTIONARY_V1", other)
    monkeypatch.setattr(outbox_codec, "_codecs", {})


@pytest.mark.usefixtures("another_dictionary")
def test_another_dictionary_file_is_refused_before_anything_is_written_with_it() -> None:
    with pytest.raises(WrongDictionary, match="is not the dictionary of codec 1"):
        Outbox("deals", "pollinate/deals")
    with pytest.raises(WrongDictionary):
        outbox_codec.unpack(b"\x28\xb5\x2f\xfd", ZSTD_DICTIONARY_V1)
    Outbox("deals", "pollinate/deals", compress=False)  # nothing to read it with: no need


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
    flipped = bytearray(packed)
    flipped[len(packed) // 2] ^= 0x01  # inside the data: only the content checksum can tell
    with pytest.raises(UnreadableValue, match="does not unpack"):
        outbox_codec.unpack(bytes(flipped), codec)
    with pytest.raises(UnreadableValue, match="does not unpack"):
        outbox_codec.unpack(packed + packed, codec)  # another frame after it


# A frame header (magic, a descriptor for a single segment with an 8-byte content size) that
# states a terabyte, then an empty last block: what a damaged size field looks like.
_A_TERABYTE_STATED = b"\x28\xb5\x2f\xfd\xe0" + (2**40).to_bytes(8, "little") + b"\x01\x00\x00"


@pytest.mark.parametrize(
    ("frame", "stated"),
    [
        (zstandard.ZstdCompressor().compress(b""), "0"),
        (zstandard.ZstdCompressor(write_content_size=False).compress(b"{}"), "-1"),
        (_A_TERABYTE_STATED, str(2**40)),
    ],
    ids=["nothing", "not-stated", "a-terabyte"],
)
def test_a_frame_stating_no_plausible_event_size_is_unreadable(frame: bytes, stated: str) -> None:
    """No event is empty or larger than Kafka takes, and this codec always states the size:
    anything else is refused before a byte is decompressed (a terabyte would be allocated)."""
    with pytest.raises(UnreadableValue, match=f"states a size of {stated} bytes"):
        outbox_codec.unpack(frame, ZSTD_DICTIONARY_V1)


def test_the_settings_decide_whether_a_service_outbox_compresses() -> None:
    assert service_outbox("deals", ServiceSettings(service_name="deals")).compress is True
    upgrading = ServiceSettings(service_name="deals", outbox_compression=False)
    assert service_outbox("deals", upgrading).compress is False
