"""What a partner still lacks for the tier above its own, and the dates that matter (pure).

The same rules as `tiers.compute_tier` and requalification, read forwards for the partner:
- the next tier's revenue minimum against the attributed revenue in the trailing window, and
  the day the oldest revenue in the window leaves it (revenue is not kept for ever);
- its competency count and required competencies, each competency not held with the
  certifications it still needs (distinct people, sales and technical, as the competency rules
  count them), closest first;
- the competencies held and the day each lapses when certifications expire unrenewed;
- in grace: what the current tier lacks and the deadline to cure it before demotion;
- the partner agreement's end (a programme requirement: past it, grace then suspension).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from services.onboarding.domain.config import CompetencyRule, OnboardingConfig, TierRule
from services.onboarding.domain.programme import CertificationRole
from services.onboarding.domain.tiers import Certification, derive_competencies, unmet


@dataclass(frozen=True)
class CompetencyGap:
    competency: str
    required: bool  # the next tier names it, not only counts it
    sales_held: int
    sales_needed: int
    technical_held: int
    technical_needed: int

    @property
    def missing(self) -> int:
        return max(0, self.sales_needed - self.sales_held) + max(
            0, self.technical_needed - self.technical_held
        )

    @property
    def reason(self) -> str:
        parts = []
        if self.sales_held < self.sales_needed:
            parts.append(f"{self.sales_needed - self.sales_held} more sales")
        if self.technical_held < self.technical_needed:
            parts.append(f"{self.technical_needed - self.technical_held} more technical")
        wanted = " and ".join(parts) or "one more"
        return (
            f"{self.competency}: {wanted} certified {'person' if self.missing == 1 else 'people'}"
        )


@dataclass(frozen=True)
class Lapse:
    competency: str
    on: datetime  # the first moment it is no longer held, nothing renewed


@dataclass(frozen=True)
class RevenueLeaving:
    on: date  # the first day this revenue no longer counts
    amount: Decimal


@dataclass(frozen=True)
class NextTier:
    tier: str
    next_tier: str | None  # None: the top of the ladder
    revenue: Decimal
    revenue_needed: Decimal | None
    revenue_short: Decimal  # 0 when met (or at the top)
    competencies: tuple[str, ...]
    competencies_needed: int
    gaps: tuple[CompetencyGap, ...]  # competencies not held, closest first
    unmet: tuple[str, ...]  # the next tier's requirements in words (empty: met)
    keep_unmet: tuple[str, ...]  # what the current tier lacks (a grace period is running)
    grace_until: datetime | None
    agreement_valid_until: datetime | None
    lapses: tuple[Lapse, ...]  # held competencies and when they lapse, soonest first
    revenue_leaving: RevenueLeaving | None  # the next revenue to leave the window


def _people(valid: list[Certification], track: str, role: CertificationRole) -> int:
    return len({c.person for c in valid if c.track == track and c.role is role})


def _gap(
    rule: CompetencyRule, valid: list[Certification], required: frozenset[str]
) -> CompetencyGap:
    # A competency needs at least one certification whatever its minimums (tiers.py).
    sales_needed, technical_needed = rule.min_sales, rule.min_technical
    if sales_needed == 0 and technical_needed == 0:
        sales_needed = 1
    return CompetencyGap(
        competency=rule.name,
        required=rule.name in required,
        sales_held=_people(valid, rule.name, CertificationRole.SALES),
        sales_needed=sales_needed,
        technical_held=_people(valid, rule.name, CertificationRole.TECHNICAL),
        technical_needed=technical_needed,
    )


def competency_gaps(
    config: OnboardingConfig,
    certifications: Iterable[Certification],
    held: frozenset[str],
    required: Iterable[str],
    as_of: datetime,
) -> list[CompetencyGap]:
    """Each competency not held with what it still needs: required ones first, then the
    closest (fewest certifications missing), then by name."""
    valid = [c for c in certifications if c.valid_at(as_of)]
    named = frozenset(required)
    gaps = [_gap(rule, valid, named) for rule in config.competencies if rule.name not in held]
    return sorted(gaps, key=lambda g: (not g.required, g.missing, g.competency))


def lapses(
    config: OnboardingConfig,
    certifications: Iterable[Certification],
    held: frozenset[str],
    as_of: datetime,
) -> list[Lapse]:
    """When each held competency stops being held if nothing is renewed: the first expiry of a
    valid certification on its track after which the competency's rule fails."""
    certs = [c for c in certifications if c.valid_at(as_of)]
    found = []
    for competency in sorted(held):
        ends = sorted({c.expires_at for c in certs if c.track == competency})
        for end in ends:
            if competency not in derive_competencies(config, certs, end):
                found.append(Lapse(competency, end))
                break
    return sorted(found, key=lambda lapse: (lapse.on, lapse.competency))


