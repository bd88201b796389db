"""The onboarding checklist: which items a partner may tick when, what ticking one sets, and
when the checklist is complete (the partner becomes active)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.lifecycle import IN_PROGRAM
from shared.errors import Conflict, Unprocessable
from shared.events.partners import PartnerStatus as S

# Agreements without a term never lapse: stored as a far-future validity.
NEVER = datetime(9999, 1, 1, tzinfo=UTC)


def checklist_item(config: OnboardingConfig, item: str) -> str:
    """`item` as one of the program's checklist items (422 naming them otherwise)."""
    if item not in config.checklist:
        raise Unprocessable(
            f"unknown checklist item {item!r}; items are {', '.join(config.checklist)}"
        )
    return item


@dataclass(frozen=True)
class Tick:
    """What ticking an item does to a partner."""

    completed: dict[str, str]  # item -> when (ISO), the whole checklist after the tick
    fields: dict[str, object]  # the partner fields it sets
    done: int  # items completed, of len(config.checklist)
    activates: bool  # the last item of an onboarding partner: it becomes active
    renewal: bool  # the agreement signed again while in the program


def tick(
    config: OnboardingConfig,
    partner_id: str,
    status: S,
    completed: Mapping[str, str],
    item: str,
    at: datetime,
) -> Tick:
    """Items are ticked while onboarding; the agreement may also be signed again while in the
    program, which renews it for another term."""
    renewal = item == config.agreement_item and status in IN_PROGRAM
    if status is not S.ONBOARDING and not renewal:
        raise Conflict(
            f"partner {partner_id} is {status.value}: checklist items are completed while "
            f"onboarding (the {config.agreement_item} item can be renewed while in the program)"
        )
    checklist = {**completed, item: at.isoformat()}
    fields: dict[str, object] = {"checklist": checklist}
    if item == config.agreement_item:
        fields["agreement_valid_until"] = (
            at + timedelta(days=config.agreement_term_days) if config.agreement_term_days else NEVER
        )
    done = len([i for i in config.checklist if i in checklist])
    activates = status is S.ONBOARDING and done == len(config.checklist)
    return Tick(checklist, fields, done, activates, renewal)
