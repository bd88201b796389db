"""MDF expiry: the unused remainder of lots past their expiry leaves the fund, with an MDF
entry and an event per lot (one partner's fund at a time, under its lock)."""

from __future__ import annotations

from services.incentives import mdf_repository
from services.incentives.domain.ledger import entry_id
from services.incentives.domain.programs import IncentivePrograms
from services.incentives.ledger_events import entry_event
from shared.clock import now
from shared.db import Connection
from shared.events.incentives import MdfExpired
from shared.outbox import Outbox, OutgoingEvent


async def expire_due(
    conn: Connection, outbox: Outbox, programs: IncentivePrograms, limit: int = 200
) -> int:
    """Expire the unused remainder of lots past their expiry, a transaction per partner.
    Returns how many lots expired."""
    at = now()
    expired_count = 0
    for partner_id in await mdf_repository.partners_with_lots_due(conn, at, limit):
        async with conn.transaction():
            await mdf_repository.lock_fund(conn, partner_id, create=False)
            events: list[OutgoingEvent] = []
            for lot in await mdf_repository.lots_due_for_update(conn, partner_id, at):
                expiry_id = entry_id(lot["lot_id"], "expiry")
                await mdf_repository.expire_lot(conn, lot["lot_id"])
                await mdf_repository.insert_mdf_entry(
                    conn,
                    entry_id=expiry_id,
                    partner_id=partner_id,
                    entry_type="expiry",
                    rule="mdf:expiry",
                    # The lot's own end, not the run's moment: a lot ending 23:59:30 on a
                    # quarter's last day, expired by the run at 00:00:30, is that quarter's.
                    period=programs.period_of(lot["expires_at"].date()),
                    credit_id=lot["credit_id"],
                    lot_id=lot["lot_id"],
                    amount=-lot["remaining"],
                    currency=programs.currency,
                    note=f"unused MDF expired at {lot['expires_at'].isoformat()}",
                    programs_version=programs.version,
                    created_at=at,
                )
                expired = MdfExpired(
                    entry_id=expiry_id,
                    partner_id=partner_id,
                    lot_id=lot["lot_id"],
                    credit_id=lot["credit_id"],
                    amount=lot["remaining"],
                    currency=programs.currency,
                    expired_at=lot["expires_at"],
                )
                events.append(entry_event(expired))
                expired_count += 1
            await outbox.publish_many(conn, events)
    return expired_count
