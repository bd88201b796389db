"""Market development funds: accrual with a period cap, lots that expire, claims that can never
overdraw.

A partner's fund is a set of lots (one per accrual) each with what is left of it and an expiry.
Spending (an approved claim, or the clawback of an accrual whose credit was reversed) consumes
lots oldest-expiry first; what a clawback cannot find becomes a deficit that later accruals pay
off first. Invariant: sum of MDF entries = sum of lots' remaining - deficit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from services.incentives.domain.earnings import ZERO, money
from services.incentives.domain.programs import IncentivePrograms


@dataclass(frozen=True)
class MdfAccrual:
    rule: str
    basis: Decimal
    rate: Decimal
    uncapped_amount: Decimal
    amount: Decimal
    note: str
    expires_at: datetime


def accrue(
    programs: IncentivePrograms,
    *,
    tier: str,
    kind: str,
    amount: Decimal,
    period: str,
    accrued_in_period: Decimal,
    eligible: bool,
    at: datetime,
) -> MdfAccrual | None:
    """What a credit adds to the partner's fund (None: nothing)."""
    config = programs.mdf
    rate = config.rate_for(tier)
    if not eligible or kind not in config.credit_kinds or rate <= 0 or amount <= 0:
        return None
    uncapped = money(amount * rate, programs.decimals)
    booked = uncapped
    note = ""
    cap = config.cap_per_partner_period
    if cap is not None:
        booked = min(uncapped, max(ZERO, cap - accrued_in_period))
        if booked < uncapped:
            note = (
                f"capped from {uncapped} to {booked}: MDF cap {cap} for {period} "
                f"({accrued_in_period} already accrued)"
            )
    if uncapped == 0:
        return None
    return MdfAccrual(
        f"mdf:{tier}",
        amount,
        rate,
        uncapped,
        booked,
        note,
        at + timedelta(days=config.expiry_days),
    )


@dataclass(frozen=True)
class Lot:
    lot_id: str
    remaining: Decimal
    expires_at: datetime


def available(lots: list[Lot], deficit: Decimal, now: datetime) -> Decimal:
    return sum((lot.remaining for lot in lots if lot.expires_at > now), ZERO) - deficit


def consume(
    lots: list[Lot], amount: Decimal, now: datetime, *, first: str | None = None
) -> tuple[list[tuple[str, Decimal]], Decimal]:
    """Take `amount` from unexpired lots (lot `first` first, then soonest expiry first).

    Returns what to take from which lot and the part no lot could cover (0 when covered)."""
    # A clawback may take from its own lot even past expiry (the service first restores what
    # expired of it); other lots only while unexpired.
    usable = sorted(
        (
            lot
            for lot in lots
            if lot.remaining > 0 and (lot.expires_at > now or lot.lot_id == first)
        ),
        key=lambda lot: (lot.lot_id != first, lot.expires_at, lot.lot_id),
    )
    takes: list[tuple[str, Decimal]] = []
    left = amount
    for lot in usable:
        if left <= 0:
            break
        take = min(lot.remaining, left)
        takes.append((lot.lot_id, take))
        left -= take
    return takes, left


def expired(lots: list[Lot], now: datetime) -> list[tuple[str, Decimal]]:
    """Lots whose unused remainder expires now."""
    return [
        (lot.lot_id, lot.remaining) for lot in lots if lot.expires_at <= now and lot.remaining > 0
    ]


def claim_decision(available_now: Decimal, amount: Decimal) -> tuple[bool, str]:
    if amount <= 0:
        return False, "a claim must be for a positive amount"
    if amount > available_now:
        return False, f"claim of {amount} exceeds the available fund of {available_now}"
    return True, "approved"


@dataclass(frozen=True)
class Fund:
    """A partner's MDF fund: its live lots and what it owes (a deficit from clawbacks of funds
    already spent)."""

    partner_id: str
    deficit: Decimal
    lots: list[Lot]
    # Held for approved MDF pre-approvals (domain/preapprovals.py): only their claims spend it.
    reserved: Decimal = ZERO

    def available(self, at: datetime) -> Decimal:
        return available(self.lots, self.deficit, at) - self.reserved

    def accrue(self, lot_id: str, accrual: MdfAccrual) -> tuple[Fund, Decimal, str]:
        """The fund with an accrual's lot added. An outstanding deficit is repaid first, out of
        the new lot. Returns the new fund, what repaid the deficit and the accrual's note."""
        absorbed = min(self.deficit, accrual.amount)
        fund = Fund(
            self.partner_id,
            self.deficit - absorbed,
            [*self.lots, Lot(lot_id, accrual.amount - absorbed, accrual.expires_at)],
            self.reserved,
        )
        note = accrual.note
        if absorbed:
            repaid = f"{absorbed} repaid an MDF deficit"
            note = f"{note}; {repaid}" if note else repaid
        return fund, absorbed, note


@dataclass(frozen=True)
class Clawback:
    """How the clawback of an accrual is taken from the fund."""

    restored: Decimal  # what had expired of the accrual's own lot, restored first
    takes: list[tuple[str, Decimal]]  # (lot id, amount) taken from each lot
    shortfall: Decimal  # already spent: becomes a deficit repaid by future accruals
    note: str


def claw_back(
    lots: list[Lot], own: Lot, own_expired: Decimal, amount: Decimal, at: datetime
) -> Clawback:
    """Take back `amount` (an accrual) from its own lot `own` first, then from the fund's other
    live `lots`. What expired of its own lot was never the partner's to use: it is restored
    before the clawback, so only funds actually spent can turn into a deficit."""
    if own_expired > 0:
        lots = [lot for lot in lots if lot.lot_id != own.lot_id]
        lots.append(Lot(own.lot_id, own.remaining + own_expired, own.expires_at))
    takes, shortfall = consume(lots, amount, at, first=own.lot_id)
    note = "clawback: the credit behind this accrual was reversed"
    if shortfall > 0:
        note += f"; {shortfall} already spent becomes a deficit repaid by future accruals"
    return Clawback(own_expired, takes, shortfall, note)
