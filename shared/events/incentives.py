"""Incentive ledger events produced by incentives (topic incentives.ledger.v1, key: partner id).

Every ledger movement is announced: earnings (base rebate accrual, kicker, SPIFF), their
reversals (clawbacks), MDF accruals/expiries, MDF claim decisions and payouts. Each names the
program rule that produced it and the credit it came from, with `ingested_at` copied from that
credit (when the upstream change behind it entered Pollinate). Amounts are exact decimals in
`currency` (the programs' reporting currency).

What one credit books (its earnings and its MDF accrual) is announced together, as one
`incentive.credit_booked.v1` carrying each entry as it reads alone. Before that, each entry was
an event of its own (`incentive.earned.v1`, `incentive.mdf_accrued.v1`): those types stay
readable, as records of them stay on the topic.

Booked amounts are cents (`Amount2`): the ledger and the MDF fund keep `numeric(20, 2)`. A basis
is the credit's amount as attribution sent it (`Amount4`); a rate is a fraction of it.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, model_validator

from shared.events.bounds import (
    Amount2,
    Amount4,
    Balance2,
    Day,
    Fraction,
    PositiveAmount2,
    ends_on_or_after_start,
)
from shared.events.envelope import EventPayload, UtcDatetime, event_type


@event_type("incentive.earned.v1")
class IncentiveEarned(EventPayload):
    entry_id: str
    partner_id: str
    entry_type: str = Field(description="accrual (base rebate) | kicker | spiff")
    program_rule: str = Field(description="e.g. base:gold, kicker:new_logo, spiff:q4-ai")
    credit_id: str
    deal_key: str
    period: str = Field(description="the revenue period of the credit (close date), e.g. 2026-Q4")
    basis: Amount4 = Field(description="the credited amount the rule applied to")
    rate: Fraction | None = Field(description="None for a fixed-amount SPIFF")
    uncapped_amount: Amount2
    amount: Amount2 = Field(description="booked amount (after the period cap), >= 0")
    currency: str
    note: str = Field(default="", description="why amount differs from basis x rate, if it does")
    tier: str
    programs_version: str
    earned_at: UtcDatetime
    ingested_at: UtcDatetime | None = None


@event_type("incentive.reversed.v1")
class IncentiveReversed(EventPayload):
    """A clawback: one earlier entry taken back exactly (ledger `incentive` or `mdf`)."""

    entry_id: str
    reverses_entry_id: str
    ledger: str = Field(description="incentive | mdf")
    partner_id: str
    program_rule: str
    credit_id: str
    reversal_id: str = Field(description="the attribution reversal that caused it")
    deal_key: str
    period: str
    amount: Amount2 = Field(description="amount taken back (positive); the entry books -amount")
    currency: str
    reason: str
    reversed_at: UtcDatetime
    ingested_at: UtcDatetime | None = None


@event_type("incentive.mdf_accrued.v1")
class MdfAccrued(EventPayload):
    entry_id: str
    partner_id: str
    program_rule: str
    credit_id: str
    deal_key: str
    period: str
    basis: Amount4
    rate: Fraction
    uncapped_amount: Amount2
    amount: Amount2
    currency: str
    note: str = ""
    expires_at: UtcDatetime
    fund_available: Balance2 = Field(description="the partner's available MDF after this accrual")
    accrued_at: UtcDatetime
    ingested_at: UtcDatetime | None = None


@event_type("incentive.credit_booked.v1")
class CreditBooked(EventPayload):
    """Everything one credit booked, announced at once: its earning entries (in the order the
    rules produced them; none when no rule paid) and its MDF accrual, if it accrued one. Each
    entry is what its own event said before this one grouped them."""

    credit_id: str
    partner_id: str
    deal_key: str
    period: str = Field(description="the revenue period of the credit (close date), e.g. 2026-Q4")
    earnings: list[IncentiveEarned]
    mdf_accrued: MdfAccrued | None = None
    booked_at: UtcDatetime
    ingested_at: UtcDatetime | None = None


@event_type("incentive.mdf_expired.v1")
class MdfExpired(EventPayload):
    entry_id: str
    partner_id: str
    lot_id: str = Field(description="the accrual entry whose unused remainder expired")
    credit_id: str
    amount: Amount2
    currency: str
    expired_at: UtcDatetime
    ingested_at: UtcDatetime | None = None


@event_type("incentive.mdf_claim_decided.v1")
class MdfClaimDecided(EventPayload):
    claim_id: str
    partner_id: str
    status: str = Field(description="approved | rejected")
    amount: Amount2
    currency: str
    description: str
    proof_reference: str
    reason: str
    entry_id: str | None = Field(default=None, description="the MDF ledger debit, if approved")
    fund_available: Balance2
    decided_at: UtcDatetime
    ingested_at: UtcDatetime | None = Field(
        default=None, description="when the decision entered Pollinate (the API call)"
    )
    preapproval_id: str | None = Field(
        default=None, description="the MDF pre-approval the claim draws on, if any"
    )
    campaign_id: str | None = Field(
        default=None, description="the campaign of that pre-approval (as the partner named it)"
    )


@event_type("incentive.mdf_preapproval_changed.v1")
class MdfPreapprovalChanged(EventPayload):
    """An MDF pre-approval (a campaign's budget, asked for before spending) changed state:
    requested, approved (the amount is reserved in the partner's fund), rejected, expired
    (what no claim used is released), or its reservation moved (a claim against it decided)."""

    preapproval_id: str
    partner_id: str
    campaign_id: str = Field(description="the campaign it is for, as the partner named it")
    activity_kind: str = Field(description="webinar | event | content | digital | other")
    status: str = Field(description="requested | approved | rejected | expired")
    amount: Amount2 = Field(description="asked for; once approved, the approved amount")
    currency: str
    starts_on: Day
    ends_on: Day = Field(description="on or after starts_on")
    reserved: Amount2 = Field(description="what it still holds in the fund")
    claimed: Amount2 = Field(description="approved claims against it")
    released: Amount2 = Field(
        default=Decimal("0.00"), description="given back to the fund by this change"
    )
    reason: str = ""
    expires_at: UtcDatetime | None = Field(
        default=None, description="when claims stop and the rest is released (once approved)"
    )
    fund_available: Balance2
    changed_at: UtcDatetime
    ingested_at: UtcDatetime | None = None

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> MdfPreapprovalChanged:
        return ends_on_or_after_start(self)


@event_type("incentive.payout_recorded.v1")
class PayoutRecorded(EventPayload):
    entry_id: str
    partner_id: str
    amount: PositiveAmount2 = Field(description="amount paid (positive); the entry books -amount")
    currency: str
    reference: str
    balance_after: Balance2
    paid_at: UtcDatetime
    ingested_at: UtcDatetime | None = None
