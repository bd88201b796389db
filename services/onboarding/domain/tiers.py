"""Certifications -> competencies -> tier and product authorisations (pure, as of a moment).

A certification counts while `issued_at <= as_of < expires_at`. A competency is held while at
least `min_sales` distinct people hold a valid sales certification and `min_technical` a
valid technical one on its track. A partner's tier is the highest tier whose revenue
threshold AND competency requirements it meets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from services.onboarding.domain.config import OnboardingConfig, TierRule
from services.onboarding.domain.programme import CertificationRole as CertificationRole
from shared.errors import Unprocessable


@dataclass(frozen=True)
class Certification:
    person: str  # a stable person key (their e-mail, lower-cased)
    role: CertificationRole
    track: str  # the competency it counts towards
    issued_at: datetime
    expires_at: datetime

    def valid_at(self, as_of: datetime) -> bool:
        return self.issued_at <= as_of < self.expires_at


def certification_track(config: OnboardingConfig, track: str) -> str:
    """`track` as one of the program's competencies (422 naming them otherwise)."""
    known = {c.name for c in config.competencies}
    if track not in known:
        raise Unprocessable(
            f"unknown certification track {track!r}; tracks are {', '.join(sorted(known))}"
        )
    return track


@dataclass(frozen=True)
class TierAssessment:
    tier: str
    reasons: tuple[str, ...]  # why this tier (and what the next one up lacks)


def derive_competencies(
    config: OnboardingConfig, certifications: Iterable[Certification], as_of: datetime
) -> frozenset[str]:
    valid = [c for c in certifications if c.valid_at(as_of)]
    held = set()
    for rule in config.competencies:
        sales = {
            c.person for c in valid if c.track == rule.name and c.role is CertificationRole.SALES
        }
        technical = {
            c.person
            for c in valid
            if c.track == rule.name and c.role is CertificationRole.TECHNICAL
        }
        # At least one valid certification on the track, whatever the minimums say.
        if (
            (sales or technical)
            and len(sales) >= rule.min_sales
            and len(technical) >= rule.min_technical
        ):
            held.add(rule.name)
    return frozenset(held)


def unmet(rule: TierRule, revenue: Decimal, competencies: frozenset[str]) -> list[str]:
    """What keeps a partner out of `rule`'s tier (empty: it qualifies)."""
    missing: list[str] = []
    if revenue < rule.min_revenue:
        missing.append(
            f"attributed revenue {revenue} is below the {rule.name} minimum {rule.min_revenue}"
        )
    if len(competencies) < rule.min_competencies:
        missing.append(
            f"{len(competencies)} competencies held ({', '.join(sorted(competencies)) or 'none'}), "
            f"{rule.name} needs {rule.min_competencies}"
        )
    lacking = sorted(set(rule.required_competencies) - competencies)
    if lacking:
        missing.append(f"{rule.name} requires competency {', '.join(lacking)}")
    return missing


def compute_tier(
    config: OnboardingConfig,
    revenue: Decimal,
    competencies: frozenset[str],
    partner_type: str | None,
) -> TierAssessment:
    """The highest tier whose every requirement is met (tiers are cumulative: each is checked
    on its own, so a missing competency caps the tier even with ample revenue), on the bars of
    the partner's type (no default: found in review, activation left it out and met the
    default ladder's bars, a type with its own tiers activating a tier too high or too low)."""
    ladder = config.tiers_for(partner_type)
    reached = ladder[0]
    reasons = [f"{reached.name} requires nothing"]
    for rule in ladder[1:]:
        missing = unmet(rule, revenue, competencies)
        if missing:
            reasons.append(f"not {rule.name}: " + "; ".join(missing))
            break
        reached = rule
        reasons = [
            f"{rule.name}: attributed revenue {revenue} >= {rule.min_revenue} and "
            f"{len(competencies)} competencies ({', '.join(sorted(competencies)) or 'none'}) "
            "meet its requirements"
        ]
    return TierAssessment(reached.name, tuple(reasons))


def authorised_products(
    config: OnboardingConfig, applied_for: Iterable[str], competencies: frozenset[str]
) -> frozenset[str]:
    """Products the partner may register deals for: what it was admitted for, minus gated
    products whose competency it does not hold."""
    return frozenset(
        p
        for p in applied_for
        if p not in config.gated_products or config.gated_products[p] in competencies
    )


def revenue_in_window(
    config: OnboardingConfig, days: Mapping[date, Decimal], as_of: datetime
) -> Decimal:
    """Attributed revenue as of a moment: the net per close date summed over the trailing
    window (`revenue_window_days`) ending `as_of` (0 when no credit is in it)."""
    until = as_of.date()
    since = until - timedelta(days=config.revenue_window_days)
    return sum((net for day, net in days.items() if since < day <= until), Decimal(0))


def not_before_departure(as_of: datetime, departed: datetime | None) -> datetime:
    """The moment to evaluate partners as of, given the latest departure of a certified person
    of theirs. A departure committed while this run waited for the partners' locks can carry a
    later clock than the run's own: evaluated as of before it, the departed person would count
    again, and nothing evaluates the partner after the departure's own run did. So a run is
    never as of a moment before a departure already committed."""
    return departed if departed is not None and departed > as_of else as_of
