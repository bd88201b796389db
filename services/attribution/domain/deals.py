"""What of a deal decides its credits: only a won deal (not deleted) holds any, and every
settlement says what changed to cause it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from services.attribution.domain.config import AttributionConfig
from services.attribution.domain.models import Attribution, Touchpoint, attribute
from services.attribution.domain.parking import NO_AMOUNT, Parked, Standing, withhold
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
    # The moment the deal was won (see `won_at`); None while it is not won.
    won_at: datetime | None = None

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
    config: AttributionConfig,
    deal: DealState,
    touchpoints: Sequence[Touchpoint],
    standings: Mapping[str, Standing] | None = None,
) -> tuple[Attribution | None, tuple[Parked, ...]]:
    """What the deal should hold: a split when it is won (and not deleted), nothing otherwise;
    and what of it is parked (domain/parking.py): a won deal without an amount holds nothing
    until it has one, a partner out of the programme when it was won gets no share.

    Raises CannotAttribute when it is won but cannot be split."""
    if not deal.holds_credits:
        return None, ()
    if deal.amount is None:
        return None, (Parked(None, None, None, None, NO_AMOUNT),)
    split = attribute(config, touchpoints, deal.amount, deal.currency, deal.close_date, deal.won_at)
    return withhold(split, standings or {}, deal.won_at)


def settlement_trigger(deal: DealState, trigger: str) -> str:
    """The trigger, with why the deal holds no credits when it holds none."""
    if deal.deleted:
        return f"{trigger} (deal deleted)"
    if deal.status is not DealStatus.WON:
        return f"{trigger} (deal {deal.status.value})"
    if deal.amount is None:
        return f"{trigger} ({NO_AMOUNT})"
    return trigger


def won_at(
    was: DealStatus | None, held: datetime | None, now_status: DealStatus, heard: datetime
) -> datetime | None:
    """When the deal was won: the moment of the snapshot that made it won (`heard`: when its
    change entered Pollinate, the earliest the platform knows of the win; deal snapshots carry
    no CRM close time), kept while it stays won; a reopened deal won again is won anew."""
    if now_status is not DealStatus.WON:
        return None
    if was is DealStatus.WON and held is not None:
        return held
    return heard


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
