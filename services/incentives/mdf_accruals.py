"""MDF accrual: each credit's accrual becomes a lot in the partner's fund and an MDF entry,
repaying any deficit first; a run's accruals are written together."""

from __future__ import annotations

from collections.abc import Sequence

from services.incentives import mdf_repository
from services.incentives.domain.ledger import credit_entry_id
from services.incentives.domain.programs import IncentivePrograms
from services.incentives.mdf_repository import NewLot
from services.incentives.repository import Booking
from shared.db import Connection
from shared.events.incentives import MdfAccrued


async def book_accruals(
    conn: Connection, programs: IncentivePrograms, bookings: Sequence[Booking]
) -> list[MdfAccrued]:
    """Book the accruals of `bookings` in order (each a lot and an MDF entry), several for one
    partner too: each sees the fund as the ones before it left it. Returns what each accrued,
    in order, for its credit's booking event."""
    if not bookings:
        return []
    times = [b.at for b in bookings]
    funds = await mdf_repository.lock_funds_summarised(
        conn, [b.credit.partner_id for b in bookings], min(times), max(times)
    )
    lots: list[NewLot] = []
    accruals: list[MdfAccrued] = []
    for booking in bookings:
        accrual, partner_id = booking.accrual, booking.credit.partner_id
        assert accrual is not None
        lot_id = credit_entry_id(booking.credit.issued_at, booking.credit.credit_id, "mdf")
        fund, absorbed, note = funds[partner_id].accrue(lot_id, accrual)
        funds[partner_id] = fund
        lots.append(NewLot(booking, accrual, lot_id, absorbed, note))
        accrued = MdfAccrued(
            entry_id=lot_id,
            partner_id=partner_id,
            program_rule=accrual.rule,
            credit_id=booking.credit.credit_id,
            deal_key=booking.credit.deal_key,
            period=booking.earnings.period,
            basis=accrual.basis,
            rate=accrual.rate,
            uncapped_amount=accrual.uncapped_amount,
            amount=accrual.amount,
            currency=programs.currency,
            note=note,
            expires_at=accrual.expires_at,
            fund_available=fund.available(booking.at),
            accrued_at=booking.at,
            ingested_at=booking.ingested_at,
        )
        accruals.append(accrued)
    await mdf_repository.insert_accruals(conn, programs, lots)
    return accruals
