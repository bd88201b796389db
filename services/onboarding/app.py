"""Composition root of the onboarding service: credit consumer, scheduled requalification and
HTTP routes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter

from services.onboarding.api import build_router
from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.partners import (
    Announcement,
    now,
    record_credits,
    record_reversals,
    run_requalification,
)
from services.onboarding.settings import OnboardingSettings, load_config
from shared.consumer import EventConsumer, HandlerContext
from shared.events import Envelope
from shared.events.attribution import CreditIssued, CreditReversed
from shared.service import Platform, ServiceDefinition
from shared.topics import ATTRIBUTION_CREDITS

NAME = "onboarding"
log = logging.getLogger(__name__)


async def requalify_forever(
    platform: Platform, settings: OnboardingSettings, config: OnboardingConfig
) -> None:
    while True:
        await asyncio.sleep(settings.requalification_period_seconds)
        try:
            changes = await run_requalification(platform.pool, platform.outbox, config, now())
            if changes:
                log.info("requalification run", extra={"changed_partners": len(changes)})
        except Exception:
            log.exception("requalification run failed; retrying next period")


def handle_credits(credits: EventConsumer, config: OnboardingConfig) -> None:
    """Attribution credits and reversals move attributed revenue, hence tiers."""

    @credits.handles_batch(CreditIssued)
    async def on_credits(ctx: HandlerContext, events: list[Envelope[CreditIssued]]) -> None:
        announced = await record_credits(
            ctx.conn, config, [(e.data, e.data.ingested_at or e.time) for e in events]
        )
        await emit(ctx, events, announced)

    @credits.handles_batch(CreditReversed)
    async def on_reversals(ctx: HandlerContext, events: list[Envelope[CreditReversed]]) -> None:
        announced = await record_reversals(
            ctx.conn, config, [(e.data, e.data.ingested_at or e.time) for e in events]
        )
        await emit(ctx, events, announced)


async def emit(
    ctx: HandlerContext, events: Sequence[Envelope[Any]], announced: list[Announcement]
) -> None:
    """Record what a run caused in one statement, each event continuing its cause's trace."""
    await ctx.emit_all(
        [ctx.event(a.topic, a.payload, subject=a.subject, cause=events[a.cause]) for a in announced]
    )


def wire(platform: Platform) -> list[APIRouter]:
    settings = OnboardingSettings()
    config = load_config(settings)
    log.info("onboarding program loaded", extra={"policy_version": config.version})

    handle_credits(platform.consumer("credits", [ATTRIBUTION_CREDITS]), config)
    platform.background(lambda: requalify_forever(platform, settings, config))
    return [build_router(platform, config)]


definition = ServiceDefinition(
    name=NAME, migrations=Path(__file__).parent / "migrations", wire=wire
)
