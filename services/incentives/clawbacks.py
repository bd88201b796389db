"""Clawbacks: a reversed credit takes back exactly the entries it produced (looked up, not
recomputed), on the incentive ledger and on the MDF ledger.

A reversal that arrives before its credit is parked and applied in the transaction in which the
credit arrives (booking.py); a second reversal of a credit changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.incentives import mdf_repository, repository
from services.incentives.domain.earnings import ZERO, EntryType
from services.incentives.domain.ledger import (
    BookedCredit,
    Entry,
    entry_id,
    reversal_mismatches,
    reversals_for,
)
from services.incentives.domain.mdf import Lot, claw_back
from services.incentives.domain.programs import IncentivePrograms
from services.incentives.ledger_events import entry_event
from shared.clock import now
from shared.db import Connection
from shared.events import Envelope, InvalidEvent
from shared.events.attribution import CreditReversed
from shared.events.incentives import IncentiveReversed
from shared.events.notifications import NotificationKind
from shared.notify import notify
from shared.outbox import OutgoingEvent

log = logging.getLogger(__name__)

REVERSED = "reversed"
PARKED = "parked until the credit arrives"
ALREADY_REVERSED = "already reversed"


@dataclass
class Reversed:
    outcome: str  # what happened (for logs and tests)
    events: list[OutgoingEvent] = field(default_factory=list)


async def reverse_credit(
    conn: Connection,
    programs: IncentivePrograms,
    reversal: CreditReversed,
    *,
    cause: Envelope[Any],
    ingested_at: datetime | None,
) -> Reversed:
    """Take back exactly the entries the reversed credit produced. What it announces names
    `cause` (the consumed event behind it) and carries `ingested_at`."""
    await repository.lock_for_reversal(conn, reversal.partner_id, reversal.credit_id)
    credit = await repository.credit_for_update(conn, reversal.credit_id)
    if credit is None:
        # Cannot happen on one deal key (one partition, in order) unless attribution published
        # a reversal without its credit; keep it and apply it when the credit arrives.
        await repository.park_reversal(conn, reversal)
        log.warning("reversal before its credit: parked", extra={"credit_id": reversal.credit_id})
        return Reversed(PARKED)
    booked = BookedCredit(credit["partner_id"], credit["amount"], credit["currency"])
    problems = reversal_mismatches(
        booked, partner_id=reversal.partner_id, amount=reversal.amount, currency=reversal.currency
    )
    if problems:
        raise InvalidEvent(
            f"reversal {reversal.reversal_id} does not match credit {reversal.credit_id}: "
            + "; ".join(problems)
        )
    if credit["reversal_id"] is not None:
        log.info(
            "credit already reversed",
            extra={"credit_id": reversal.credit_id, "by": credit["reversal_id"]},
        )
        return Reversed(ALREADY_REVERSED)
    at = now()
    reason = f"credit {reversal.credit_id} reversed ({reversal.reason})"
    events, taken_back = await _reverse_entries(
        conn, reversal, reason=reason, at=at, ingested_at=ingested_at, cause=cause
    )
    clawed = await _claw_back_accrual(conn, programs, reversal, at)
    if clawed is not None:
        mdf_reversal_id = entry_id(clawed["entry_id"], "reversal")
        payload = _reversed_event(mdf_reversal_id, clawed, "mdf", reversal, reason, at, ingested_at)
        events.append(entry_event(payload, cause))
    await repository.mark_reversed(conn, reversal, at)
    await repository.forget_first_deals(conn, credit)
    if taken_back > 0:
        currency = credit["currency"]
        events.append(
            notify(
                reversal.partner_id,
                NotificationKind.CLAWBACK,
                about=reversal.credit_id,
                subject=f"{taken_back} {currency} clawed back",
                body=f"Credit {reversal.credit_id} on deal {reversal.deal_key} was reversed "
                f"({reversal.reason}); the {taken_back} {currency} it earned was taken back.",
                deal_key=reversal.deal_key,
                created_at=at,
                ingested_at=ingested_at,
                cause=cause,
            )
        )
    return Reversed(REVERSED, events)


async def _reverse_entries(
    conn: Connection,
    reversal: CreditReversed,
    *,
    reason: str,
    at: datetime,
    ingested_at: datetime | None,
    cause: Envelope[Any],
) -> tuple[list[OutgoingEvent], Decimal]:
    """Append the exact negation of each entry the credit produced. Returns their events and
    the amount taken back."""
    rows = await repository.earning_entries(conn, reversal.credit_id)
    by_id = {row["entry_id"]: row for row in rows}
    produced = [
        Entry(
            row["entry_id"],
            row["partner_id"],
            EntryType(row["entry_type"]),
            row["rule"],
            row["amount"],
            row["credit_id"],
        )
        for row in rows
    ]
    taken_back = ZERO
    events: list[OutgoingEvent] = []
    for entry in reversals_for(produced, lambda e: entry_id(e.entry_id, "reversal")):
        original = by_id[entry.reverses or ""]
        await repository.insert_reversal_entry(
            conn,
            entry,
            original,
            reversal_id=reversal.reversal_id,
            note=reason,
            at=at,
            ingested_at=ingested_at,
        )
        taken_back -= entry.amount
        payload = _reversed_event(
            entry.entry_id, dict(original), "incentive", reversal, reason, at, ingested_at
        )
        events.append(entry_event(payload, cause))
    return events, taken_back


async def _claw_back_accrual(
    conn: Connection, programs: IncentivePrograms, reversal: CreditReversed, at: datetime
) -> dict[str, Any] | None:
    """Reverse the MDF accrual the credit produced, exactly. Returns the accrual entry (None:
    the credit accrued nothing)."""
    partner_id, credit_id = reversal.partner_id, reversal.credit_id
    # The lot is found by its credit: its id is ordered by the credit's issue time, which a
    # reversal does not carry (and a lot booked before that was named by the credit alone).
    accrual = await mdf_repository.credit_accrual(conn, credit_id)
    if accrual is None:
        return None
    lot_id = accrual["entry_id"]
    fund = await mdf_repository.lock_fund(conn, partner_id, create=False)
    assert fund is not None
    lot = await mdf_repository.lot_for_update(conn, lot_id)
    assert lot is not None
    own = Lot(lot_id, lot["remaining"], lot["expires_at"])
    clawback = claw_back(fund.lots, own, lot["expired"], accrual["amount"], at)
    common = {
        "partner_id": partner_id,
        "rule": accrual["rule"],
        "period": accrual["period"],
        "credit_id": credit_id,
        "lot_id": lot_id,
        "currency": accrual["currency"],
        "programs_version": programs.version,
        "created_at": at,
    }
    if clawback.restored > 0:
        await mdf_repository.insert_mdf_entry(
            conn,
            entry_id=entry_id(lot_id, "expiry-reversal"),
            entry_type="expiry_reversal",
            amount=clawback.restored,
            note="expired remainder restored before the accrual's clawback",
            **common,
        )
        await mdf_repository.restore_expired(conn, lot_id)
    await mdf_repository.take_from_lots(conn, clawback.takes)
    if clawback.shortfall > 0:
        await mdf_repository.add_deficit(conn, partner_id, clawback.shortfall)
    await mdf_repository.insert_mdf_entry(
        conn,
        entry_id=entry_id(lot_id, "reversal"),
        entry_type="reversal",
        amount=-accrual["amount"],
        note=clawback.note,
        reverses=lot_id,
        **common,
    )
    return dict(accrual)


def _reversed_event(
    reversal_entry_id: str,
    original: dict[str, Any],
    ledger: str,
    reversal: CreditReversed,
    reason: str,
    at: datetime,
    ingested_at: datetime | None,
) -> IncentiveReversed:
    return IncentiveReversed(
        entry_id=reversal_entry_id,
        reverses_entry_id=original["entry_id"],
        ledger=ledger,
        partner_id=reversal.partner_id,
        program_rule=original["rule"],
        credit_id=reversal.credit_id,
        reversal_id=reversal.reversal_id,
        deal_key=reversal.deal_key,
        period=original["period"],
        amount=original["amount"],
        currency=original["currency"],
        reason=reason,
        reversed_at=at,
        ingested_at=ingested_at,
    )
