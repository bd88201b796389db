"""What-if: what a hypothetical credit would earn now, from the same rules and surroundings a
real one would meet. Nothing is stored."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

from services.incentives import repository
from services.incentives.domain.earnings import Earnings
from services.incentives.domain.evaluation import evaluate
from services.incentives.domain.mdf import MdfAccrual
from services.incentives.domain.programs import IncentivePrograms
from services.incentives.domain.surroundings import Context, Subject
from shared.clock import now
from shared.db import Connection


@dataclass(frozen=True)
class Hypothesis:
    """A hypothetical credit, parsed from the request."""

    subject: Subject
    kind: str
    amount: Decimal
    products: frozenset[str]
    co_sell: bool
    close_date: date
    tier: str | None  # assume this tier instead of the partner's current one


@dataclass(frozen=True)
class Outlook:
    context: Context
    earnings: Earnings
    accrual: MdfAccrual | None


async def what_if(conn: Connection, programs: IncentivePrograms, credit: Hypothesis) -> Outlook:
    context = (await repository.load_surroundings(conn, programs, [credit.subject])).context(
        credit.subject
    )
    if credit.tier is not None:
        context = replace(context, tier=credit.tier)
    earnings, accrual = evaluate(
        programs,
        context,
        credit_id=credit.subject.credit_id,
        partner_id=credit.subject.partner_id,
        kind=credit.kind,
        amount=credit.amount,
        currency=programs.currency,
        products=credit.products,
        co_sell=credit.co_sell,
        close_date=credit.close_date,
        at=now(),
    )
    return Outlook(context, earnings, accrual)
