"""Name-based ids are the standard library's uuid5, to the bit: credits, ledger entries and
notifications already stored carry ids made by `uuid.uuid5`, and a redelivered event must name
the same ones again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.name_ids import NameIds

namespaces = st.integers(min_value=0, max_value=(1 << 128) - 1).map(lambda i: uuid.UUID(int=i))
# Any text UTF-8 can carry (a lone surrogate cannot be encoded: see the last test).
names = st.text(st.characters(exclude_categories=["Cs"]), max_size=300)


@given(namespaces, names)
def test_every_form_is_the_standard_librarys_uuid5(namespace: uuid.UUID, name: str) -> None:
    expected = uuid.uuid5(namespace, name)
    ids = NameIds(namespace)
    made = ids.uuid(name)
    assert made == expected
    assert (made.version, made.variant) == (5, uuid.RFC_4122)
    assert ids.hex(name) == expected.hex
    assert ids.text(name) == str(expected)


def test_the_python_documentations_example() -> None:
    ids = NameIds(uuid.NAMESPACE_DNS)
    assert str(ids.uuid("python.org")) == "886313e1-3b8a-5372-9b90-0c9aee199e5d"
    assert ids.text("python.org") == "886313e1-3b8a-5372-9b90-0c9aee199e5d"
    assert ids.hex("python.org") == "886313e13b8a53729b900c9aee199e5d"


def test_a_name_utf8_cannot_carry_is_refused_as_uuid5_refuses_it() -> None:
    with pytest.raises(UnicodeEncodeError):
        uuid.uuid5(uuid.NAMESPACE_URL, "a\udc80")
    with pytest.raises(UnicodeEncodeError):
        NameIds(uuid.NAMESPACE_URL).uuid("a\udc80")


# (hypothesis takes naive bounds and puts the zone on what it draws)
moments = st.datetimes(
    min_value=datetime(1970, 1, 1),  # noqa: DTZ001
    max_value=datetime(9999, 12, 30),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@given(namespaces, names, moments, moments)
def test_an_ordered_id_is_its_moment_then_its_names_digest(
    namespace: uuid.UUID, name: str, at: datetime, other: datetime
) -> None:
    ids = NameIds(namespace)
    made = ids.ordered(at, name)
    assert (made.version, made.variant) == (8, uuid.RFC_4122)
    assert made.int >> 80 == (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    assert ids.ordered(at, name) == made  # the same name and moment: the same id
    assert ids.ordered_text(at, name) == str(made)
    # The rest is the version 5 id's digest bits, so names stay apart as uuid5 keeps them.
    digest = uuid.uuid5(namespace, name).int
    kept = (0xFFF << 64) | ((1 << 62) - 1)
    assert made.int & kept == digest & kept
    # Ids sort by their moments, to the millisecond.
    later = ids.ordered(other, name)
    if other - at >= timedelta(milliseconds=1):
        assert later > made
    if at - other >= timedelta(milliseconds=1):
        assert later < made
