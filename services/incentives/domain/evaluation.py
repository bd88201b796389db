"""What one credit (real, or hypothetical in a what-if) earns in its surroundings: its earning
lines and its MDF accrual, from the same rules in both cases."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from services.incentives.domain.earnings import CreditFacts, Earnings, compute_earnings
from services.incentives.domain.mdf import MdfAccrual, accrue
from services.incentives.domain.programs import IncentivePrograms
from services.incentives.domain.surroundings import Context


def refusal(
    programs: IncentivePrograms, *, credit_id: str, amount: Decimal, currency: str
) -> str | None:
    """Why a credit cannot be booked at all (None: it can). Attribution credits in the
    reporting currency, and a credit is never negative (a correction is a reversal)."""
    if currency != programs.currency:
        return (
            f"credit {credit_id} is in {currency}; the incentive programs pay in "
            f"{programs.currency} (attribution credits in the reporting currency)"
        )
    if amount < 0:
        return f"credit {credit_id} has a negative amount {amount}"
    return programs.finer_than_currency(amount, f"credit {credit_id}'s amount")


def evaluate(
    programs: IncentivePrograms,
    context: Context,
    *,
    credit_id: str,
    partner_id: str,
    kind: str,
    amount: Decimal,
    currency: str,
    products: frozenset[str],
    co_sell: bool,
    close_date: date,
    at: datetime,
) -> tuple[Earnings, MdfAccrual | None]:
    """The credit's earnings (the period cap counts what `context` says is already earned) and
    its MDF accrual at `at` (None: nothing accrues)."""
    facts = CreditFacts(
        credit_id=credit_id,
        partner_id=partner_id,
        kind=kind,
        amount=amount,
        currency=currency,
        products=products,
        co_sell=co_sell,
        close_date=close_date,
        tier=context.tier,
        partner_status=context.status,
        new_logo=context.new_logo,
        new_region=context.new_region,
        partner_type=context.partner_type,
    )
    earnings = compute_earnings(programs, facts, context.earned_in_period)
    accrual = accrue(
        programs,
        tier=context.tier,
        kind=kind,
        amount=amount,
        period=earnings.period,
        accrued_in_period=context.mdf_accrued_in_period,
        eligible=programs.ineligibility(context.status) is None,
        at=at,
    )
    return earnings, accrual
