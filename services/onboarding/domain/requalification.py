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
from services.onboarding.domain.tiers import TierAssessment, compute_tier, unmet
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
    partner_type: str | None = None  # its tier bars (`type_tiers`); None: the program's


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


@dataclass(frozen=True)
class _Findings:
    """What a partner's standing meets and misses, as of one moment."""

    assessment: TierAssessment  # the tier its revenue and competencies earn, and why
    grown: bool  # that tier is above its current one
    program: list[str]  # program shortfalls (the agreement)
    tier_short: list[str]  # what its current tier needs and it lacks

    @property
    def failures(self) -> list[str]:
        return self.program + self.tier_short


def _verdict(
    action: Action,
    status: S,
    tier: str,
    reasons: list[str] | tuple[str, ...],
    grace_until: datetime | None = None,
) -> Verdict:
    return Verdict(action, status, tier, grace_until, tuple(reasons))


def evaluate(config: OnboardingConfig, standing: Standing, as_of: datetime) -> Verdict:
    assessment = compute_tier(
        config, standing.revenue, standing.competencies, standing.partner_type
    )
    current_rule = config.tier_rule(standing.tier, standing.partner_type)
    findings = _Findings(
        assessment=assessment,
        grown=config.tier_rank(assessment.tier) > config.tier_rank(standing.tier),
        program=program_shortfalls(standing, as_of),
        tier_short=(
            unmet(current_rule, standing.revenue, standing.competencies)
            if current_rule is not None
            else [f"tier {standing.tier!r} no longer exists in program {config.version}"]
        ),
    )
    verdict: Verdict | None = None
    if standing.status is S.ACTIVE:
        verdict = _when_active(config, standing, findings, as_of)
    elif standing.status is S.GRACE:
        verdict = _when_in_grace(standing, findings, as_of)
    elif standing.status is S.SUSPENDED and standing.suspended_by_requalification:
        verdict = _when_suspended_by_requalification(config, standing, findings, as_of)
    if verdict is None:  # nothing changes
        return _verdict(Action.NONE, standing.status, standing.tier, [], standing.grace_until)
    return verdict


def _when_active(
    config: OnboardingConfig, standing: Standing, findings: _Findings, as_of: datetime
) -> Verdict | None:
    """A shortfall starts a grace period (the tier kept); growth promotes at once."""
    if findings.failures:
        deadline = as_of + timedelta(days=config.grace_days)
        return _verdict(
            Action.START_GRACE,
            S.GRACE,
            standing.tier,
            [*findings.failures, f"grace until {deadline.date().isoformat()}"],
            deadline,
        )
    if findings.grown:
        return _verdict(
            Action.PROMOTE, S.ACTIVE, findings.assessment.tier, findings.assessment.reasons
        )
    return None


def _when_in_grace(standing: Standing, findings: _Findings, as_of: datetime) -> Verdict | None:
    """Cured: active again, nothing lost (promoted if it grew). Past the deadline: a program
    shortfall suspends, a tier shortfall demotes to the tier met."""
    if not findings.failures:
        tier = findings.assessment.tier if findings.grown else standing.tier
        return _verdict(
            Action.CLEAR_GRACE,
            S.ACTIVE,
            tier,
            [f"requirements of {tier} and the program are met again", *findings.assessment.reasons],
        )
    if standing.grace_until is not None and as_of < standing.grace_until:
        return None
    if findings.program:
        return _verdict(
            Action.SUSPEND, S.SUSPENDED, standing.tier, ["grace period ended", *findings.program]
        )
    return _verdict(
        Action.DEMOTE,
        S.ACTIVE,
        findings.assessment.tier,
        ["grace period ended", *findings.tier_short, *findings.assessment.reasons],
    )


def _when_suspended_by_requalification(
    config: OnboardingConfig, standing: Standing, findings: _Findings, as_of: datetime
) -> Verdict | None:
    """Complying again reinstates at once; suspended too long, the partner is expelled."""
    if not findings.program:
        return _verdict(
            Action.REINSTATE,
            S.ACTIVE,
            findings.assessment.tier,
            ["program requirements are met again", *findings.assessment.reasons],
        )
    since = standing.suspended_at
    if since is not None and as_of >= since + timedelta(days=config.expel_after_suspended_days):
        return _verdict(
            Action.EXPEL,
            S.EXPELLED,
            standing.tier,
            [
                f"suspended since {since.date().isoformat()}, over "
                f"{config.expel_after_suspended_days} days",
                *findings.program,
            ],
        )
    return None


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
