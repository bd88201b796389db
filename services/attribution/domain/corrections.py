"""Corrections: from the credits a deal holds and what it should hold now, to reversals and
new credits. Credits are never edited: a changed credit is reversed in full and re-issued.

Rules:
- A deal with no active credits gets its new credits (the first close, or a re-won deal).
- Otherwise, credits whose partner, kind, amounts, currency or close date changed are reversed
  and re-issued (`replaces` points at the reversed credit of the same partner); unchanged
  credits stay.
- Changes to active credits happen only until the lock date (close date + lock period, measured
  at the instant of the change that triggers them). After that, credits are final: the change is
  recorded but produces no events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from services.attribution.domain.config import AttributionConfig
from services.attribution.domain.models import Attribution, CreditLine, close_instant, days_after
from shared.events.attribution import CreditKind


@dataclass(frozen=True)
class HeldCredit:
    credit_id: str
    partner_id: str
    kind: CreditKind
    amount: Decimal
    currency: str
    original_amount: Decimal
    original_currency: str
    close_date: date

    def same_as(self, line: CreditLine, attribution: Attribution) -> bool:
        return (
            self.partner_id == line.partner_id
            and self.kind is line.kind
            and self.amount == line.amount
            and self.currency == attribution.currency
            and self.original_amount == line.original_amount
            and self.original_currency == attribution.original_currency
            and self.close_date == attribution.close_date
        )


@dataclass(frozen=True)
class Settlement:
    reverse: tuple[HeldCredit, ...]
    issue: tuple[CreditLine, ...]
    replaces: dict[str, str]  # partner id -> the reversed credit its new credit corrects
    locked: bool
    explanation: str

    @property
    def changes(self) -> bool:
        return bool(self.reverse or self.issue)


def lock_date(config: AttributionConfig, close_date: date) -> datetime:
    """When the deal's credits become final (never, for a close date whose lock period ends
    past the calendar: see `days_after`)."""
    return days_after(close_instant(close_date), config.lock_period_days)


def settle(
    config: AttributionConfig,
    held: tuple[HeldCredit, ...],
    wanted: Attribution | None,
    at: datetime,
    trigger: str,
) -> Settlement:
    """What to reverse and issue so the deal holds `wanted` (None: no credits at all)."""
    lines = wanted.lines if wanted is not None else ()
    if not held:
        return Settlement((), lines, {}, False, trigger if lines else f"{trigger}: no credits")
    assert wanted is not None or not lines
    keep = {
        credit.credit_id
        for credit in held
        if wanted is not None and any(credit.same_as(line, wanted) for line in lines)
    }
    reverse = tuple(c for c in held if c.credit_id not in keep)
    kept_keys = {(c.partner_id, c.kind) for c in held if c.credit_id in keep}
    issue = tuple(line for line in lines if (line.partner_id, line.kind) not in kept_keys)
    if not (reverse or issue):
        return Settlement((), (), {}, False, f"{trigger}: credits unchanged")
    locked_at = lock_date(config, max(c.close_date for c in held))
    if at >= locked_at:
        return Settlement(
            (),
            (),
            {},
            True,
            f"{trigger}: ignored, credits are final since {locked_at.isoformat()} "
            f"(lock period {config.lock_period_days} days after the close)",
        )
    replaces = {}
    for line in issue:
        previous = next((c for c in reverse if c.partner_id == line.partner_id), None)
        if previous is not None:
            replaces[line.partner_id] = previous.credit_id
    return Settlement(reverse, issue, replaces, False, trigger)


def partner_reason(settlement: Settlement, credit: HeldCredit) -> str:
    """Why `credit` is reversed, as its partner may read it (in its notification, its clawback
    and its statement): what became of the partner's own credit. The settlement's explanation
    says what triggered it, which may name other partners, their registrations and CRM
    references, so it stays with attribution's records for the channel team."""
    again = next((line for line in settlement.issue if line.partner_id == credit.partner_id), None)
    if again is None:
        return "the deal's credits were settled again and no longer credit this partner"
    return (
        f"the deal's credits were settled again: a corrected {again.kind.value} credit of "
        f"{again.amount} {credit.currency} replaces it"
    )
