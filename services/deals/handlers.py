"""The deals consumers' handlers: CRM changes into the opportunity projection, partner
lifecycle events into the partner projection."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.deals import repository
from services.deals.crm_merges import project_crm_changes
from services.deals.crm_writeback import queue_write_back
from services.deals.partner_projection import apply_partner_state
from services.deals.policy import PolicyStore
from services.deals.settings import DealsSettings
from shared.consumer import HandlerContext
from shared.db import Connection
from shared.events import Envelope
from shared.events.crm import CrmDealChanged
from shared.events.partners import PartnerStateChanged
from shared.events.registrations import RegistrationDecided, RegistrationStatusChanged
from shared.provisions import Provisions


async def crm_batch_locks(
    conn: Connection, provisions: Provisions, events: list[Envelope[Any]]
) -> Iterable[int]:
    """What a batch of CRM changes locks before any run (shared/consumer.py says why): the
    opportunities it touches, as a webhook's intake takes them (services/deals/crm_at_intake.py)."""
    return repository.crm_deal_lock_keys(
        [event.data for event in events if isinstance(event.data, CrmDealChanged)]
    )


async def on_crm_changes(ctx: HandlerContext, events: list[Envelope[CrmDealChanged]]) -> None:
    """A run of CRM changes, set-based; each published state continues the trace of the change
    behind it (one statement records them all). A merge's registrations follow the survivor
    (a review started by one is timed by the policy in force)."""
    try:
        policies: PolicyStore | None = ctx.provided(PolicyStore)
    except LookupError:  # a consumer wired without the service's policy: the defaults
        policies = None
    await ctx.emit_all(await project_crm_changes(ctx.conn, events, policies))


async def on_registration_for_crm(
    ctx: HandlerContext, event: Envelope[RegistrationDecided] | Envelope[RegistrationStatusChanged]
) -> None:
    """Queue the write that tells the originating CRM what was decided; the write-back job
    sends it (services/deals/crm_writeback.py)."""
    await queue_write_back(ctx.conn, ctx.provided(DealsSettings), event, ctx.topic)


async def on_partner(ctx: HandlerContext, event: Envelope[PartnerStateChanged]) -> None:
    """The partner projection; an ended partner's registrations close, announced as a
    continuation of the lifecycle event."""
    await ctx.emit_all(await apply_partner_state(ctx.conn, event.data, event))
