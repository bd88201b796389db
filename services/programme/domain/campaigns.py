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


@dataclass(frozen=True)
class CampaignPlan:
    """What an edit may change of a campaign: its dates and its partners."""

    starts_on: date
    ends_on: date
    partner_ids: frozenset[str]


def check_partners_new_campaign(ends_on: date, today: date) -> None:
    """A partner's new campaign has not ended: it ends today at the earliest, as an edit moves
    a last day (found in review: a campaign a partner dated wholly in the past was completed at
    once, beyond cancelling or editing, and counted towards its plan's co-marketing goal). One
    already running may be entered; a channel manager may record one that already ran. Raises
    ValueError."""
    if ends_on < today:
        raise ValueError(
            f"ends_on {ends_on} is before today: a partner's campaign ends today at the "
            "earliest (a channel manager records one that already ran)"
        )


def check_edit(
    campaign_id: str,
    state: CampaignState,
    now: CampaignPlan,
    wanted: CampaignPlan,
    *,
    budgeted: frozenset[str],
    today: date,
    by_partner: bool = False,
) -> None:
    """A campaign is changed only before it ends (a completed one is a record of what ran, a
    cancelled one stays so). Its first day moves only before it comes, and not into the past;
    its last day not before today; a partner joins any time before the end, and leaves only
    before the start and without an MDF pre-approval for it (`budgeted`: the partners that
    asked for one), so money asked for a campaign never loses its campaign; a partner
    (`by_partner`) moves the end of a campaign MDF was asked for only earlier. Raises ValueError
    (the caller's 409); the dates' order is check_dates' (a 422)."""
    if state in (CampaignState.COMPLETED, CampaignState.CANCELLED):
        raise ValueError(f"campaign {campaign_id} is {state.value}: it cannot be changed")
    if wanted.starts_on != now.starts_on:
        if state is CampaignState.RUNNING:
            raise ValueError(
                f"campaign {campaign_id} started on {now.starts_on}: its first day cannot move"
            )
        if wanted.starts_on < today:
            raise ValueError(f"starts_on {wanted.starts_on} is in the past")
    if wanted.ends_on != now.ends_on and wanted.ends_on < today:
        raise ValueError(
            f"ends_on {wanted.ends_on} is before today: a campaign ends today at the earliest"
        )
    if by_partner and budgeted and wanted.ends_on > now.ends_on:
        # The claim deadline of its MDF pre-approvals follows its end (incentives), with the
        # money they hold: a partner moving it years out kept its budget reserved and open to
        # claims as long (found in review).
        raise ValueError(
            f"MDF was asked for campaign {campaign_id}: its claims' deadline follows its end, "
            "so a channel manager moves the end later"
        )
    leaving = now.partner_ids - wanted.partner_ids
    if leaving and state is CampaignState.RUNNING:
        raise ValueError(
            f"campaign {campaign_id} has started: its partners can join, not leave "
            f"({', '.join(sorted(leaving))})"
        )
    if leaving & budgeted:
        raise ValueError(
            f"{', '.join(sorted(leaving & budgeted))} asked for MDF for campaign {campaign_id}: "
            "a partner with a pre-approval cannot leave it"
        )


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
