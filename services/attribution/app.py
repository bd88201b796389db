"""Composition root of the attribution service: its consumers and HTTP routes."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from services.attribution.api import build_router
from services.attribution.credits import apply_deal_state, apply_registration
from services.attribution.domain.models import CannotAttribute
from services.attribution.settings import AttributionSettings, load_config
from shared.consumer import HandlerContext
from shared.events import Envelope, InvalidEvent
from shared.events.opportunities import DealStateChanged
from shared.events.registrations import RegistrationDecided, RegistrationStatusChanged
from shared.service import Platform, ServiceDefinition
from shared.topics import DEAL_OPPORTUNITIES, DEAL_REGISTRATIONS

NAME = "attribution"


def wire(platform: Platform) -> list[APIRouter]:
    settings = AttributionSettings()
    config = load_config(settings.config_file)

    deals = platform.consumer("deal-credits", [DEAL_OPPORTUNITIES, DEAL_REGISTRATIONS])

    @deals.handles(DealStateChanged)
    async def on_deal(ctx: HandlerContext, event: Envelope[DealStateChanged]) -> None:
        try:
            await apply_deal_state(
                ctx.conn, ctx.outbox, config, event.data, event.data.ingested_at or event.time
            )
        except CannotAttribute as error:
            raise InvalidEvent(
                f"deal {event.data.deal_key} revision {event.data.revision}: {error}"
            ) from error

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

    return [build_router(platform, config)]


definition = ServiceDefinition(
    name=NAME, migrations=Path(__file__).parent / "migrations", wire=wire
)
