"""Notifications' pure rules: who a message is for, cursors, the bound on live streams."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notifications.domain import cursor
from services.notifications.domain.addressing import Recipient, RecipientKind, addressee
from services.notifications.domain.messages import Message, first_of_each
from services.notifications.domain.streams import StreamLimit, TooManyStreams
from shared.errors import Unprocessable
from shared.events.notifications import NotificationKind
from tests.support.factories import partner_notification


def test_a_message_naming_its_partner_is_the_partners() -> None:
    note = partner_notification(partner_id="p-1")
    assert addressee(note) == Recipient(RecipientKind.PARTNER, "p-1")


def test_a_message_naming_a_direct_account_owner_is_the_owners_only() -> None:
    note = partner_notification(
        partner_id="p-1",
        recipient="rep@vendor.example",
        kind=NotificationKind.DIRECT_SALES_CONFLICT,
    )
    assert addressee(note) == Recipient(RecipientKind.OWNER, "rep@vendor.example")
    assert Message.of(note).recipient.kind is RecipientKind.OWNER


def test_a_batch_files_each_notification_once_in_its_order() -> None:
    a, b = partner_notification(), partner_notification()
    messages = [Message.of(n) for n in (a, b, a)]
    assert [m.notification_id for m in first_of_each(messages)] == [
        messages[0].notification_id,
        messages[1].notification_id,
    ]


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_a_cursor_names_its_position(position: int) -> None:
    assert cursor.decode(cursor.encode(position)) == position


def test_cursors_keep_their_order_opaque() -> None:
    assert cursor.encode(5) != "5"
    assert not cursor.encode(5).isdigit()


@pytest.mark.parametrize(
    "refused",
    ["5", "", "bjE6", "bjE6LTE", "bjI6NQ", "!!!!", "é", "x" * 41, cursor.encode(2**63)[:-1] + "x"],
)
def test_anything_not_handed_out_is_refused(refused: str) -> None:
    with pytest.raises(Unprocessable, match="after is not a cursor this service handed out"):
        cursor.decode(refused, "after")


def test_a_position_beyond_a_bigint_is_refused() -> None:
    with pytest.raises(Unprocessable):
        cursor.decode(cursor.encode(2**63))


def test_streams_are_bounded_per_recipient_and_given_back() -> None:
    limit = StreamLimit(2)
    limit.acquire("partner:a")
    limit.acquire("partner:a")
    limit.acquire("partner:b")  # another recipient's streams are its own
    with pytest.raises(TooManyStreams) as refused:
        limit.acquire("partner:a")
    assert refused.value.status == 429
    assert "at most 2 open notification streams" in refused.value.message
    limit.release("partner:a")
    limit.acquire("partner:a")
    assert limit.open_for("partner:a") == 2
    limit.release("partner:a")
    limit.release("partner:a")
    assert limit.open_for("partner:a") == 0
