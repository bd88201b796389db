"""A proof reference names one MDF claim (domain/claims.check_repeat): the same claim asked
again under it is a repeat; other money, another description or another source of the money
under it is a conflict naming what the reference names and what the request is."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from services.incentives.domain.claims import ClaimAsk, ClaimConflict, RecordedClaim, check_repeat

RECORDED = RecordedClaim(
    claim_id="cl-1",
    proof_reference="INV-2026-001",
    amount=Decimal("0.50"),
    currency="USD",
    description="Same webinar",
    preapproval_id=None,
)


def ask(amount: str = "0.50", description: str = "Same webinar") -> ClaimAsk:
    return ClaimAsk("p-1", Decimal(amount), description, "INV-2026-001")


def test_the_same_claim_again_is_a_repeat() -> None:
    check_repeat(RECORDED, ask(), "USD", None)
    check_repeat(RECORDED, ask("0.5"), "USD", None)  # the same money written another way
    on = replace(RECORDED, preapproval_id="pa-1")
    check_repeat(on, ask(), "USD", "pa-1")


@pytest.mark.parametrize(
    ("asked", "currency", "preapproval_id", "is_"),
    [
        (ask("0.60"), "USD", None, "0.60 USD for 'Same webinar' from the fund"),
        (ask(description="Other"), "USD", None, "0.50 USD for 'Other' from the fund"),
        (ask(), "EUR", None, "0.50 EUR for 'Same webinar' from the fund"),
        (ask(), "USD", "pa-9", "0.50 USD for 'Same webinar' from pre-approval pa-9"),
    ],
)
def test_other_money_under_the_reference_is_a_conflict(
    asked: ClaimAsk, currency: str, preapproval_id: str | None, is_: str
) -> None:
    with pytest.raises(ClaimConflict) as refused:
        check_repeat(RECORDED, asked, currency, preapproval_id)
    assert refused.value.message == (
        "proof reference INV-2026-001 already names claim cl-1, 0.50 USD for 'Same webinar' "
        f"from the fund; this request is {is_}: a claim on other spending needs its own proof "
        "reference"
    )
