"""Composition root of the incentives service: its consumers, MDF expiry job and HTTP routes."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from fastapi import APIRouter

from services.incentives.api import build_router
from services.incentives.credits import (
    IssuedCredit,
    apply_credits,
    apply_partner_state,
    apply_reversal,
)
from services.incentives.domain.programs import IncentivePrograms
from services.incentives.funds import expire_due
from services.incentives.settings import IncentivesSettings
from shared.consumer import EventConsumer, HandlerContext
from shared.events import Envelope
from shared.events.attribution import CreditIssued, CreditReversed
from shared.events.partners import PartnerStateChanged
from shared.service import Platform, ServiceDefinition
from shared.topics import ATTRIBUTION_CREDITS, PARTNER_LIFECYCLE

NAME = "incentives"
log = logging.getLogger(__name__)


async def expire_forever(
    platform: Platform, programs: IncentivePrograms, settings: IncentivesSettings
) -> None:
    while True:
        try:
            async with platform.pool.acquire() as conn:
                expired = await expire_due(conn, platform.outbox, programs)
            if expired:
                log.info("expired MDF lots", extra={"count": expired})
        except Exception:
            log.exception("MDF expiry run failed; retrying next period")
        await asyncio.sleep(settings.mdf_expiry_check_seconds)


def handle_credits(consumer: EventConsumer, programs: IncentivePrograms) -> None:
    """The ledger consumer's handlers: credits in, earnings and clawbacks out."""

    @consumer.handles_batch(CreditIssued)
    async def on_credits(ctx: HandlerContext, events: list[Envelope[CreditIssued]]) -> None:
        # A run of consecutive credits is booked together; what each one causes continues the
        # trace of its own event.
        run = [
            IssuedCredit(event.data, event.data.ingested_at, ctx.traceparents.get(event.id))
            for event in events
        ]
        await apply_credits(ctx.conn, ctx.outbox, programs, run)

    @consumer.handles(CreditReversed)
    async def on_reversal(ctx: HandlerContext, event: Envelope[CreditReversed]) -> None:
        await apply_reversal(
            ctx.conn, ctx.outbox, programs, event.data, ingested_at=event.data.ingested_at
        )


def wire(platform: Platform) -> list[APIRouter]:
    settings = IncentivesSettings()
    programs = settings.programs()
    log.info("incentive programs loaded", extra={"programs_version": programs.version})

    handle_credits(platform.consumer("ledger", [ATTRIBUTION_CREDITS]), programs)
    partners = platform.consumer("partner-projection", [PARTNER_LIFECYCLE])

    @partners.handles(PartnerStateChanged)
    async def on_partner(ctx: HandlerContext, event: Envelope[PartnerStateChanged]) -> None:
        await apply_partner_state(ctx.conn, event.data)

    platform.background(lambda: expire_forever(platform, programs, settings))
    return [build_router(platform, programs)]


definition = ServiceDefinition(
    name=NAME, migrations=Path(__file__).parent / "migrations", wire=wire
)
