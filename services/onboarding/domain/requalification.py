"""Requalification: does a partner still meet its tier and the program, and what follows.

Run on a schedule and whenever an input changes (a credit, a reversal, a certification).
Upgrades are immediate. A shortfall starts a grace period instead of punishing at once:

- tier shortfall (revenue or competencies below the current tier): grace, then demotion to the
  tier the partner does meet (back to active);
- program shortfall (no valid partner agreement): grace, then suspension; a partner suspended
  by requalification is reinstated as soon as it complies again, and expelled once suspended
  for `expel_after_suspended_days`.

Curing the shortfall before the deadline ends the grace with nothing lost. A suspension a
channel manager made by hand is never lifted or escalated automatically.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.lifecycle import Change, check_transition
from services.onboarding.domain.tiers import compute_tier, unmet
from shared.events.partners import PartnerStatus as S


class Action(StrEnum):
    NONE = "none"
    PROMOTE = "promote"
    START_GRACE = "start_grace"
    CLEAR_GRACE = "clear_grace"
    DEMOTE = "demote"
    SUSPEND = "suspend"
    REINSTATE = "reinstate"
    EXPEL = "expel"


@dataclass(frozen=True)
class Standing:
    """A partner's inputs to requalification, as of one moment."""

    status: S
    tier: str
    revenue: Decimal
    competencies: frozenset[str]
    agreement_valid_until: datetime | None  # None: no valid agreement
    grace_until: datetime | None = None
    suspended_at: datetime | None = None
    suspended_by_requalification: bool = False


@dataclass(frozen=True)
class Verdict:
    action: Action
    status: S
    tier: str
    grace_until: datetime | None
    reasons: tuple[str, ...]

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def program_shortfalls(standing: Standing, as_of: datetime) -> list[str]:
    if standing.agreement_valid_until is None:
        return ["no signed partner agreement"]
    if standing.agreement_valid_until <= as_of:
        return [f"partner agreement expired on {standing.agreement_valid_until.date().isoformat()}"]
    return []


def evaluate(config: OnboardingConfig, standing: Standing, as_of: datetime) -> Verdict:
    assessment = compute_tier(config, standing.revenue, standing.competencies)
    computed = assessment.tier
    current_rank = config.tier_rank(standing.tier)
    computed_rank = config.tier_rank(computed)
    program = program_shortfalls(standing, as_of)
    current_rule = next((t for t in config.tiers if t.name == standing.tier), None)
    tier_short = (
        unmet(current_rule, standing.revenue, standing.competencies)
        if current_rule is not None
        else [f"tier {standing.tier!r} no longer exists in program {config.version}"]
    )
    failures = program + tier_short

    def verdict(
        action: Action,
        status: S,
        tier: str,
        reasons: list[str] | tuple[str, ...],
        grace_until: datetime | None = None,
    ) -> Verdict:
        return Verdict(action, status, tier, grace_until, tuple(reasons))

    keep = verdict(Action.NONE, standing.status, standing.tier, [], standing.grace_until)

    if standing.status is S.ACTIVE:
        if failures:
            deadline = as_of + timedelta(days=config.grace_days)
            return verdict(
                Action.START_GRACE,
                S.GRACE,
                standing.tier,
                [*failures, f"grace until {deadline.date().isoformat()}"],
                deadline,
            )
        if computed_rank > current_rank:
            return verdict(Action.PROMOTE, S.ACTIVE, computed, assessment.reasons)
        return keep

    if standing.status is S.GRACE:
        if not failures:
            tier = computed if computed_rank > current_rank else standing.tier
            return verdict(
                Action.CLEAR_GRACE,
                S.ACTIVE,
                tier,
                [f"requirements of {tier} and the program are met again", *assessment.reasons],
            )
        if standing.grace_until is not None and as_of < standing.grace_until:
            return keep
        if program:
            return verdict(
                Action.SUSPEND,
                S.SUSPENDED,
                standing.tier,
                ["grace period ended", *program],
            )
        return verdict(
            Action.DEMOTE,
            S.ACTIVE,
            computed,
            ["grace period ended", *tier_short, *assessment.reasons],
        )

    if standing.status is S.SUSPENDED and standing.suspended_by_requalification:
        if not program:
            return verdict(
                Action.REINSTATE,
                S.ACTIVE,
                computed,
                ["program requirements are met again", *assessment.reasons],
            )
        since = standing.suspended_at
        if since is not None and as_of >= since + timedelta(days=config.expel_after_suspended_days):
            return verdict(
                Action.EXPEL,
                S.EXPELLED,
                standing.tier,
                [
                    f"suspended since {since.date().isoformat()}, over "
                    f"{config.expel_after_suspended_days} days",
                    *program,
                ],
            )
    return keep


# The change each verdict makes, as requalification reports it.
VERDICT_CHANGES = {
    Action.PROMOTE: Change.TIER_CHANGED,
    Action.START_GRACE: Change.GRACE_STARTED,
    Action.CLEAR_GRACE: Change.GRACE_CLEARED,
    Action.DEMOTE: Change.DEMOTED,
    Action.SUSPEND: Change.SUSPENDED,
    Action.REINSTATE: Change.REINSTATED,
    Action.EXPEL: Change.EXPELLED,
}


def verdict_change(
    config: OnboardingConfig,
    partner_id: str,
    standing: Standing,
    verdict: Verdict,
    as_of: datetime,
) -> tuple[Change, dict[str, object]]:
    """The change a verdict makes to a partner (a lifecycle-legal step): its name and the
    partner fields it sets."""
    if verdict.status is not standing.status:
        check_transition(partner_id, standing.status, verdict.status)
    fields: dict[str, object] = {
        "status": verdict.status.value,
        "tier": verdict.tier,
        "revenue": standing.revenue,
        "grace_until": verdict.grace_until,
        "policy_version": config.version,
    }
    if verdict.action is Action.SUSPEND:
        fields.update(suspended_at=as_of, suspended_by_requalification=True)
    elif verdict.action is Action.REINSTATE:
        fields.update(suspended_at=None, suspended_by_requalification=False)
    change = VERDICT_CHANGES[verdict.action]
    if change is Change.GRACE_CLEARED and verdict.tier != standing.tier:
        change = Change.TIER_CHANGED  # cured by growing past the tier: the promotion is the news
    return change, fields


def authorisation_change(
    competencies_before: frozenset[str],
    products_before: frozenset[str],
    competencies: frozenset[str],
    products: frozenset[str],
) -> Change | None:
    """Competencies re-derived: a change of authorised products is news for deals
    (`authorisations_changed`); competencies alone are an update; nothing moved, no change."""
    if products != products_before:
        return Change.AUTHORISATIONS_CHANGED
    if competencies != competencies_before:
        return Change.UPDATED
    return None
