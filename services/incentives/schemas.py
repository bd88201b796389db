"""Request and response bodies of the incentives HTTP API (the events are in shared/events).

Amounts are decimal strings ("9600.00"); times recorded in the ledger are ISO 8601 with their
offset.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from services.incentives.domain.claims import ClaimAsk
from services.incentives.domain.programs import IncentivePrograms
from shared.http import Timestamp
from shared.inputs import CountryCode, Day, FreeText, Ident, Name, PositiveMoney, Reference, as_text

PERIOD_PATTERN = r"^[0-9]{4}-(Q[1-4]|0[1-9]|1[0-2])$"


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- requests


class WhatIfIn(_Request):
    """A hypothetical credit: what would it earn today?"""

    partner_id: Ident | None = Field(default=None, description="admins only: whose credit")
    amount: PositiveMoney
    kind: Literal["sourced", "influenced"] = "sourced"
    customer_name: Name | None = None
    customer_domain: Ident | None = Field(default=None, max_length=253)
    customer_country: CountryCode | None = None
    products: list[Annotated[Ident, Field(max_length=100)]] = Field(
        default_factory=list, max_length=50
    )
    co_sell: bool = False
    close_date: Day | None = None
    deal_key: Ident = "what-if"
    tier: Ident | None = Field(
        default=None,
        max_length=64,
        description="assume this tier (one of the programs' tiers) instead of the current",
    )


class ClaimIn(_Request):
    amount: PositiveMoney
    description: Annotated[str, Field(min_length=3, max_length=500), AfterValidator(as_text)]
    proof_reference: Annotated[Reference, Field(max_length=500)] = Field(
        description="invoice number, document URL, ...: names one claim of the partner (the "
        "same reference asking for the same amount and description again is answered with it; "
        "for other money, 409)"
    )

    def ask(self, partner_id: str) -> ClaimAsk:
        """The claim `partner_id` asks for with this body."""
        return ClaimAsk(partner_id, self.amount, self.description, self.proof_reference)


class DecisionIn(_Request):
    approve: bool
    note: Annotated[FreeText, Field(max_length=500)] = ""


class PayoutIn(_Request):
    amount: PositiveMoney | None = Field(default=None, description="default: the balance")
    reference: Ident


# ---- programs and what-if


class ProgramsOut(BaseModel):
    programs: IncentivePrograms
    active_spiffs: list[str] = Field(description="SPIFFs running today")
    current_period: str


class WhatIfLine(BaseModel):
    entry_type: str
    rule: str
    rate: Decimal | None
    uncapped_amount: Decimal
    amount: Decimal
    note: str


class WhatIfOut(BaseModel):
    partner_id: str
    programs_version: str
    currency: str
    period: str
    tier: str
    new_logo: bool
    new_region: bool
    lines: list[WhatIfLine]
    total: Decimal
    notes: list[str]
    mdf_accrual: Decimal | None


# ---- the ledger


class LotOut(BaseModel):
    lot_id: str
    credit_id: str
    amount: Decimal
    remaining: Decimal
    expired: Decimal
    expires_at: Timestamp


class FundOut(BaseModel):
    partner_id: str
    available: Decimal
    ledger_balance: Decimal
    deficit: Decimal
    reserved: Decimal = Field(description="held for approved MDF pre-approvals' claims")
    lots: list[LotOut] = Field(
        description="in expiry order: every lot still holding money, and the lots (spent or "
        "lapsed) that expire after `lots_since`; older ones are in the MDF entries"
    )
    lots_since: Timestamp = Field(description="90 days before the answer")


class BalanceOut(BaseModel):
    partner_id: str
    currency: str
    balance: Decimal
    earned: Decimal
    reversed: Decimal = Field(description="taken back (negative)")
    paid: Decimal = Field(description="paid out (negative)")
    mdf: FundOut


class HeldCreditOut(BaseModel):
    """A credit waiting for its partner to be active (booked when the partner's state settles)."""

    credit_id: str
    partner_id: str
    deal_key: str
    amount: Decimal | None = Field(
        description="null: held before the credit contract bounded amounts, and not one it "
        "takes (the reason says why; it is dead-lettered when its partner settles)"
    )
    currency: str
    reason: str
    held_at: Timestamp


class EntryOut(BaseModel):
    """What an entry of either ledger, money or MDF, starts with."""

    seq: int
    entry_id: str
    partner_id: str
    entry_type: str
    rule: str
    period: str
    credit_id: str | None


class LedgerEntryOut(EntryOut):
    deal_key: str | None
    basis: Decimal | None
    rate: Decimal | None
    uncapped_amount: Decimal | None
    amount: Decimal
    currency: str
    note: str
    tier: str | None
    programs_version: str
    reverses: str | None
    reference: str | None
    created_at: Timestamp
    ingested_at: Timestamp | None


class MdfEntryOut(EntryOut):
    lot_id: str | None
    claim_id: str | None
    basis: Decimal | None
    rate: Decimal | None
    uncapped_amount: Decimal | None
    amount: Decimal
    currency: str
    note: str
    reverses: str | None
    programs_version: str
    created_at: Timestamp
    ingested_at: Timestamp | None


class StatementOut(BaseModel):
    partner_id: str
    period: str
    currency: str
    opening_balance: Decimal
    entries: list[LedgerEntryOut]
    totals_by_type: dict[str, Decimal]
    totals_by_rule: dict[str, Decimal]
    closing_balance: Decimal
    mdf_entries: list[MdfEntryOut]


class PayoutOut(BaseModel):
    entry_id: str
    partner_id: str
    amount: Decimal = Field(description="amount paid (positive); the entry books -amount")
    currency: str
    reference: str
    balance_after: Decimal
    paid_at: datetime
    ingested_at: datetime | None


# ---- MDF claims


class ClaimRequestedOut(BaseModel):
    claim_id: str
    partner_id: str
    status: str = Field(
        description="requested; a repeat under a proof reference: what its claim became since"
    )
    amount: Decimal
    currency: str
    fund_available: Decimal


class ClaimOut(BaseModel):
    claim_id: str
    partner_id: str
    amount: Decimal
    currency: str
    description: str
    proof_reference: str
    status: str = Field(description="requested | approved | rejected")
    reason: str
    requested_at: Timestamp
    decided_at: Timestamp | None
    preapproval_id: str | None = Field(default=None, description="the pre-approval it draws on")


class ClaimDecisionOut(BaseModel):
    claim_id: str
    partner_id: str
    status: str = Field(description="approved | rejected")
    amount: Decimal
    currency: str
    description: str
    proof_reference: str
    reason: str
    entry_id: str | None = Field(description="the MDF ledger debit, if approved")
    fund_available: Decimal
    decided_at: datetime
    ingested_at: datetime | None
    preapproval_id: str | None = None
    campaign_id: str | None = None


class QuarterEarningsOut(BaseModel):
    quarter: str = Field(description="a calendar quarter, e.g. 2026-Q4")
    earned: Decimal = Field(description="accruals, kickers and SPIFFs")
    reversed: Decimal = Field(description="taken back (negative)")
    net: Decimal


class EarningsOut(BaseModel):
    """A partner's earnings by calendar quarter, oldest first (payouts are not earnings)."""

    partner_id: str
    currency: str
    quarters: list[QuarterEarningsOut]
