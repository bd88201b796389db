"""The consumers' handlers: each event that matters to a programme figure becomes a fact
(repository.py); the figures are computed when they are read (views.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from services.programme import campaign_repository, repository, revenue_totals
from services.programme.domain.decisions import (
    RegistrationMove,
    first_decision,
    onboarding_decision,
    status_move,
)
from services.programme.domain.quarters import Quarter
from services.programme.repository import MoveRow, SpendEntry
from shared.consumer import HandlerContext
from shared.db import Connection
from shared.events import Envelope
from shared.events.attribution import CreditIssued, CreditReversed
from shared.events.incentives import (
    CreditBooked,
    IncentiveEarned,
    IncentiveReversed,
    MdfAccrued,
    MdfClaimDecided,
)
from shared.events.partners import PartnerStateChanged
from shared.events.registrations import RegistrationDecided, RegistrationStatusChanged
from shared.provisions import Provisions

# The ledger events that are programme spend.
Spending = TypeVar("Spending", IncentiveEarned, IncentiveReversed, MdfAccrued, MdfClaimDecided)


async def on_partner_versions(
    ctx: HandlerContext, events: list[Envelope[PartnerStateChanged]]
) -> None:
    versions = []
    for event in events:
        partner = event.data
        decided = onboarding_decision(partner.change, partner.previous_status, partner.reason)
        versions.append((partner, decided.value if decided is not None else None))
    await repository.record_partner_versions(ctx.conn, versions)


async def on_credits(ctx: HandlerContext, events: list[Envelope[CreditIssued]]) -> None:
    await repository.record_credits(ctx.conn, [event.data for event in events])
    await campaign_repository.record_credits(ctx.conn, [event.data for event in events])


async def on_reversals(ctx: HandlerContext, events: list[Envelope[CreditReversed]]) -> None:
    await repository.record_reversals(ctx.conn, [event.data for event in events])


async def revenue_locks(
    conn: Connection, provisions: Provisions, events: list[Envelope[Any]]
) -> Iterable[int]:
    """What a batch of credits, reversals or partner versions locks before any run
    (shared/consumer.py says why): what the revenue totals' triggers lock for its facts."""
    return await revenue_totals.lock_keys(conn, events)


def _move_row(
    event: Envelope[RegistrationDecided] | Envelope[RegistrationStatusChanged],
    move: RegistrationMove | None,
    at: datetime,
) -> list[MoveRow]:
    if move is None:
        return []
    return [
        MoveRow(
            event_id=event.id,
            registration_id=event.data.registration_id,
            partner_id=event.data.partner_id,
            move=move.kind.value,
            outcome=move.outcome.value if move.outcome is not None else None,
            automatic=move.automatic,
            at_submission=move.at_submission,
            at=at,
        )
    ]


async def on_registrations_decided(
    ctx: HandlerContext, events: list[Envelope[RegistrationDecided]]
) -> None:
    rows: list[MoveRow] = []
    for event in events:
        rows += _move_row(event, first_decision(event.data.status), event.data.decided_at)
    await repository.record_registration_moves(ctx.conn, rows)


async def on_registration_changes(
    ctx: HandlerContext, events: list[Envelope[RegistrationStatusChanged]]
) -> None:
    rows: list[MoveRow] = []
    for event in events:
        change = event.data
        move = status_move(change.previous_status, change.status, change.reason)
        rows += _move_row(event, move, change.changed_at)
    await repository.record_registration_moves(ctx.conn, rows)


async def _record_spend(
    ctx: HandlerContext,
    events: list[Envelope[Spending]],
    spend: Callable[[Spending], SpendEntry | None],
) -> None:
    """The events' spend entries (`spend` gives None for an event that spends nothing)."""
    entries = [spend(event.data) for event in events]
    await repository.record_spend(ctx.conn, [e for e in entries if e is not None])


def _earning(e: IncentiveEarned) -> SpendEntry:
    return SpendEntry.of_ledger(e, "incentive", e.amount, e.earned_at)


def _mdf_accrual(e: MdfAccrued) -> SpendEntry:
    return SpendEntry.of_ledger(e, "mdf_accrual", e.amount, e.accrued_at)


async def on_bookings(ctx: HandlerContext, events: list[Envelope[CreditBooked]]) -> None:
    """A credit's booking: each of its entries, as it would be announced alone."""
    entries: list[SpendEntry] = []
    for event in events:
        booked = event.data
        entries += [_earning(earned) for earned in booked.earnings]
        if booked.mdf_accrued is not None:
            entries.append(_mdf_accrual(booked.mdf_accrued))
    await repository.record_spend(ctx.conn, entries)


async def on_earnings(ctx: HandlerContext, events: list[Envelope[IncentiveEarned]]) -> None:
    """An earning announced alone (incentives did so before it announced bookings)."""
    await _record_spend(ctx, events, _earning)


def _clawback(e: IncentiveReversed) -> SpendEntry:
    """A clawback takes back an earning (ledger `incentive`) or an MDF accrual (`mdf`)."""
    movement = "incentive" if e.ledger == "incentive" else "mdf_accrual"
    return SpendEntry.of_ledger(e, movement, -e.amount, e.reversed_at, e.reverses_entry_id)


async def on_clawbacks(ctx: HandlerContext, events: list[Envelope[IncentiveReversed]]) -> None:
    await _record_spend(ctx, events, _clawback)


async def on_mdf_accruals(ctx: HandlerContext, events: list[Envelope[MdfAccrued]]) -> None:
    """An MDF accrual announced alone (before incentives announced bookings)."""
    await _record_spend(ctx, events, _mdf_accrual)


def _claim_spend(e: MdfClaimDecided) -> SpendEntry | None:
    """MDF spent: an approved claim (its ledger debit names the entry). A rejected claim
    spends nothing."""
    if e.status != "approved":
        return None
    return SpendEntry(
        e.entry_id or f"claim:{e.claim_id}",
        e.partner_id,
        "mdf_claim",
        None,
        str(Quarter.of(e.decided_at.date())),
        e.amount,
        e.currency,
        e.decided_at,
    )


async def on_mdf_claims(ctx: HandlerContext, events: list[Envelope[MdfClaimDecided]]) -> None:
    """An approved claim is spend; one against a campaign's pre-approval is also that
    campaign's cost."""
    await campaign_repository.record_claims(ctx.conn, [event.data for event in events])
    await _record_spend(ctx, events, _claim_spend)
