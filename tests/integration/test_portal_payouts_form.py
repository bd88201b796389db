"""The finance payouts page in process, in front of a local HTTP server answering as incentives
does (its answers built from incentives' own response models): paying a partner answers the
page finance was working through."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from services.incentives.domain.settlement import Settlement
from services.incentives.payout_schemas import PartnerPayoutsOut, PayoutsOut
from shared.identity import Role
from tests.support.local_http import QuietHandler
from tests.support.portal import form_csrf
from tests.support.portal_in_process import signed_in_before
from tests.support.tokens import token

FINANCE = token("finance@tests", Role.FINANCE)


class Incentives(QuietHandler):
    """The payouts view (one owed partner) and a payout recorded; the views' queries as asked."""

    asked: ClassVar[list[dict[str, list[str]]]] = []

    def do_GET(self) -> None:
        Incentives.asked.append(parse_qs(urlsplit(self.path).query))
        owed = PartnerPayoutsOut(
            partner_id="p1",
            earned=Decimal("100.00"),
            reversed=Decimal("0.00"),
            paid=Decimal("0.00"),
            balance=Decimal("100.00"),
            last_paid_at=None,
            state=Settlement.OWED,
            partner_status="active",
        )
        view = PayoutsOut(
            period="2026-Q1",
            currency="USD",
            periods=["2026-Q1"],
            totals={},
            partners=[owed],
            total_partners=30,
            partners_before=20,
            next_after="bmV4dA==",
            payouts=[],
            total_payouts=0,
            next_payouts_before=None,
        )
        self.send_json(200, view.model_dump(mode="json"))

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        paid = {
            "entry_id": "e1",
            "partner_id": "p1",
            "amount": "100.00",
            "currency": "USD",
            "reference": "R1",
            "balance_after": "0.00",
            "paid_at": "2026-12-01T00:00:00+00:00",
        }
        self.send_json(201, paid)


@pytest.fixture
def finance() -> Iterator[TestClient]:
    Incentives.asked = []
    with signed_in_before(Incentives, FINANCE) as client:
        yield client


def test_paying_a_partner_answers_the_page_finance_was_working_through(
    finance: TestClient,
) -> None:
    """Found in review: a payment answered the unfiltered first page (period, state and page
    lost); and pages were offsets, so the partners a payment moved out of "owed" shifted the
    next page past as many others. The page is the list's cursor, kept through a payment."""
    start = "MTAwLjAwCnAw"
    shown = finance.get(
        "/finance/payouts", params={"period": "2026-Q1", "state": "owed", "after": start}
    )
    assert shown.status_code == 200, shown.text
    for hidden in (
        'name="period" value="2026-Q1"',
        'name="state" value="owed"',
        f'name="after" value="{start}"',
    ):
        assert hidden in shown.text
    assert "after=bmV4dA%3D%3D" in shown.text  # the next page starts where this one ends
    assert "21\u201321 of 30" in shown.text  # the page's place: partners_before + 1
    fields = {"reference": "R1", "period": "2026-Q1", "state": "owed", "after": start}
    csrf = form_csrf(finance, "/finance/payouts")
    paid = finance.post("/finance/partners/p1/payouts", data={**fields, "csrf_token": csrf})
    assert paid.status_code == 200, paid.text
    assert Incentives.asked[-1]["period"] == ["2026-Q1"]
    assert Incentives.asked[-1]["state"] == ["owed"]
    assert Incentives.asked[-1]["after"] == [start]
