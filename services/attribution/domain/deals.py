"""What of a deal decides its credits: only a won deal (not deleted) holds any, and every
settlement says what changed to cause it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from services.attribution.domain.config import AttributionConfig
from services.attribution.domain.models import Attribution, Touchpoint, attribute
from shared.events.crm import DealStatus
from shared.events.opportunities import DealStateChanged


@dataclass(frozen=True)
class DealState:
    revision: int
    status: DealStatus
    deleted: bool
    amount: Decimal | None
    currency: str | None
    close_date: date | None
    partner_ref: str | None

    @classmethod
    def of_snapshot(cls, event: DealStateChanged) -> DealState:
        return cls(
            event.revision,
            event.status,
            event.deleted,
            event.amount,
            event.currency,
            event.close_date,
            event.partner_ref,
        )

    @property
    def holds_credits(self) -> bool:
        return self.status is DealStatus.WON and not self.deleted


def wanted_attribution(
    config: AttributionConfig, deal: DealState, touchpoints: Sequence[Touchpoint]
) -> Attribution | None:
    """What the deal should hold: a split when it is won (and not deleted), nothing otherwise.

    Raises CannotAttribute when it is won but cannot be split."""
    if not deal.holds_credits:
        return None
    return attribute(config, touchpoints, deal.amount, deal.currency, deal.close_date)


def settlement_trigger(deal: DealState, trigger: str) -> str:
    """The trigger, with why the deal holds no credits when it holds none."""
    if deal.deleted:
        return f"{trigger} (deal deleted)"
    if deal.status is not DealStatus.WON:
        return f"{trigger} (deal {deal.status.value})"
    return trigger


def describe_change(old: DealState | None, new: DealState) -> str:
    """What a new snapshot changed about the deal, as its settlement's explanation starts."""
    head = f"revision {new.revision}"
    if old is None:
        return f"{head}: deal {new.status.value}"
    changes = []
    if new.deleted and not old.deleted:
        changes.append("deal deleted")
    if old.status is not new.status:
        changes.append(f"status {old.status.value} -> {new.status.value}")
    if (old.amount, old.currency) != (new.amount, new.currency):
        changes.append(f"amount {old.amount} {old.currency} -> {new.amount} {new.currency}")
    if old.close_date != new.close_date:
        changes.append(f"close date {old.close_date} -> {new.close_date}")
    if old.partner_ref != new.partner_ref:
        changes.append(f"CRM partner {old.partner_ref} -> {new.partner_ref}")
    return f"{head}: {', '.join(changes) or 'touchpoints or details changed'}"
