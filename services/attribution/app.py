"""Composition root of the attribution service: its consumers and HTTP routes."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from services.attribution.api import build_router
from services.attribution.credits import (
    Emission,
    Snapshot,
    UnattributableSnapshot,
    apply_deal_states,
    apply_registration,
)
from services.attribution.domain.config import AttributionConfig
from services.attribution.domain.models import CannotAttribute
from services.attribution.settings import AttributionSettings, load_config
from shared.consumer import EventConsumer, HandlerContext
from shared.events import Envelope, InvalidEvent
from shared.events.opportunities import DealStateChanged
from shared.events.registrations import RegistrationDecided, RegistrationStatusChanged
from shared.outbox import OutgoingEvent
from shared.service import Platform, ServiceDefinition
from shared.topics import DEAL_OPPORTUNITIES, DEAL_REGISTRATIONS

NAME = "attribution"
DEAL_TOPICS = [DEAL_OPPORTUNITIES, DEAL_REGISTRATIONS]


def wire(platform: Platform) -> list[APIRouter]:
    settings = AttributionSettings()
    config = load_config(settings.config_file)

    handle_deals(platform.consumer("deal-credits", DEAL_TOPICS), config)
    return [build_router(platform, config)]


def handle_deals(deals: EventConsumer, config: AttributionConfig) -> None:
    """The handlers of the deal-credits consumer (deal snapshots and registration events)."""

    @deals.handles_batch(DealStateChanged)
    async def on_deals(ctx: HandlerContext, events: list[Envelope[DealStateChanged]]) -> None:
        snapshots = [Snapshot(e.data, e.data.ingested_at or e.time, e) for e in events]
        try:
            emissions = await apply_deal_states(ctx.conn, config, snapshots)
        except UnattributableSnapshot as error:
            event = error.snapshot.event
            raise InvalidEvent(
                f"deal {event.deal_key} revision {event.revision}: {error.error}"
            ) from error
        await ctx.emit_all([_caused(ctx, emission) for emission in emissions])

    @deals.handles(RegistrationDecided)
    async def on_decided(ctx: HandlerContext, event: Envelope[RegistrationDecided]) -> None:
        r = event.data
        try:
            await apply_registration(
                ctx.conn,
                ctx.outbox,
                config,
                registration_id=r.registration_id,
                partner_id=r.partner_id,
                status=r.status,
                conflicts=len(r.conflicts),
                crm_deal_key=r.crm_deal_key,
                changed_at=r.decided_at,
                ingested_at=event.time,
            )
        except CannotAttribute as error:
            raise InvalidEvent(f"registration {r.registration_id}: {error}") from error

    @deals.handles(RegistrationStatusChanged)
    async def on_status(ctx: HandlerContext, event: Envelope[RegistrationStatusChanged]) -> None:
        r = event.data
        try:
            await apply_registration(
                ctx.conn,
                ctx.outbox,
                config,
                registration_id=r.registration_id,
                partner_id=r.partner_id,
                status=r.status,
                conflicts=None,
                crm_deal_key=r.crm_deal_key,
                changed_at=r.changed_at,
                ingested_at=event.time,
            )
        except CannotAttribute as error:
            raise InvalidEvent(f"registration {r.registration_id}: {error}") from error


def _caused(ctx: HandlerContext, emission: Emission) -> OutgoingEvent:
    """The event, continuing the trace of the snapshot that caused it."""
    assert emission.cause is not None  # every snapshot of a run comes with its envelope
    return ctx.event(
        emission.topic, emission.payload, subject=emission.subject, cause=emission.cause
    )


definition = ServiceDefinition(
    name=NAME, migrations=Path(__file__).parent / "migrations", wire=wire
)
