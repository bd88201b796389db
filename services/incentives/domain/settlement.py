"""Where a partner stands with the vendor's finance team: what its ledger balance means for a
payout. Plain rules, no I/O."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum


class Settlement(StrEnum):
    OWED = "owed"  # earned more than was paid out: a payout is due
    SETTLED = "settled"  # everything earned was paid (or nothing was earned)
    OVERPAID = "overpaid"  # clawbacks after a payout: the partner owes the vendor


def settlement_of(balance: Decimal) -> Settlement:
    if balance > 0:
        return Settlement.OWED
    if balance < 0:
        return Settlement.OVERPAID
    return Settlement.SETTLED
