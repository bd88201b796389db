"""How an outbox row keeps its event: the CloudEvents JSON as written, or that JSON compressed.

The largest part of the write-ahead log a deal cost was its events' outbox rows (eight of
0.8-2 kB a deal, a third of it): under 2 kB a row, Postgres never compresses them itself (TOAST
starts at 2 kB whatever `toast_tuple_target` says), and on their own they compress badly,
since each is mostly names that every other event of its type repeats. Compressed with zstd
against a dictionary of the platform's own events, they keep 14-35% of their bytes (README,
Benchmarks).

The dictionary is frozen: a row keeps the number of the codec that wrote it (`value_codec`,
shared migration 0012; NULL for the JSON itself), and a codec's dictionary never changes, so
every row stays readable. The file's checksum is checked when it is loaded, and each frame
carries a checksum of its content, so a damaged value or a wrong dictionary is never read as
an event. A better dictionary is a new file and a new number, read beside the old ones.
`outbox_dictionary_v1.jsonl` is the newest event of each of 24 types the local stack's
outboxes held after the benchmark's runs (session 29): synthetic names only. Kafka still
carries the JSON: the relay unpacks each row before it sends it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import zstandard

# `value_codec` of a row compressed with zstd against dictionary v1.
ZSTD_DICTIONARY_V1 = 1

_DICTIONARY_V1 = Path(__file__).with_name("outbox_dictionary_v1.jsonl")
DICTIONARY_V1_SHA256 = "9ace06421a3e4740afe8458d5a8c99108ec10480304353708a18abf095edb467"
# No event is larger: Kafka's own limit is about 1 MB. A frame claiming more is damaged.
MAX_EVENT_BYTES = 64 * 1024 * 1024
# Level 3 compresses these rows no smaller than level 1 and takes longer: 1 it is.
_LEVEL = 1


class UnknownCodec(ValueError):
    """A row names a codec this version cannot read (written by a newer version): a relay of
    this version leaves it, and what follows it, to a newer one."""


class UnreadableValue(ValueError):
    """A row's value is not what its codec writes (damaged): it can never be sent."""


class WrongDictionary(RuntimeError):
    """The dictionary file is not the one its codec's rows were written with: a broken
    installation, refused before any row is written or read with it."""


class _Codec:
    def __init__(self, dictionary: bytes) -> None:
        # A raw-content dictionary: earlier text the compressor may point back into, no
        # training. Its id is not written into each frame: the row's column names it. The
        # frame's content checksum (4 bytes) is what tells a damaged value from an event.
        data = zstandard.ZstdCompressionDict(dictionary, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
        data.precompute_compress(level=_LEVEL)
        self._compressor = zstandard.ZstdCompressor(
            dict_data=data,
            level=_LEVEL,
            write_dict_id=False,
            write_content_size=True,
            write_checksum=True,
        )
        self._decompressor = zstandard.ZstdDecompressor(dict_data=data)

    def pack(self, value: bytes) -> bytes:
        return self._compressor.compress(value)

    def unpack(self, packed: bytes) -> bytes:
        try:
            size = zstandard.frame_content_size(packed)
            if not 0 < size <= MAX_EVENT_BYTES:  # -1: not stated; 0: no event is empty
                raise UnreadableValue(f"the stored value states a size of {size} bytes")
            # One frame and nothing after it: trailing bytes are damage too.
            return self._decompressor.decompress(packed, allow_extra_data=False)
        except zstandard.ZstdError as damaged:
            raise UnreadableValue(f"the stored value does not unpack: {damaged}") from None


_codecs: dict[int, _Codec] = {}


def _codec(number: int) -> _Codec:
    if number not in _codecs:
        if number != ZSTD_DICTIONARY_V1:
            raise UnknownCodec(f"outbox value codec {number} is not known to this version")
        dictionary = _DICTIONARY_V1.read_bytes()
        if hashlib.sha256(dictionary).hexdigest() != DICTIONARY_V1_SHA256:
            raise WrongDictionary(f"{_DICTIONARY_V1} is not the dictionary of codec {number}")
        _codecs[number] = _Codec(dictionary)
    return _codecs[number]


def load() -> None:
    """Read the newest codec's dictionary now (a service's start), so a broken installation
    fails there and not at its first event."""
    _codec(ZSTD_DICTIONARY_V1)


def pack(value: bytes) -> tuple[bytes, int]:
    """`value` as the newest codec stores it, and that codec's number."""
    return _codec(ZSTD_DICTIONARY_V1).pack(value), ZSTD_DICTIONARY_V1


def unpack(stored: bytes, codec: int | None) -> bytes:
    """The event's bytes from a row's `value` and `value_codec` (None: stored as they are)."""
    return stored if codec is None else _codec(codec).unpack(stored)
