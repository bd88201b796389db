"""The finance team's payouts view: response models."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field

from services.incentives.domain.settlement import Settlement


class PartnerPayoutsOut(BaseModel):
    partner_id: str
    earned: Decimal = Field(description="accruals, kickers and SPIFFs booked in the period")
    reversed: Decimal = Field(description="taken back in the period (negative)")
    paid: Decimal = Field(description="paid out in the period (positive)")
    balance: Decimal = Field(description="the partner's whole ledger balance now: still owed")
    last_paid_at: datetime | None = Field(description="the partner's latest payout, any period")
    state: Settlement
    partner_status: str | None = Field(
        description="the partner's status as incentives holds it (null: not heard of); a "
        "suspended, expelled or rejected partner's balance is held: its payout is a 409"
    )


class PayoutEntryOut(BaseModel):
    entry_id: str
    partner_id: str
    amount: Decimal = Field(description="amount paid (positive)")
    reference: str
    period: str
    paid_at: datetime


class PayoutsOut(BaseModel):
    period: str | None = Field(description="the period asked for; null: every period")
    currency: str
    periods: list[str] = Field(description="every period the ledger has entries in, newest first")
    totals: dict[str, Decimal] = Field(
        description="earned, reversed and paid in the period, and the balance owed now"
    )
    partners: list[PartnerPayoutsOut]
    total_partners: int = Field(
        description="partners matching (state and partner filters included)"
    )
    partners_before: int = Field(
        default=0, description="matching partners before this page (after `after` and `offset`)"
    )
    next_after: str | None = Field(
        default=None,
        description="`after` of the next page of partners; null on the last. Paging by it, a "
        "partner paid meanwhile (no longer owed, or lower down) moves no one past the page",
    )
    payouts: list[PayoutEntryOut] = Field(
        description="payouts made in the period (to the partner asked for), newest first: a page"
    )
    total_payouts: int = Field(description="payouts made in the period (to the partner asked for)")
    next_payouts_before: str | None = Field(
        description="`payouts_before` of the next (older) page of payouts; null on the last"
    )
