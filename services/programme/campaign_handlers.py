"""Consumer handlers for co-marketing campaigns: MDF pre-approvals naming a campaign (the
credits and claims through a campaign are recorded by handlers.py's handlers of those events)."""

from __future__ import annotations

from services.programme import campaign_repository
from shared.consumer import HandlerContext
from shared.events import Envelope
from shared.events.incentives import MdfPreapprovalChanged


async def on_preapprovals(
    ctx: HandlerContext, events: list[Envelope[MdfPreapprovalChanged]]
) -> None:
    await campaign_repository.record_preapprovals(ctx.conn, [event.data for event in events])
