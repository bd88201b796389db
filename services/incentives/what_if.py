"""What-if: what a hypothetical credit would earn now, from the same rules and surroundings a
real one would meet. Nothing is stored."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

from services.incentives import repository
from services.incentives.domain.evaluation import evaluate
from services.incentives.domain.programs import IncentivePrograms
from services.incentives.domain.surroundings import Subject, new_logo_for_partner
from services.incentives.schemas import WhatIfLine, WhatIfOut
from shared.clock import now
from shared.db import Connection
from shared.errors import Unprocessable


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
    partners_view: bool = False  # asked by the partner: only its own business may show


async def what_if(conn: Connection, programs: IncentivePrograms, credit: Hypothesis) -> WhatIfOut:
    """The lines, total and MDF accrual the credit would get now, in the partner's current
    surroundings (its tier unless the hypothesis names one)."""
    context = (await repository.load_surroundings(conn, programs, [credit.subject])).context(
        credit.subject
    )
    notes: list[str] = []
    if credit.partners_view and context.customer_keys:
        own = await repository.customer_first_deal_is_partners(
            conn, context.customer_keys, credit.subject.partner_id
        )
        new_logo, note = new_logo_for_partner(context.new_logo, own)
        context = replace(context, new_logo=new_logo)
        notes += [note] if note else []
    programs.check_amount(credit.amount)
    if credit.tier is not None:
        if credit.tier not in programs.base_rates:
            known = ", ".join(programs.base_rates)
            raise Unprocessable(f"tier {credit.tier!r} is not one of the programs' tiers ({known})")
        context = replace(context, tier=credit.tier)
    status, held = programs.what_if_status(context.status)
    context = replace(context, status=status)
    notes += [held] if held else []
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
    return WhatIfOut(
        partner_id=credit.subject.partner_id,
        programs_version=programs.version,
        currency=programs.currency,
        period=earnings.period,
        tier=context.tier,
        new_logo=context.new_logo,
        new_region=context.new_region,
        lines=[
            WhatIfLine(
                entry_type=line.entry_type.value,
                rule=line.rule,
                rate=line.rate,
                uncapped_amount=line.uncapped_amount,
                amount=line.amount,
                note=line.note,
            )
            for line in earnings.lines
        ],
        total=earnings.total,
        notes=[*notes, *earnings.notes],
        mdf_accrual=None if accrual is None else accrual.amount,
    )
