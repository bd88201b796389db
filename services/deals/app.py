"""Composition root of the deals service: its consumers, background expiry and HTTP routes."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from fastapi import APIRouter

from services.deals.api import build_router
from services.deals.domain.rules import InvalidPolicy, RulesOfEngagement, rules_from_mapping
from services.deals.registrations import (
    CrmChange,
    apply_crm_changes,
    apply_partner_state,
    now,
    run_expiry,
)
from services.deals.settings import DealsSettings
from shared.consumer import HandlerContext
from shared.events import Envelope
from shared.events.crm import CrmDealChanged
from shared.events.partners import PartnerStateChanged
from shared.service import Platform, ServiceDefinition
from shared.topics import CRM_DEALS, PARTNER_LIFECYCLE

NAME = "deals"
log = logging.getLogger(__name__)


async def expire_forever(
    platform: Platform, settings: DealsSettings, policy: RulesOfEngagement
) -> None:
    while True:
        try:
            warned, expired = await run_expiry(platform.pool, platform.outbox, policy, now())
            if expired or warned:
                log.info("expiry run", extra={"expired": expired, "warned": warned})
        except Exception:
            log.exception("expiry run failed; retrying next period")
        await asyncio.sleep(settings.expiry_check_seconds)


def load_policy(path: str) -> RulesOfEngagement:
    if not path:
        return RulesOfEngagement()
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InvalidPolicy(f"cannot read DEALS_POLICY_FILE {path}: {error}") from error
    if not isinstance(data, dict):
        raise InvalidPolicy(f"DEALS_POLICY_FILE {path} must hold a JSON object")
    return rules_from_mapping(data)


async def on_crm_changes(ctx: HandlerContext, events: list[Envelope[CrmDealChanged]]) -> None:
    """A run of CRM changes into the opportunity projection, set-based; each published state
    continues the trace of the change behind it."""
    await apply_crm_changes(
        ctx.conn,
        ctx.outbox,
        [CrmChange(event.data, event.time, ctx.traceparents.get(event.id)) for event in events],
    )


def wire(platform: Platform) -> list[APIRouter]:
    settings = DealsSettings()
    policy = load_policy(settings.policy_file)
    log.info("rules of engagement", extra={"policy_version": policy.version})

    crm = platform.consumer("crm-projection", [CRM_DEALS])

    crm.handles_batch(CrmDealChanged)(on_crm_changes)

    partners = platform.consumer("partner-projection", [PARTNER_LIFECYCLE])

    @partners.handles(PartnerStateChanged)
    async def on_partner(ctx: HandlerContext, event: Envelope[PartnerStateChanged]) -> None:
        await apply_partner_state(ctx.conn, event.data)

    platform.background(lambda: expire_forever(platform, settings, policy))
    return [build_router(platform, settings, policy)]


definition = ServiceDefinition(
    name=NAME, migrations=Path(__file__).parent / "migrations", wire=wire
)
