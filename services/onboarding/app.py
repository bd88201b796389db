"""Composition root of the onboarding service: its program, the credit consumer, the scheduled
requalification and the HTTP routes."""

from __future__ import annotations

import logging
from pathlib import Path

from services.onboarding import api, directory_api, enablement_api, handlers, jobs, programme_api
from services.onboarding.ownership import DomainVerification
from services.onboarding.partner_tokens import TokenIssuing
from services.onboarding.settings import OnboardingSettings, domain_verifier, load_config
from shared.events.attribution import CreditIssued, CreditReversed, PartnerHealthScored
from shared.service import Platform, ServiceDefinition
from shared.topics import ATTRIBUTION_CREDITS, PARTNER_HEALTH

log = logging.getLogger(__name__)


def wire(platform: Platform) -> None:
    settings = OnboardingSettings()
    config = load_config(settings)
    log.info("onboarding program loaded", extra={"policy_version": config.version})
    platform.provide(config)
    # Onboarding is the one place that issues partner tokens (shared/identity.py).
    platform.provide(TokenIssuing.from_settings(platform.settings))
    platform.provide(DomainVerification(domain_verifier(settings)))

    credits = platform.consumer("credits", [ATTRIBUTION_CREDITS])
    credits.handles_batch(CreditIssued)(handlers.on_credits)
    credits.handles_batch(CreditReversed)(handlers.on_reversals)
    health = platform.consumer("health", [PARTNER_HEALTH])
    health.handles_batch(PartnerHealthScored)(handlers.on_health)

    period = settings.requalification_period_seconds
    platform.every(period, jobs.requalify, name="requalification", first_run_after=period)
    platform.every(settings.review_check_seconds, jobs.escalate_reviews, name="review-sla")
    platform.every(period, jobs.remind, name="certification reminders", first_run_after=period)
    platform.every(period, jobs.announce_enablement, name="enablement", first_run_after=period)
    platform.every(period, jobs.programme_year, name="programme year", first_run_after=period)


definition = ServiceDefinition(
    name="onboarding",
    migrations=Path(__file__).parent / "migrations",
    routers=(
        api.router,
        api.admin,
        enablement_api.xapi,
        enablement_api.people,
        enablement_api.admin,
        enablement_api.library,
        directory_api.directory,
        programme_api.programme,
        programme_api.admin,
    ),
    wire=wire,
)
