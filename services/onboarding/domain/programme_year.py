"""The programme year: each partner is reviewed once a year against its tier's bar and the
programme minimum, told 90 and 30 days ahead, and may appeal the decision (pure rules).

- Review date: the anniversary of the partner's activation, or a fixed date every year
  (`programme_year.review_basis`), the first one after the last review (or the activation).
- Notices: `notice_days` before the review, each once; a late run sends only the most urgent.
- At the review: the programme minimum (attributed revenue, valid certifications, health,
  a valid agreement) and the current tier's bar. Both met: requalified. Only the tier's bar
  missed: demoted to the tier met. The minimum missed: on probation until `probation_days`
  later, with a plan naming each target and where the partner stands (a tier shortfall also
  demotes). Already suspended and missing the minimum: expelled.
- At the probation's deadline: the plan met, requalified; unmet, expelled.
- An appeal may be filed within `appeal_days` of a decision that demoted, put on probation
  or expelled; a channel manager upholds (the decision is reversed) or rejects it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from services.onboarding.domain.config import OnboardingConfig, ProgrammeYear, ReviewBasis
from services.onboarding.domain.tiers import compute_tier, unmet
from shared.errors import Conflict
from shared.events.partners import PartnerStatus as S
from shared.events.programme import RequalificationOutcome as Outcome


def _anniversary(start: date, years: int) -> date:
    try:
        return start.replace(year=start.year + years)
    except ValueError:  # 29 February: the 28th in a common year
        return start.replace(year=start.year + years, day=28)


def next_review(year: ProgrammeYear, activated_on: date, last_review: date | None) -> date:
    """The partner's next annual review: the first review date after the last review and its
    activation (a partner activated again starts a new programme year)."""
    after = max(last_review, activated_on) if last_review is not None else activated_on
    if year.review_basis is ReviewBasis.ANNIVERSARY:
        years = 1
        while (candidate := _anniversary(activated_on, years)) <= after:
            years += 1
        return candidate
    month, day = year.fixed_month_day
    candidate = date(after.year, month, day)
    return candidate if candidate > after else date(after.year + 1, month, day)


def notice_due(
    notice_days: Collection[int], review_on: date, today: date, sent: Collection[int]
) -> int | None:
    """The notice to send today (its days before the review), or None: the most urgent window
    reached and not sent; an earlier window missed is not sent late."""
    left = (review_on - today).days
    if left < 0:
        return None
    reached = [d for d in notice_days if left <= d]
    if not reached:
        return None
    urgent = min(reached)
    return None if urgent in sent or any(d < urgent for d in sent) else urgent


@dataclass(frozen=True)
class Standing:
    """What the review looks at, as of the review."""

    status: S
    tier: str
    partner_type: str
    revenue: Decimal
    competencies: frozenset[str]
    valid_certifications: int
    health: Decimal | None  # attribution's newest score; None: never scored
    agreement_valid_until: datetime | None


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    status: S
    tier: str
    reasons: tuple[str, ...]
    plan: tuple[str, ...] = ()
    probation_until: date | None = None


def programme_shortfalls(year: ProgrammeYear, standing: Standing, as_of: datetime) -> list[str]:
    """What the partner lacks of the programme minimum, each with its target and where the
    partner stands (the plan of a probation)."""
    minimum = year.minimum
    missing = []
    if standing.revenue < minimum.min_revenue:
        missing.append(
            f"attributed revenue of at least {minimum.min_revenue} (now {standing.revenue})"
        )
    if standing.valid_certifications < minimum.min_certifications:
        missing.append(
            f"at least {minimum.min_certifications} valid certifications "
            f"(now {standing.valid_certifications})"
        )
    if minimum.min_health is not None and (
        standing.health is None or standing.health < minimum.min_health
    ):
        now = "not scored yet" if standing.health is None else f"now {standing.health}"
        missing.append(f"a health score of at least {minimum.min_health} ({now})")
    if minimum.agreement_required and (
        standing.agreement_valid_until is None or standing.agreement_valid_until <= as_of
    ):
        missing.append("a signed partner agreement valid past the review")
    return missing


def review(
    config: OnboardingConfig, standing: Standing, as_of: datetime, *, probation_ends: bool
) -> Decision:
    """The decision at an annual review, or (`probation_ends`) at a probation's deadline."""
    year = config.programme_year
    shortfalls = programme_shortfalls(year, standing, as_of)
    rule = config.tier_rule(standing.tier, standing.partner_type)
    tier_short = (
        unmet(rule, standing.revenue, standing.competencies)
        if rule is not None
        else [f"tier {standing.tier!r} no longer exists in program {config.version}"]
    )
    met_tier = compute_tier(
        config, standing.revenue, standing.competencies, standing.partner_type
    ).tier
    tier = met_tier if tier_short else standing.tier
    if shortfalls and (probation_ends or standing.status is S.SUSPENDED):
        why = (
            "the probation's plan was not met by its deadline"
            if probation_ends
            else ("suspended at the review and below the programme minimum")
        )
        return Decision(
            Outcome.EXPELLED, S.EXPELLED, standing.tier, (why, *shortfalls, *tier_short)
        )
    if shortfalls:
        until = as_of.date() + timedelta(days=year.probation_days)
        return Decision(
            Outcome.PROBATION,
            standing.status,
            tier,
            ("below the programme minimum", *shortfalls, *tier_short),
            plan=tuple(shortfalls),
            probation_until=until,
        )
    if tier_short:
        return Decision(
            Outcome.DEMOTED, standing.status, tier, (f"below the {standing.tier} bar", *tier_short)
        )
    met = "the probation's plan is met" if probation_ends else "the programme minimum is met"
    return Decision(
        Outcome.REQUALIFIED, standing.status, standing.tier, (met, f"the {tier} bar is met")
    )


APPEALABLE = frozenset({Outcome.DEMOTED, Outcome.PROBATION, Outcome.EXPELLED})


def check_appealable(
    outcome: Outcome, appeal_until: datetime, reversed_: bool, appealed: bool, at: datetime
) -> None:
    if outcome not in APPEALABLE:
        raise Conflict(f"a {outcome.value} decision cannot be appealed")
    if reversed_ or appealed:
        raise Conflict("this decision has already been appealed")
    if at > appeal_until:
        raise Conflict(f"the appeal window closed on {appeal_until.date().isoformat()}")
