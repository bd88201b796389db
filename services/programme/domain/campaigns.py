"""Co-marketing campaigns: what state a campaign is in, and its results (leads and pipeline
its partners report, revenue attributed through its touchpoint, MDF cost, return per dollar).
Pure rules, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from services.programme.domain.figures import return_per_dollar

ZERO = Decimal("0.00")


class CampaignKind(StrEnum):
    WEBINAR = "webinar"
    EVENT = "event"
    CONTENT = "content"
    DIGITAL = "digital"
    OTHER = "other"


class CampaignState(StrEnum):
    PLANNED = "planned"  # before its first day
    RUNNING = "running"  # from its first to its last day
    COMPLETED = "completed"  # after its last day: a campaign run
    CANCELLED = "cancelled"


def check_dates(starts_on: date, ends_on: date) -> None:
    if ends_on < starts_on:
        raise ValueError(f"ends_on {ends_on} is before starts_on {starts_on}")


def state_of(starts_on: date, ends_on: date, *, cancelled: bool, today: date) -> CampaignState:
    """A campaign's state follows its dates (no job moves it), unless it was cancelled."""
    if cancelled:
        return CampaignState.CANCELLED
    if today < starts_on:
        return CampaignState.PLANNED
    if today <= ends_on:
        return CampaignState.RUNNING
    return CampaignState.COMPLETED


def check_cancellable(state: CampaignState, campaign_id: str) -> None:
    """Only a campaign that has not ended (or been cancelled) can be cancelled."""
    if state in (CampaignState.COMPLETED, CampaignState.CANCELLED):
        raise ValueError(f"campaign {campaign_id} is {state.value}: it cannot be cancelled")


@dataclass(frozen=True)
class CurrencyFigures:
    """A campaign's money in one currency."""

    currency: str
    pipeline: Decimal = ZERO  # reported by its partners (their latest reports)
    attributed_revenue: Decimal = ZERO  # credits through its touchpoint, net of reversals
    mdf_approved: Decimal = ZERO  # pre-approved budgets (approved or since expired)
    mdf_reserved: Decimal = ZERO  # what those still hold in the funds
    mdf_claimed: Decimal = ZERO  # approved claims against them: the MDF spent

    @property
    def return_per_dollar(self) -> Decimal | None:
        """Attributed revenue per unit of MDF spent (None while nothing was spent)."""
        return return_per_dollar(self.attributed_revenue, self.mdf_claimed)


def by_currency(
    *,
    pipeline: dict[str, Decimal],
    revenue: dict[str, Decimal],
    approved: dict[str, Decimal],
    reserved: dict[str, Decimal],
    claimed: dict[str, Decimal],
) -> list[CurrencyFigures]:
    """One row per currency any figure is in, in currency order."""
    currencies = sorted({*pipeline, *revenue, *approved, *reserved, *claimed})
    return [
        CurrencyFigures(
            currency,
            pipeline.get(currency, ZERO),
            revenue.get(currency, ZERO),
            approved.get(currency, ZERO),
            reserved.get(currency, ZERO),
            claimed.get(currency, ZERO),
        )
        for currency in currencies
    ]
