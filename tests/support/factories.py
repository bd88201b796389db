"""One factory per event contract: a valid event with plain defaults, any field overridden by
keyword. Tests say only what matters to them (`credit_issued(partner_id=p, amount="120.00")`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from shared.events.attribution import (
    CreditIssued,
    CreditKind,
    CreditReversed,
    PartnerHealthScored,
)
from shared.events.crm import CrmDealChanged, CrmSource, Customer, DealStage
from shared.events.incentives import (
    CreditBooked,
    IncentiveEarned,
    IncentiveReversed,
    MdfAccrued,
    MdfClaimDecided,
    MdfExpired,
    PayoutRecorded,
)
from shared.events.notifications import NotificationKind, PartnerNotification
from shared.events.opportunities import DealStateChanged
from shared.events.partners import PartnerChange, PartnerStateChanged, PartnerStatus
from shared.events.programme import PartnerEnablementMeasured
from shared.events.programme_service import CampaignChanged, SurveyAnswered
from shared.events.registrations import (
    RegistrationDecided,
    RegistrationStatus,
    RegistrationStatusChanged,
)

AT = datetime(2026, 11, 20, 12, tzinfo=UTC)
CUSTOMER = Customer(name="Northwind Traders", domain="northwind.example", country="US")


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def crm_deal_changed(**fields: Any) -> CrmDealChanged:
    values: dict[str, Any] = {
        "source": CrmSource.SALESFORCE,
        "source_id": _id("006"),
        "source_event_id": _id("evt"),
        "source_timestamp": AT,
        "change_type": "updated",
        "name": "Northwind platform",
        "customer": CUSTOMER,
        "products": ("data",),
        "amount": Decimal("10000.00"),
        "currency": "USD",
        "stage": DealStage.PROPOSAL,
        "close_date": AT.date(),
    }
    return CrmDealChanged(**(values | fields))


def deal_state_changed(**fields: Any) -> DealStateChanged:
    source_id = fields.pop("source_id", _id("006"))
    stage = fields.get("stage", DealStage.CLOSED_WON)
    values: dict[str, Any] = {
        "deal_key": f"salesforce:{source_id}",
        "source": CrmSource.SALESFORCE,
        "source_id": source_id,
        "revision": 1,
        "name": "Northwind platform",
        "customer": CUSTOMER,
        "products": ("data",),
        "amount": Decimal("10000.00"),
        "currency": "USD",
        "stage": stage,
        "status": DealStage(stage).status,
        "close_date": AT.date(),
        "changed_at": AT,
    }
    return DealStateChanged(**(values | fields))


def registration_decided(**fields: Any) -> RegistrationDecided:
    values: dict[str, Any] = {
        "registration_id": _id("reg"),
        "partner_id": _id("p"),
        "customer": CUSTOMER,
        "products": ("data",),
        "amount": Decimal("10000.00"),
        "currency": "USD",
        "status": RegistrationStatus.APPROVED,
        "reasons": ("no conflict",),
        "policy_version": "test",
        "decided_at": AT,
        "expires_at": AT + timedelta(days=90),
    }
    return RegistrationDecided(**(values | fields))


def registration_status_changed(**fields: Any) -> RegistrationStatusChanged:
    values: dict[str, Any] = {
        "registration_id": _id("reg"),
        "partner_id": _id("p"),
        "previous_status": RegistrationStatus.APPROVED,
        "status": RegistrationStatus.WON,
        "reason": "the opportunity closed won",
        "changed_at": AT,
    }
    return RegistrationStatusChanged(**(values | fields))


def partner_state_changed(**fields: Any) -> PartnerStateChanged:
    partner_id = fields.pop("partner_id", _id("p"))
    values: dict[str, Any] = {
        "partner_id": partner_id,
        "name": f"Partner {partner_id}",
        "partner_type": "gsi",
        "status": PartnerStatus.ACTIVE,
        "tier": "gold",
        "regions": ("US", "DE"),
        "products": ("data", "ai"),
        "changed_at": AT,
        "version": 1,
        "change": PartnerChange.ACTIVATED,
    }
    return PartnerStateChanged(**(values | fields))


def application_decided(
    *, status: PartnerStatus, reason: str, decided_at: datetime, **fields: Any
) -> list[PartnerStateChanged]:
    """An ISV's application (version 1) and onboarding's decision on it (version 2): qualified
    or rejected, `reason` saying by whom; `changed_at` is when it applied (AT by default)."""
    applied = partner_state_changed(
        **({"tier": "registered", "partner_type": "isv"} | fields),
        version=1,
        change=PartnerChange.APPLIED,
        status=PartnerStatus.APPLIED,
    )
    decided = partner_state_changed(
        **applied.model_dump()
        | {
            "version": 2,
            "change": PartnerChange(status.value),
            "status": status,
            "previous_status": PartnerStatus.APPLIED,
            "reason": reason,
            "changed_at": decided_at,
        }
    )
    return [applied, decided]


def credit_issued(**fields: Any) -> CreditIssued:
    credit_id = fields.pop("credit_id", _id("cr"))
    amount = Decimal(fields.pop("amount", "10000.00"))
    currency = fields.pop("currency", "USD")
    values: dict[str, Any] = {
        "credit_id": credit_id,
        "deal_key": f"deal-{credit_id}",
        "partner_id": _id("p"),
        "kind": CreditKind.SOURCED,
        "amount": amount,
        "currency": currency,
        "original_amount": amount,
        "original_currency": currency,
        "fx_rate": Decimal(1),
        "share": Decimal(1),
        "model": "sourced_only",
        "customer": CUSTOMER,
        "close_date": AT.date(),
        "deal_revision": 1,
        "issued_at": AT,
        "ingested_at": AT,
    }
    return CreditIssued(**(values | fields))


def credit_reversed(credit: CreditIssued | None = None, **fields: Any) -> CreditReversed:
    """The reversal of `credit` (in full), or of a made-up one."""
    credit = credit or credit_issued()
    values: dict[str, Any] = {
        "reversal_id": f"rv-{credit.credit_id}",
        "credit_id": credit.credit_id,
        "deal_key": credit.deal_key,
        "partner_id": credit.partner_id,
        "kind": credit.kind,
        "amount": credit.amount,
        "currency": credit.currency,
        "reason": "deal amount changed",
        "deal_revision": credit.deal_revision + 1,
        "reversed_at": AT + timedelta(hours=1),
        "ingested_at": AT + timedelta(hours=1),
    }
    return CreditReversed(**(values | fields))


def incentive_earned(**fields: Any) -> IncentiveEarned:
    values: dict[str, Any] = {
        "entry_id": _id("e"),
        "partner_id": _id("p"),
        "entry_type": "accrual",
        "program_rule": "base:gold",
        "credit_id": _id("cr"),
        "deal_key": _id("deal"),
        "period": "2026-Q4",
        "basis": Decimal("10000.00"),
        "rate": Decimal("0.05"),
        "uncapped_amount": Decimal("500.00"),
        "amount": Decimal("500.00"),
        "currency": "USD",
        "tier": "gold",
        "programs_version": "test",
        "earned_at": AT,
    }
    return IncentiveEarned(**(values | fields))


def credit_booked(**fields: Any) -> CreditBooked:
    """A credit's booking; its entries (by default one earning and one MDF accrual) name its
    partner and credit unless given."""
    head: dict[str, Any] = {
        "credit_id": fields.pop("credit_id", _id("cr")),
        "partner_id": fields.pop("partner_id", _id("p")),
        "deal_key": fields.pop("deal_key", _id("deal")),
        "period": fields.pop("period", "2026-Q4"),
    }
    values: dict[str, Any] = head | {
        "earnings": [incentive_earned(**head)],
        "mdf_accrued": mdf_accrued(**head),
        "booked_at": AT,
    }
    return CreditBooked(**(values | fields))


def incentive_reversed(**fields: Any) -> IncentiveReversed:
    values: dict[str, Any] = {
        "entry_id": _id("e"),
        "reverses_entry_id": _id("e"),
        "ledger": "incentive",
        "partner_id": _id("p"),
        "program_rule": "base:gold",
        "credit_id": _id("cr"),
        "reversal_id": _id("rv"),
        "deal_key": _id("deal"),
        "period": "2026-Q4",
        "amount": Decimal("500.00"),
        "currency": "USD",
        "reason": "deal amount changed",
        "reversed_at": AT,
    }
    return IncentiveReversed(**(values | fields))


def mdf_accrued(**fields: Any) -> MdfAccrued:
    values: dict[str, Any] = {
        "entry_id": _id("e"),
        "partner_id": _id("p"),
        "program_rule": "mdf:gold",
        "credit_id": _id("cr"),
        "deal_key": _id("deal"),
        "period": "2026-Q4",
        "basis": Decimal("10000.00"),
        "rate": Decimal("0.02"),
        "uncapped_amount": Decimal("200.00"),
        "amount": Decimal("200.00"),
        "currency": "USD",
        "expires_at": AT + timedelta(days=365),
        "fund_available": Decimal("200.00"),
        "accrued_at": AT,
    }
    return MdfAccrued(**(values | fields))


def mdf_expired(**fields: Any) -> MdfExpired:
    values: dict[str, Any] = {
        "entry_id": _id("e"),
        "partner_id": _id("p"),
        "lot_id": _id("e"),
        "credit_id": _id("cr"),
        "amount": Decimal("200.00"),
        "currency": "USD",
        "expired_at": AT,
    }
    return MdfExpired(**(values | fields))


def mdf_claim_decided(**fields: Any) -> MdfClaimDecided:
    values: dict[str, Any] = {
        "claim_id": _id("claim"),
        "partner_id": _id("p"),
        "status": "approved",
        "amount": Decimal("100.00"),
        "currency": "USD",
        "description": "Webinar",
        "proof_reference": "invoice-1",
        "reason": "within the fund",
        "entry_id": _id("e"),
        "fund_available": Decimal("100.00"),
        "decided_at": AT,
    }
    return MdfClaimDecided(**(values | fields))


def payout_recorded(**fields: Any) -> PayoutRecorded:
    values: dict[str, Any] = {
        "entry_id": _id("e"),
        "partner_id": _id("p"),
        "amount": Decimal("500.00"),
        "currency": "USD",
        "reference": "bank-transfer-1",
        "balance_after": Decimal("0.00"),
        "paid_at": AT,
    }
    return PayoutRecorded(**(values | fields))


def partner_notification(**fields: Any) -> PartnerNotification:
    partner_id = fields.pop("partner_id", _id("p"))
    values: dict[str, Any] = {
        "notification_id": str(uuid.uuid4()),
        "partner_id": partner_id,
        "recipient": partner_id,
        "kind": NotificationKind.REGISTRATION_APPROVED,
        "subject": "Registration approved",
        "body": "no conflict",
        "created_at": AT,
    }
    return PartnerNotification(**(values | fields))


def partner_health_scored(**fields: Any) -> PartnerHealthScored:
    values: dict[str, Any] = {
        "partner_id": fields.pop("partner_id", _id("p")),
        "day": AT.date(),
        "score": Decimal("62.5"),
        "revenue": Decimal("0.5"),
        "win_rate": Decimal("0.75"),
        "velocity": Decimal("0.5"),
        "penalty": Decimal(0),
        "reasons": ("revenue 250000 of target 500000",),
        "scored_at": AT,
        "config_version": "2026-11-attr-1",
    }
    return PartnerHealthScored(**(values | fields))


def partner_enablement_measured(**fields: Any) -> PartnerEnablementMeasured:
    values: dict[str, Any] = {
        "partner_id": fields.pop("partner_id", _id("p")),
        "measured_at": AT,
        "people": 4,
        "training_completion_rate": Decimal("0.5"),
        "certified_share": Decimal("0.5"),
        "engaged_share": Decimal("0.25"),
        "downloads": 3,
        "sandbox_signups": 1,
        "window_days": 90,
        "score": Decimal("43.8"),
        "reasons": ("training completion 2/4 people with a learning path",),
    }
    return PartnerEnablementMeasured(**(values | fields))


def survey_answered(**fields: Any) -> SurveyAnswered:
    values: dict[str, Any] = {
        "answer_id": str(uuid.uuid4()),
        "survey_id": str(uuid.uuid4()),
        "partner_id": _id("p"),
        "score": 9,
        "category": "promoter",
        "tier": "gold",
        "partner_type": "gsi",
        "answered_at": AT,
    }
    return SurveyAnswered(**(values | fields))


def campaign_changed(**fields: Any) -> CampaignChanged:
    """Programme's word on a campaign running from today for ten days (UTC days)."""
    today = datetime.now(UTC).date()
    values: dict[str, Any] = {
        "campaign_id": _id("camp"),
        "partner_ids": (_id("p"),),
        "kind": "webinar",
        "starts_on": today,
        "ends_on": today + timedelta(days=10),
        "state": "running",
        "changed_at": datetime.now(UTC),
    }
    return CampaignChanged(**(values | fields))
