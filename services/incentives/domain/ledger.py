"""The incentive ledger's arithmetic: balances are sums, a reversal is the exact negation.

Entries are never edited; a correction appends. So any balance (partner, period, credit) is a
sum over entries, and reversing what a credit produced restores the prior balance to the cent.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.incentives.domain.earnings import ZERO, EntryType
from shared.errors import Conflict
from shared.events.partners import REVOKING
from shared.name_ids import NameIds


@dataclass(frozen=True)
class Entry:
    entry_id: str
    partner_id: str
    entry_type: EntryType
    rule: str
    amount: Decimal  # signed: earnings positive, reversals of earnings and payouts negative
    credit_id: str | None = None
    reverses: str | None = None


def balance(entries: Iterable[Entry]) -> Decimal:
    return sum((e.amount for e in entries), ZERO)


def reversals_for(produced: Iterable[Entry], new_id: Callable[[Entry], str]) -> list[Entry]:
    """The entries that take back exactly `produced` (one reversal per entry, same rule).

    `new_id(entry)` names each reversal (the service derives it deterministically)."""
    out: list[Entry] = []
    for entry in produced:
        if entry.entry_type in (EntryType.REVERSAL, EntryType.PAYOUT):
            raise ValueError(f"entry {entry.entry_id} is a {entry.entry_type}: not reversible")
        out.append(
            Entry(
                entry_id=new_id(entry),
                partner_id=entry.partner_id,
                entry_type=EntryType.REVERSAL,
                rule=entry.rule,
                amount=-entry.amount,
                credit_id=entry.credit_id,
                reverses=entry.entry_id,
            )
        )
    return out


ENTRY_IDS = NameIds(uuid.UUID("3f6b2c1e-8d4a-4f0b-9c7e-5a1d2e3f4b60"))


def entry_id(*parts: str) -> str:
    """A deterministic entry id: the same cause always names the same entry."""
    return ENTRY_IDS.text("/".join(parts))


def credit_entry_id(issued_at: datetime, credit_id: str, what: str) -> str:
    """The id of what a credit's booking writes (an earning line, named by its rule; its MDF
    lot and accrual, "mdf"; its booking event, "booked"): named by the credit and what it is,
    as `entry_id(credit_id, what)`, and ordered by when the credit was issued, which its event
    carries. Booking the credit again names the same rows, and the ledgers' keys grow at
    their right edge instead of taking each booking at random pages (README, issue 23)."""
    return ENTRY_IDS.ordered_text(issued_at, f"{credit_id}/{what}")


@dataclass(frozen=True)
class BookedCredit:
    """What the ledger recorded of a credit, to check a reversal that names it against."""

    partner_id: str
    amount: Decimal
    currency: str


def reversal_mismatches(
    booked: BookedCredit, *, partner_id: str, amount: Decimal, currency: str
) -> list[str]:
    """Why a reversal cannot take back the credit it names (empty: it can). A reversal takes
    back exactly what its credit produced, so it must name the same partner, amount and
    currency."""
    problems = []
    if booked.partner_id != partner_id:
        problems.append(f"partner {partner_id} != credit's {booked.partner_id}")
    if booked.amount != amount:
        problems.append(f"amount {amount} != credit's {booked.amount}")
    if booked.currency != currency:
        problems.append(f"currency {currency} != credit's {booked.currency}")
    return problems


class PayoutRefused(Conflict):
    """A payout the balance does not cover."""


def check_one_currency(balances: dict[str, Decimal], currency: str) -> None:
    """A payout is made in the programme's currency only while nothing is owed in another (the
    programme's currency changed): summed across currencies, 1,000.00 USD owed was paid as
    1,000.00 EUR (found in review)."""
    others = {c: b for c, b in sorted(balances.items()) if c != currency and b != 0}
    if others:
        held = ", ".join(f"{b} {c}" for c, b in others.items())
        raise PayoutRefused(
            f"the ledger holds {held} besides {currency}, the programme's currency: settle "
            "those before paying out"
        )


def payout_amount(balance_now: Decimal, requested: Decimal | None) -> Decimal:
    """What a payout pays: `requested`, or the whole balance; never more than the balance and
    never nothing."""
    pay = balance_now if requested is None else requested
    if pay <= 0:
        raise PayoutRefused(f"nothing to pay: the balance is {balance_now}")
    if pay > balance_now:
        raise PayoutRefused(f"payout of {pay} exceeds the balance of {balance_now}")
    return pay


class PayoutHeld(Conflict):
    """A payout to a partner that lost access (suspended, expelled, rejected)."""


def check_payable(partner_status: str | None) -> None:
    """Money owed to a partner that lost access is held, not paid: it stays on its balance
    (reinstated, the partner is paid; expelled, what happens to it is the programme's call,
    made outside the ledger). Found in review: finance saw an expelled partner's balance as
    owed and paid it in full, and nothing said it should not."""
    if partner_status in REVOKING:
        raise PayoutHeld(
            f"partner is {partner_status}: its balance is held, not paid, while it has no access"
        )


class PayoutConflict(Conflict):
    """A payout request reusing a reference that names another payout."""


@dataclass(frozen=True)
class RecordedPayout:
    """A payout as recorded under its partner's reference: what its request asked for (None:
    the whole balance) and what it paid, in which currency."""

    entry_id: str
    reference: str
    requested: Decimal | None
    amount: Decimal
    currency: str


def check_retry(recorded: RecordedPayout, requested: Decimal | None, currency: str) -> None:
    """A payout request under `recorded`'s reference is a retry of it (answered with it) when
    it asks for the same money in the same currency: as the first asked (an amount, or the
    whole balance), or exactly what it paid. Anything else is a PayoutConflict: a reference
    names one payout, so a retry can never pay twice."""
    same_ask = requested == recorded.requested
    what_it_paid = requested is not None and requested == recorded.amount
    if currency == recorded.currency and (same_ask or what_it_paid):
        return
    raise PayoutConflict(
        f"reference {recorded.reference} already names payout {recorded.entry_id} of "
        f"{recorded.amount:.2f} {recorded.currency} (asked for "
        f"{_asked(recorded.requested, recorded.currency)}); this request asks for "
        f"{_asked(requested, currency)}: a new payout needs a new reference"
    )


def _asked(requested: Decimal | None, currency: str) -> str:
    return "the whole balance" if requested is None else f"{requested:.2f} {currency}"


EARNING_TYPES = (EntryType.ACCRUAL, EntryType.KICKER, EntryType.SPIFF)


@dataclass(frozen=True)
class BalanceTotals:
    """A partner's balance from its totals per entry type: what it earned, what was taken
    back, what was paid out (both negative), and the balance they sum to."""

    balance: Decimal
    earned: Decimal
    reversed: Decimal
    paid: Decimal

    @classmethod
    def of(cls, totals_by_type: Mapping[str, Decimal]) -> BalanceTotals:
        return cls(
            balance=sum(totals_by_type.values(), ZERO),
            earned=sum((totals_by_type.get(t, ZERO) for t in EARNING_TYPES), ZERO),
            reversed=totals_by_type.get(EntryType.REVERSAL, ZERO),
            paid=totals_by_type.get(EntryType.PAYOUT, ZERO),
        )


@dataclass(frozen=True)
class StatementTotals:
    """A period's movement: totals by entry type and by rule, and the closing balance."""

    by_type: dict[str, Decimal]
    by_rule: dict[str, Decimal]
    closing_balance: Decimal

    @classmethod
    def of(
        cls, opening_balance: Decimal, entries: Iterable[tuple[str, str, Decimal]]
    ) -> StatementTotals:
        """`entries`: (entry type, rule, amount) of the period's entries, in ledger order."""
        by_type: dict[str, Decimal] = {}
        by_rule: dict[str, Decimal] = {}
        movement = ZERO
        for entry_type, rule, amount in entries:
            by_type[entry_type] = by_type.get(entry_type, ZERO) + amount
            by_rule[rule] = by_rule.get(rule, ZERO) + amount
            movement += amount
        return cls(by_type, by_rule, opening_balance + movement)
