"""Where a partner stands with finance, from its ledger balance."""

from __future__ import annotations

from decimal import Decimal

from services.incentives.domain.settlement import Settlement, settlement_of


def test_a_positive_balance_is_owed_zero_settled_and_negative_overpaid() -> None:
    assert settlement_of(Decimal("0.01")) is Settlement.OWED
    assert settlement_of(Decimal("0.00")) is Settlement.SETTLED
    assert settlement_of(Decimal("-0.01")) is Settlement.OVERPAID
