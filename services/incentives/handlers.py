"""The consumers' handlers: credits in, earnings and clawbacks out; partner snapshots in, the
tier and status the rules use (and the credits held for the partner booked)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.incentives import (
    booking,
    clawbacks,
    mdf_preapprovals,
    partner_projection,
    repository,
)
from services.incentives.domain.campaigns import check_campaign_end
from services.incentives.domain.programs import IncentivePrograms
from services.incentives.ledger_events import LedgerAnnouncements
from shared.consumer import HandlerContext
from shared.db import Connection
from shared.errors import Unprocessable
from shared.events import Envelope, InvalidEvent
from shared.events.attribution import CreditIssued, CreditReversed
from shared.events.partners import PartnerStateChanged
from shared.events.programme_service import CampaignChanged
from shared.provisions import Provisions

# The name of the consumer of attribution's credits (app.py's `platform.consumer("ledger",
# ...)`, a literal the chart's test reads): it holds a credit for its partner, and a held
# credit that cannot be booked later is its dead letter.
LEDGER = "ledger"


async def batch_locks(
    conn: Connection, provisions: Provisions, events: list[Envelope[Any]]
) -> Iterable[int]:
    """What a batch locks, all at once (shared/consumer.py says why): each credit's partner and
    customer, each reversal's partner, each partner snapshot's partner and the customers of the
    credits held for it (one held meanwhile makes its handler retry, as before)."""
    programs = provisions.get(IncentivePrograms)
    credits = [e.data for e in events if isinstance(e.data, CreditIssued)]
    reversed_for = [e.data.partner_id for e in events if isinstance(e.data, CreditReversed)]
    snapshots = [e.data.partner_id for e in events if isinstance(e.data, PartnerStateChanged)]
    if snapshots:
        credits += [held.data for held in await repository.held_credits_of(conn, snapshots)]
    return repository.run_keys(
        [booking.subject_of(programs, credit) for credit in credits], reversed_for + snapshots
    )


async def on_credits(ctx: HandlerContext, events: list[Envelope[CreditIssued]]) -> None:
    """A run of consecutive credits is booked together; what each one causes continues the
    trace of its own event."""
    booked = await booking.book_credits(ctx.conn, ctx.provided(IncentivePrograms), events)
    await ctx.emit_all(ctx.provided(LedgerAnnouncements).of(booked.events))


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
    trace of the state change that released them (one that cannot be is dead-lettered)."""

    async def dead_letter(topic: str, value: bytes, reason: str) -> None:
        # The credit's letter is the ledger consumer's, which took it in: replayed, it is
        # booked (or refused) there.
        await ctx.dead_letter_kept(topic, value, reason, taken_in_by=LEDGER)

    booked = await partner_projection.project_partner(
        ctx.conn, ctx.provided(IncentivePrograms), event.data, dead_letter
    )
    await ctx.emit_all(ctx.provided(LedgerAnnouncements).of(booked.events))


async def on_campaigns(ctx: HandlerContext, events: list[Envelope[CampaignChanged]]) -> None:
    """Programme's campaigns, which MDF pre-approvals may name (campaign_projection.py); a
    moved end moves the claim deadlines of the campaign's approved pre-approvals. A campaign
    ending too late for a claim deadline is refused whole (dead-lettered with the reason)."""
    for event in events:
        try:
            check_campaign_end(event.data.campaign_id, event.data.ends_on)
        except Unprocessable as error:
            raise InvalidEvent(str(error)) from error
    await ctx.emit_all(await mdf_preapprovals.follow_campaigns(ctx.conn, events))
