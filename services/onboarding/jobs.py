"""Onboarding's periodic work: the scheduled requalification of every partner in the program,
the review queue's deadlines, and reminders before people's certifications expire."""

from __future__ import annotations

from decimal import Decimal

from services.onboarding import signals
from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.programme_year import run_programme_year
from services.onboarding.reminders import send_reminders
from services.onboarding.requalification import run_requalification
from services.onboarding.review import escalate_overdue_reviews
from shared.clock import now
from shared.service import Platform


async def requalify(platform: Platform) -> dict[str, list[str]]:
    """Requalify every partner as of now; returns the changes per partner that changed."""
    config = platform.provisions.get(OnboardingConfig)
    return await run_requalification(platform.pool, platform.outbox, config, now())


async def escalate_reviews(platform: Platform) -> list[str]:
    """Tell the reviewers of applications past their review deadline (once each)."""
    config = platform.provisions.get(OnboardingConfig)
    return await escalate_overdue_reviews(platform.pool, platform.outbox, config, now())


async def remind(platform: Platform) -> list[tuple[str, int]]:
    """Send the certification reminders due now; returns those sent."""
    config = platform.provisions.get(OnboardingConfig)
    return await send_reminders(platform.pool, platform.outbox, config, now())


async def announce_enablement(platform: Platform) -> dict[str, Decimal]:
    """Announce partners' enablement that moved (or was last announced on an earlier day)."""
    config = platform.provisions.get(OnboardingConfig)
    return await signals.announce_enablement(platform.pool, platform.outbox, config, now())


async def programme_year(platform: Platform) -> dict[str, list[str]]:
    """Notices, annual reviews and probation deadlines due now."""
    config = platform.provisions.get(OnboardingConfig)
    return await run_programme_year(platform.pool, platform.outbox, config, now())
