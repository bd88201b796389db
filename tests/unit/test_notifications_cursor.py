"""Notifications' cursors (domain/cursor.py): opaque, one spelling per position, and never one
the service could not have handed out: not written as `encode` writes it, naming no message,
or ahead of the newest message of the inbox it is used on."""

from __future__ import annotations

import base64

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from services.notifications.domain import cursor
from shared.errors import Unprocessable

NOT_HANDED_OUT = "after is not a cursor this service handed out"
POSITIONS = st.integers(min_value=cursor.FIRST_POSITION, max_value=cursor.LAST_POSITION)


def spelled(text: str) -> str:
    """`text` in the cursor's base64, without padding (as `encode` writes it)."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@given(POSITIONS)
def test_a_cursor_names_its_position(position: int) -> None:
    assert cursor.decode(cursor.encode(position)) == position
    assert cursor.claim(cursor.encode(position), "after") == cursor.ClaimedPosition(
        position, "after"
    )
    assert cursor.claim(cursor.encode(position), "after").cursor == cursor.encode(position)


def test_cursors_keep_their_order_opaque() -> None:
    assert cursor.encode(5) != "5"
    assert not cursor.encode(5).isdigit()


@pytest.mark.parametrize(
    "refused",
    ["5", "", "bjE6", "bjE6LTE", "bjI6NQ", "!!!!", "é", "x" * 41, cursor.encode(2**63)[:-1] + "x"],
)
def test_anything_not_a_cursor_is_refused(refused: str) -> None:
    with pytest.raises(Unprocessable) as raised:
        cursor.decode(refused, "after")
    assert raised.value.message == NOT_HANDED_OUT


@pytest.mark.parametrize(
    "other_spelling",
    [
        "bjE6MQ==",  # padded
        "bjE6MQ=",
        "bjE6MR",  # the last character's unused bits set
        "bjE6...MQ",  # characters outside the alphabet, which base64 decoding skips
    ],
)
def test_another_spelling_of_a_position_is_refused(other_spelling: str) -> None:
    """Each decodes to position 1, whose one cursor is encode(1)."""
    assert base64.urlsafe_b64decode(other_spelling + "=" * (-len(other_spelling) % 4)) == b"n1:1"
    assert other_spelling != cursor.encode(1)
    with pytest.raises(Unprocessable) as raised:
        cursor.decode(other_spelling, "after")
    assert (
        raised.value.message
        == f"{NOT_HANDED_OUT}: it is not spelled as this service writes cursors"
    )


@given(POSITIONS, st.integers(min_value=1, max_value=5))
@example(1, 4)  # the probe's n1:00001
def test_no_position_has_a_spelling_with_leading_zeros(position: int, zeros: int) -> None:
    with pytest.raises(Unprocessable, match="not spelled as this service writes cursors"):
        cursor.decode(spelled(f"n1:{'0' * zeros}{position}"), "after")


def test_position_zero_names_no_message() -> None:
    """The first message is at position 1: no message, no page and no stream hands out 0."""
    with pytest.raises(Unprocessable) as raised:
        cursor.decode(cursor.encode(0), "after")
    assert raised.value.message == (
        f"{NOT_HANDED_OUT}: it names no message (the first message is at position 1)"
    )


def test_a_position_beyond_a_bigint_is_refused() -> None:
    with pytest.raises(Unprocessable) as raised:
        cursor.decode(cursor.encode(2**63), "after")
    assert raised.value.message == f"{NOT_HANDED_OUT}: it names no position a message can hold"


@given(POSITIONS, st.integers(min_value=0, max_value=cursor.LAST_POSITION))
def test_a_claim_holds_only_up_to_the_inboxs_newest_message(position: int, newest: int) -> None:
    claimed = cursor.claim(cursor.encode(position), "through")
    if position <= newest:
        assert claimed.verified(newest) == position
    else:
        with pytest.raises(Unprocessable) as raised:
            claimed.verified(newest)
        assert raised.value.message == (
            "through is not a cursor this service handed out: "
            "it is ahead of the newest message in this inbox"
        )


@pytest.mark.parametrize("given_as", ["after", "before", "through", "Last-Event-ID"])
def test_an_empty_inbox_handed_out_no_cursor(given_as: str) -> None:
    with pytest.raises(Unprocessable, match=f"^{given_as} is not a cursor this service handed"):
        cursor.claim(cursor.encode(1), given_as).verified(0)


def test_the_largest_position_is_refused_by_any_inbox_that_has_not_reached_it() -> None:
    """The probe's forged cursor: it decodes, but no inbox ever handed it out."""
    forged = spelled(f"n1:{2**63 - 1}")
    claimed = cursor.claim(forged, "after")
    assert claimed.position == 2**63 - 1
    with pytest.raises(Unprocessable, match="ahead of the newest message in this inbox"):
        claimed.verified(18)
