"""The deal-credits consumer's handlers: decode the envelope, settle through the use case,
record its events (each caused by the event consumed). A won deal that cannot be split is an
invalid event: dead-lettered with the reason, nothing of it written."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.attribution import repository
from services.attribution.deal_states import Snapshot, UnattributableSnapshot, apply_deal_states
from services.attribution.domain.config import AttributionConfig
from services.attribution.health_repository import record_enablement
from services.attribution.registrations import (
    RegistrationChange,
    UnattributableRegistration,
    apply_registration,
)
from services.attribution.voice_signals import record_answers
from shared.campaigns import keep_campaign
from shared.consumer import HandlerContext
from shared.db import Connection
from shared.events import Envelope, InvalidEvent
from shared.events.opportunities import DealStateChanged
from shared.events.programme import PartnerEnablementMeasured
from shared.events.programme_service import CampaignChanged, SurveyAnswered
from shared.events.registrations import RegistrationDecided, RegistrationStatusChanged
from shared.provisions import Provisions


async def batch_locks(
    conn: Connection, provisions: Provisions, events: list[Envelope[Any]]
) -> Iterable[int]:
    """What a batch locks before any run (shared/consumer.py says why): the CRM references its
    snapshots name. A link confirmed over HTTP takes its reference and then the deals naming
    it; a batch of several runs taking each run's references after an earlier run's deals
    could hold a deal while waiting for a reference, the opposite order. Deal locks stay each
    run's own (ascending per run), after every reference."""
    return repository.reference_lock_keys(
        e.data.partner_ref
        for e in events
        if isinstance(e.data, DealStateChanged) and e.data.partner_ref
    )


async def on_deal_states(ctx: HandlerContext, events: list[Envelope[DealStateChanged]]) -> None:
    config = ctx.provided(AttributionConfig)
    try:
        emitted = await apply_deal_states(ctx.conn, config, [Snapshot.of(e) for e in events])
    except UnattributableSnapshot as error:
        raise InvalidEvent(str(error)) from error
    await ctx.emit_all(emitted)


async def on_registration_decided(
    ctx: HandlerContext, event: Envelope[RegistrationDecided]
) -> None:
    await _registration_changed(ctx, RegistrationChange.decided(event))


async def on_registration_status_changed(
    ctx: HandlerContext, event: Envelope[RegistrationStatusChanged]
) -> None:
    await _registration_changed(ctx, RegistrationChange.status_changed(event))


async def _registration_changed(ctx: HandlerContext, change: RegistrationChange) -> None:
    try:
        emitted = await apply_registration(ctx.conn, ctx.provided(AttributionConfig), change)
    except UnattributableRegistration as error:
        raise InvalidEvent(str(error)) from error
    await ctx.emit_all(emitted)


async def on_enablement(
    ctx: HandlerContext, events: list[Envelope[PartnerEnablementMeasured]]
) -> None:
    """Onboarding measured partners' enablement: the newest measurement is the health signal."""
    await record_enablement(ctx.conn, [e.data for e in events])


async def on_survey_answers(ctx: HandlerContext, events: list[Envelope[SurveyAnswered]]) -> None:
    """Programme announced partners' survey answers: kept, they are the health score's voice."""
    await record_answers(ctx.conn, [e.data for e in events])


async def on_campaigns(ctx: HandlerContext, events: list[Envelope[CampaignChanged]]) -> None:
    """Programme's campaigns, which campaign touchpoints may name (shared/campaigns.py)."""
    for event in events:
        await keep_campaign(ctx.conn, event.data)
