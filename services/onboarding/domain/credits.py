"""Attribution credits as onboarding counts them: in the reporting currency only, and each
credit (or reversal) once however often it is delivered."""

from __future__ import annotations

from collections.abc import Iterable

from services.onboarding.domain.config import OnboardingConfig
from shared.events import InvalidEvent


def check_reporting_currency(config: OnboardingConfig, what: str, currency: str) -> None:
    """Tier thresholds are in the reporting currency; anything else cannot count (the event is
    dead-lettered with this reason)."""
    if currency != config.reporting_currency:
        raise InvalidEvent(
            f"{what} is in {currency}; onboarding's tier thresholds are in the reporting "
            f"currency {config.reporting_currency}"
        )


def first_occurrences(keys: Iterable[str]) -> dict[str, int]:
    """Key -> index of its first occurrence: a run counts a credit re-sent within it once, at
    the place it first came."""
    first: dict[str, int] = {}
    for index, key in enumerate(keys):
        first.setdefault(key, index)
    return first
