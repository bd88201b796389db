"""Incentives' ledger events as programme's tests play them: an earning's reversal made from
the earning itself."""

from __future__ import annotations

from datetime import datetime

from shared.events.incentives import IncentiveEarned, IncentiveReversed
from tests.support import factories


def reversal_of(earned: IncentiveEarned, at: datetime) -> IncentiveReversed:
    """Incentives' reversal of `earned` in full at `at`: the same partner, rule, credit, deal,
    period and amount."""
    return factories.incentive_reversed(
        reverses_entry_id=earned.entry_id,
        partner_id=earned.partner_id,
        program_rule=earned.program_rule,
        credit_id=earned.credit_id,
        deal_key=earned.deal_key,
        period=earned.period,
        amount=earned.amount,
        currency=earned.currency,
        reversed_at=at,
    )
