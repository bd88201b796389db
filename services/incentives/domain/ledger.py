"""The incentive ledger's arithmetic: balances are sums, a reversal is the exact negation.

Entries are never edited; a correction appends. So any balance (partner, period, credit) is a
sum over entries, and reversing what a credit produced restores the prior balance to the cent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from services.incentives.domain.earnings import ZERO, EntryType


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