def revenue_leaving(
    config: OnboardingConfig, days: Mapping[date, Decimal], as_of: datetime
) -> RevenueLeaving | None:
    """The oldest close date still in the trailing window: the day it leaves and its net."""
    since = as_of.date() - timedelta(days=config.revenue_window_days)
    inside = sorted(d for d, net in days.items() if since < d <= as_of.date() and net != 0)
    if not inside:
        return None
    oldest = inside[0]
    return RevenueLeaving(oldest + timedelta(days=config.revenue_window_days), days[oldest])


def _rule_above(ladder: tuple[TierRule, ...], tier: str) -> TierRule | None:
    rank = next((n for n, rule in enumerate(ladder) if rule.name == tier), -1)
    return ladder[rank + 1] if rank + 1 < len(ladder) else None


def _gaps_for(
    config: OnboardingConfig,
    above: TierRule | None,
    certs: list[Certification],
    held: frozenset[str],
    as_of: datetime,
) -> tuple[CompetencyGap, ...]:
    """The competencies worth naming for the next tier: every one not held when the count
    falls short, else only the required ones still missing."""
    if above is None:
        return ()
    gaps = competency_gaps(config, certs, held, above.required_competencies, as_of)
    if len(held) >= above.min_competencies:
        gaps = [g for g in gaps if g.required]
    return tuple(gaps)


def next_tier(
    config: OnboardingConfig,
    *,
    tier: str,
    partner_type: str | None,
    revenue_days: Mapping[date, Decimal],
    certifications: Iterable[Certification],
    grace_until: datetime | None,
    agreement_valid_until: datetime | None,
    as_of: datetime,
) -> NextTier:
    certs = list(certifications)
    since = as_of.date() - timedelta(days=config.revenue_window_days)
    revenue = sum((net for d, net in revenue_days.items() if since < d <= as_of.date()), Decimal(0))
    held = derive_competencies(config, certs, as_of)
    ladder = config.tiers_for(partner_type)  # the bars of the partner's type
    above = _rule_above(ladder, tier)
    current = next((t for t in ladder if t.name == tier), None)
    in_grace = grace_until is not None and grace_until > as_of
    return NextTier(
        tier=tier,
        next_tier=above.name if above else None,
        revenue=revenue,
        revenue_needed=above.min_revenue if above else None,
        revenue_short=max(Decimal(0), above.min_revenue - revenue) if above else Decimal(0),
        competencies=tuple(sorted(held)),
        competencies_needed=above.min_competencies if above else 0,
        gaps=_gaps_for(config, above, certs, held, as_of),
        unmet=tuple(unmet(above, revenue, held)) if above else (),
        keep_unmet=tuple(unmet(current, revenue, held)) if current and in_grace else (),
        grace_until=grace_until if in_grace else None,
        agreement_valid_until=agreement_valid_until,
        lapses=tuple(lapses(config, certs, held, as_of)),
        revenue_leaving=revenue_leaving(config, revenue_days, as_of),
    )
