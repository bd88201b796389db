"""Qualification: an application's weighted score, explained per criterion, and the outcome.

Every criterion scores 0-100 from what the applicant declared (cultural fit from the channel
manager's judgement); the total is the weighted mean. The figures are self-declared, so no score
approves anyone: at or above `approve_at` the scoring recommends approval, and a channel manager
approves (or rejects) it; in between a channel manager decides (the review queue); below
`reject_below` the application is rejected at once (declining costs the platform nothing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from services.onboarding.domain.config import Criterion, QualificationConfig
from shared.addresses import ascii_host
from shared.events.partners import PartnerType

HUNDRED = Decimal(100)
_ONE_DECIMAL = Decimal("0.1")
# A top-level domain is letters, or an internationalised one's A-label (xn--p1ai is .рф).
_DOMAIN = re.compile(
    r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,63}|xn--[a-z0-9-]{1,59})$"
)


class Outcome(StrEnum):
    APPROVE = "approve"
    REVIEW = "review"
    REJECT = "reject"


@dataclass(frozen=True)
class Application:
    """What an applicant declares (already validated for shape by the API)."""

    company_name: str
    domain: str
    partner_type: PartnerType
    regions: frozenset[str]
    products: frozenset[str]
    competencies_claimed: frozenset[str]
    industries: frozenset[str]
    segments: frozenset[str]
    annual_revenue: Decimal
    years_in_business: int
    certified_staff: int


@dataclass(frozen=True)
class CriterionScore:
    criterion: Criterion
    score: Decimal  # 0-100
    weight: Decimal
    explanation: str


@dataclass(frozen=True)
class Qualification:
    total: Decimal  # 0-100, one decimal
    outcome: Outcome
    criteria: tuple[CriterionScore, ...]
    explanation: str
    policy_version: str


def normalise_domain(raw: str) -> str:
    """`https://www.Example.com/about` -> `example.com`, `bücher.de` -> `xn--bcher-kva.de`;
    raises ValueError if not a domain."""
    text = raw.strip().lower()
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text)
    text = text.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    text = text.rsplit("@", 1)[-1].split(":", 1)[0].rstrip(".")
    text = text.removeprefix("www.")
    try:  # a name in another script by its A-labels (bücher.de was refused; found from outside)
        text = ascii_host(text)
    except ValueError:
        raise ValueError(f"{raw!r} is not a company domain (expected e.g. example.com)") from None
    if not _DOMAIN.match(text):
        raise ValueError(f"{raw!r} is not a company domain (expected e.g. example.com)")
    return text


def _clamp(value: Decimal) -> Decimal:
    return min(HUNDRED, max(Decimal(0), value))


def _share(part: int, whole: int) -> Decimal:
    return Decimal(part) / Decimal(whole) if whole else Decimal(0)


def _overlap(declared: frozenset[str], wanted: tuple[str, ...]) -> tuple[frozenset[str], Decimal]:
    """The declared items the program wants, and their share of all declared as a 0-100 score."""
    matched = declared & set(wanted)
    return matched, HUNDRED * _share(len(matched), len(declared))


def _towards(count: int, for_full_marks: int) -> Decimal:
    """A count as a 0-100 score, full marks from `for_full_marks` on."""
    return HUNDRED * min(Decimal(1), _share(count, for_full_marks))


def _fmt(value: Decimal) -> str:
    return str(value.quantize(_ONE_DECIMAL, rounding=ROUND_HALF_UP))


def _listing(items: frozenset[str]) -> str:
    return ", ".join(sorted(items)) or "none"


def _strategic_fit(config: QualificationConfig, app: Application) -> tuple[Decimal, str]:
    type_score = config.partner_type_scores[app.partner_type]
    strategic, product_score = _overlap(app.products, config.strategic_products)
    score = Decimal("0.6") * type_score + Decimal("0.4") * product_score
    return score, (
        f"{app.partner_type.value} scores {type_score} (60%); {len(strategic)} of "
        f"{len(app.products)} products strategic ({_listing(strategic)}) scores "
        f"{_fmt(product_score)} (40%)"
    )


def _icp_overlap(config: QualificationConfig, app: Application) -> tuple[Decimal, str]:
    industries, industry_score = _overlap(app.industries, config.icp_industries)
    segments, segment_score = _overlap(app.segments, config.icp_segments)
    score = Decimal("0.7") * industry_score + Decimal("0.3") * segment_score
    return score, (
        f"{len(industries)} of {len(app.industries)} industries in the ICP "
        f"({_listing(industries)}) scores {_fmt(industry_score)} (70%); {len(segments)} of "
        f"{len(app.segments)} segments ({_listing(segments)}) scores {_fmt(segment_score)} (30%)"
    )


def _technical_capability(config: QualificationConfig, app: Application) -> tuple[Decimal, str]:
    recognised = app.competencies_claimed & set(config.recognised_competencies)
    competency_score = _towards(len(recognised), config.competencies_for_full_score)
    staff_score = _towards(app.certified_staff, config.certified_staff_for_full_score)
    score = (competency_score + staff_score) / 2
    return score, (
        f"{len(recognised)} recognised competencies claimed ({_listing(recognised)}; "
        f"{config.competencies_for_full_score} for full marks) scores {_fmt(competency_score)}; "
        f"{app.certified_staff} certified staff ({config.certified_staff_for_full_score} for "
        f"full marks) scores {_fmt(staff_score)}; averaged"
    )


def _geographic_reach(config: QualificationConfig, app: Application) -> tuple[Decimal, str]:
    covered = app.regions & set(config.target_regions)
    score = _towards(len(covered), config.regions_for_full_score)
    return score, (
        f"{len(covered)} target regions covered ({_listing(covered)}; "
        f"{config.regions_for_full_score} for full marks)"
    )


def _financial_standing(config: QualificationConfig, app: Application) -> tuple[Decimal, str]:
    band = [b for b in config.revenue_bands if app.annual_revenue >= b.min_annual_revenue][-1]
    text = (
        f"annual revenue {app.annual_revenue} is in the band from {band.min_annual_revenue} "
        f"scoring {band.score}"
    )
    score = band.score
    if app.years_in_business < config.young_company_years:
        score = _clamp(score - config.young_company_penalty)
        text += (
            f"; {app.years_in_business} years in business (< {config.young_company_years}) "
            f"costs {config.young_company_penalty}"
        )
    return score, text


def qualify(
    config: QualificationConfig,
    app: Application,
    policy_version: str,
    cultural_fit: Decimal | None = None,
) -> Qualification:
    """Score an application. `cultural_fit` is the channel manager's 0-100 judgement, if any."""
    if cultural_fit is None:
        cultural = (
            config.cultural_fit_default,
            f"no manager judgement yet: neutral {config.cultural_fit_default}",
        )
    else:
        cultural = (_clamp(cultural_fit), f"channel manager judged {cultural_fit}")
    raw = {
        Criterion.STRATEGIC_FIT: _strategic_fit(config, app),
        Criterion.ICP_OVERLAP: _icp_overlap(config, app),
        Criterion.TECHNICAL_CAPABILITY: _technical_capability(config, app),
        Criterion.GEOGRAPHIC_REACH: _geographic_reach(config, app),
        Criterion.FINANCIAL_STANDING: _financial_standing(config, app),
        Criterion.CULTURAL_FIT: cultural,
    }
    weights = {c: config.weights.get(c, Decimal(0)) for c in Criterion}
    total_weight = sum(weights.values(), Decimal(0))
    criteria = tuple(
        CriterionScore(
            criterion,
            _clamp(score).quantize(_ONE_DECIMAL, rounding=ROUND_HALF_UP),
            weights[criterion],
            f"{why} -> {_fmt(_clamp(score))} x weight {weights[criterion]}",
        )
        for criterion, (score, why) in raw.items()
    )
    exact = sum((_clamp(raw[c][0]) * weights[c] for c in Criterion), Decimal(0)) / total_weight
    total = _clamp(exact).quantize(_ONE_DECIMAL, rounding=ROUND_HALF_UP)
    if total >= config.approve_at:
        outcome = Outcome.APPROVE
        why = (
            f"score {total} >= {config.approve_at}: recommended for approval "
            "(self-declared figures: a channel manager approves)"
        )
    elif total < config.reject_below:
        outcome = Outcome.REJECT
        why = f"score {total} < {config.reject_below}: rejected automatically"
    else:
        outcome = Outcome.REVIEW
        why = (
            f"score {total} between {config.reject_below} and {config.approve_at}: "
            "a channel manager decides"
        )
    return Qualification(total, outcome, criteria, why, policy_version)
