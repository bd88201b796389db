"""The consumers' handlers: credits in, earnings and clawbacks out; partner snapshots in, the
tier and status the rules use (and the credits held for the partner booked)."""

from __future__ import annotations

from services.incentives import booking, clawbacks, partner_projection
from services.incentives.domain.programs import IncentivePrograms
from shared.consumer import HandlerContext
from shared.events import Envelope
from shared.events.attribution import CreditIssued, CreditReversed
from shared.events.partners import PartnerStateChanged


async def on_credits(ctx: HandlerContext, events: list[Envelope[CreditIssued]]) -> None:
    """A run of consecutive credits is booked together; what each one causes continues the
    trace of its own event."""
    booked = await booking.book_credits(ctx.conn, ctx.provided(IncentivePrograms), events)
    await ctx.emit_all(booked.events)


async def on_reversal(ctx: HandlerContext, event: Envelope[CreditReversed]) -> None:
    reversed_ = await clawbacks.reverse_credit(
        ctx.conn,
        ctx.provided(IncentivePrograms),
        event.data,
        cause=event,
        ingested_at=event.data.ingested_at,
    )
    await ctx.emit_all(reversed_.events)


async def on_partner(ctx: HandlerContext, event: Envelope[PartnerStateChanged]) -> None:
    """A partner's new state; the credits held for it until it settled are booked now, in the
    trace of the state change that released them."""
    booked = await partner_projection.project_partner(
        ctx.conn, ctx.provided(IncentivePrograms), event.data
    )
    await ctx.emit_all(booked.events)
