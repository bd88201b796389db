"""The finance payouts list's pages: a cursor, not an offset, so paying partners on one page
moves no one past the next."""

from __future__ import annotations

import base64
from decimal import Decimal

import pytest

from services.incentives.domain.settlement import settlement_of
from services.incentives.payout_schemas import PartnerPayoutsOut
from services.incentives.payout_views import partners_page
from shared.errors import Unprocessable


def owed(partner_id: str, balance: str) -> PartnerPayoutsOut:
    amount = Decimal(balance)
    return PartnerPayoutsOut(
        partner_id=partner_id,
        earned=amount,
        reversed=Decimal(0),
        paid=Decimal(0),
        balance=amount,
        last_paid_at=None,
        state=settlement_of(amount),
        partner_status="active",
    )


def test_paying_the_first_page_skips_no_one_on_the_next() -> None:
    listed = [
        owed("a", "500"),
        owed("b", "400"),
        owed("c", "300"),
        owed("d", "300"),
        owed("e", "1"),
    ]
    first, before, after = partners_page(listed, None, 0, 2)
    assert ([p.partner_id for p in first], before) == (["a", "b"], 0)
    assert after is not None
    # Finance pays a and b: they leave the owed list. The next page is what followed b.
    still_owed = listed[2:]
    second, before, after = partners_page(still_owed, after, 0, 2)
    assert ([p.partner_id for p in second], before) == (["c", "d"], 0)
    last, before, after = partners_page(still_owed, after, 0, 2)
    assert ([p.partner_id for p in last], before, after) == (["e"], 2, None)
    # An offset (the former paging) would have shown e and skipped c and d.
    assert [p.partner_id for p in still_owed[2:4]] == ["e"]


def test_an_after_no_page_gave_is_refused() -> None:
    with pytest.raises(Unprocessable, match="after is not a `next_after` this list gave"):
        partners_page([owed("a", "1")], "not-a-cursor!", 0, 2)


@pytest.mark.parametrize(
    "balance", ["NaN", "sNaN", "Infinity", "-Infinity", "1e999999999", "1e-99"]
)
def test_a_cursor_balance_no_page_ends_on_is_refused_not_compared(balance: str) -> None:
    crafted = base64.urlsafe_b64encode(f"{balance}\nx".encode()).decode()
    with pytest.raises(Unprocessable, match="after is not a `next_after` this list gave"):
        partners_page([owed("a", "1")], crafted, 0, 2)
