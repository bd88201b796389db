"""HTTP API of the finance team's payouts view (the console's payouts page): by period and
settlement state. Finance and channel managers read it; finance records payouts
(`POST /partners/{partner_id}/payouts`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from services.incentives import payout_views
from services.incentives.api import ProgrammeReaderDep, ProgramsDep, asked_period
from services.incentives.domain.settlement import Settlement
from services.incentives.payout_schemas import PayoutsOut
from shared.http import PlatformDep, api_router
from shared.inputs import Ident

finance = api_router(tags=["ledger"])

PERIOD = r"^[0-9]{4}-(Q[1-4]|0[1-9]|1[0-2])$"


@finance.get("/payouts", response_model=PayoutsOut)
async def list_payouts(
    who: ProgrammeReaderDep,
    platform: PlatformDep,
    programs: ProgramsDep,
    period: Annotated[str | None, Query(pattern=PERIOD)] = None,
    state: Settlement | None = None,
    partner: Annotated[Ident | None, Query(description="one partner's row only")] = None,
    after: Annotated[
        str | None,
        Query(max_length=400, description="`next_after` of the page before (the partners past it)"),
    ] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    payouts_before: Annotated[
        Ident | None, Query(description="`next_payouts_before` of the page before (an entry id)")
    ] = None,
    payouts_limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> PayoutsOut:
    """Every partner with ledger entries in the period (every period when none): what the
    period booked, took back and paid, the balance still owed now and its state (owed,
    settled, overpaid), largest balance first (or one partner's: finance looking for whom to
    pay); and the payouts made in the period (to that partner), newest first, a page of
    `payouts_limit` after `payouts_before`, with their count. The totals are always the
    programme's. The period is in the programme's form (2026-Q4 when it books by quarter,
    2026-11 by month)."""
    asked = asked_period(programs, period)
    async with platform.pool.acquire() as conn:
        return await payout_views.payouts(
            conn,
            programs,
            period=asked,
            state=state,
            partner=partner,
            after=after,
            offset=offset,
            limit=limit,
            payouts_before=payouts_before,
            payouts_limit=payouts_limit,
        )
