"""Onboarding's pure rules: scoring, program config, status machine, tiers, requalification."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.onboarding.domain.config import (
    CompetencyRule,
    Criterion,
    OnboardingConfig,
    QualificationConfig,
)
from services.onboarding.domain.lifecycle import (
    TRANSITIONS,
    IllegalTransition,
    check_transition,
)
from services.onboarding.domain.qualification import (
    Application,
    Outcome,
    normalise_domain,
    qualify,
)
from services.onboarding.domain.requalification import Action, Standing, evaluate
from services.onboarding.domain.tiers import (
    Certification,
    CertificationRole,
    authorised_products,
    compute_tier,
    derive_competencies,
)
from shared.events.partners import PartnerStatus as S
from shared.events.partners import PartnerType
from tests.support.onboarding import AGREEMENT, NOW, SMALL_PROGRAM, standing

CONFIG = OnboardingConfig()
Q = CONFIG.qualification


def application(**overrides: object) -> Application:
    values: dict[str, object] = {
        "company_name": "Contoso Consulting",
        "domain": "contoso.example",
        "partner_type": PartnerType.GSI,
        "regions": frozenset({"US", "DE", "GB"}),
        "products": frozenset({"data", "ai", "security"}),
        "competencies_claimed": frozenset({"data", "ai", "cloud"}),
        "industries": frozenset({"financial_services", "healthcare"}),
        "segments": frozenset({"enterprise"}),
        "annual_revenue": Decimal("25000000"),
        "years_in_business": 10,
        "certified_staff": 12,
    }
    values.update(overrides)
    return Application(**values)  # type: ignore[arg-type]


WEAK = {
    "partner_type": PartnerType.REFERRAL_AFFILIATE,
    "regions": frozenset({"XX"}),
    "products": frozenset({"widgets"}),
    "competencies_claimed": frozenset(),
    "industries": frozenset({"gaming"}),
    "segments": frozenset({"smb"}),
    "annual_revenue": Decimal("100000"),
    "years_in_business": 1,
    "certified_staff": 0,
}
MIDDLING = {
    "partner_type": PartnerType.VAR_RESELLER,
    "regions": frozenset({"US"}),
    "products": frozenset({"data", "widgets"}),
    "competencies_claimed": frozenset({"data"}),
    "industries": frozenset({"retail", "gaming"}),
    "segments": frozenset({"mid_market"}),
    "annual_revenue": Decimal("2000000"),
    "years_in_business": 5,
    "certified_staff": 3,
}


# ---- qualification


def test_strong_application_is_approved_with_an_explanation_per_criterion() -> None:
    result = qualify(Q, application(), CONFIG.version)
    scores = {c.criterion: c.score for c in result.criteria}
    assert scores == {
        Criterion.STRATEGIC_FIT: Decimal("94.0"),
        Criterion.ICP_OVERLAP: Decimal("100.0"),
        Criterion.TECHNICAL_CAPABILITY: Decimal("100.0"),
        Criterion.GEOGRAPHIC_REACH: Decimal("100.0"),
        Criterion.FINANCIAL_STANDING: Decimal("80"),
        Criterion.CULTURAL_FIT: Decimal("50"),
    }
    assert result.total == Decimal("90.5")
    assert result.outcome is Outcome.APPROVE
    assert result.policy_version == CONFIG.version
    explanations = {c.criterion: c.explanation for c in result.criteria}
    assert "gsi scores 90" in explanations[Criterion.STRATEGIC_FIT]
    assert "3 of 3 products strategic (ai, data, security)" in explanations[Criterion.STRATEGIC_FIT]
    assert "no manager judgement yet" in explanations[Criterion.CULTURAL_FIT]
    assert "90.5 >= 70" in result.explanation
    assert "recommended for approval" in result.explanation
    assert "a channel manager approves" in result.explanation


def test_weak_application_is_rejected() -> None:
    result = qualify(Q, application(**WEAK), CONFIG.version)
    assert result.total == Decimal("11.0")
    assert result.outcome is Outcome.REJECT
    financial = next(c for c in result.criteria if c.criterion is Criterion.FINANCIAL_STANDING)
    assert financial.score == 0
    assert "1 years in business (< 2) costs 20" in financial.explanation


def test_middling_application_goes_to_review_and_manager_input_moves_it() -> None:
    result = qualify(Q, application(**MIDDLING), CONFIG.version)
    assert result.total == Decimal("50.7")
    assert result.outcome is Outcome.REVIEW
    judged = qualify(Q, application(**MIDDLING), CONFIG.version, cultural_fit=Decimal(100))
    assert judged.total == Decimal("55.7")
    assert "channel manager judged 100" in judged.criteria[-1].explanation


@pytest.mark.parametrize(
    ("approve_at", "reject_below", "outcome"),
    [
        (Decimal("90.5"), Decimal(40), Outcome.APPROVE),  # exactly at the threshold
        (Decimal("90.6"), Decimal(40), Outcome.REVIEW),
        (Decimal(95), Decimal("90.5"), Outcome.REVIEW),  # exactly at the reject line stays
        (Decimal(95), Decimal("90.6"), Outcome.REJECT),
    ],
)
def test_thresholds_are_inclusive_for_approval_and_exclusive_for_rejection(
    approve_at: Decimal, reject_below: Decimal, outcome: Outcome
) -> None:
    config = QualificationConfig(approve_at=approve_at, reject_below=reject_below)
    assert qualify(config, application(), "v").outcome is outcome


def test_weights_are_configurable() -> None:
    only_culture = QualificationConfig(
        weights={c: Decimal(1 if c is Criterion.CULTURAL_FIT else 0) for c in Criterion}
    )
    result = qualify(only_culture, application(), "v", cultural_fit=Decimal(33))
    assert result.total == Decimal("33.0")


def test_no_products_or_industries_score_zero_not_divide_by_zero() -> None:
    result = qualify(
        Q, application(products=frozenset(), industries=frozenset(), segments=frozenset()), "v"
    )
    icp = next(c for c in result.criteria if c.criterion is Criterion.ICP_OVERLAP)
    assert icp.score == 0


applications = st.builds(
    Application,
    company_name=st.just("X"),
    domain=st.just("x.example"),
    partner_type=st.sampled_from(PartnerType),
    regions=st.frozensets(st.sampled_from(["US", "DE", "GB", "XX", "YY", "JP"])),
    products=st.frozensets(st.sampled_from(["data", "ai", "widgets", "cloud", "toys"])),
    competencies_claimed=st.frozensets(st.sampled_from(["data", "ai", "cloud", "knitting"])),
    industries=st.frozensets(st.sampled_from(["retail", "gaming", "healthcare"])),
    segments=st.frozensets(st.sampled_from(["enterprise", "smb"])),
    annual_revenue=st.decimals(min_value=0, max_value=10**9, places=2),
    years_in_business=st.integers(0, 200),
    certified_staff=st.integers(0, 10_000),
)
judgements = st.decimals(min_value=0, max_value=100, places=1)


@given(applications, judgements)
def test_score_is_a_bounded_weighted_mean_and_outcome_follows_thresholds(
    app: Application, cultural: Decimal
) -> None:
    result = qualify(Q, app, "v", cultural)
    assert Decimal(0) <= result.total <= Decimal(100)
    scores = [c.score for c in result.criteria]
    assert min(scores) - Decimal("0.1") <= result.total <= max(scores) + Decimal("0.1")
    assert {c.criterion for c in result.criteria} == set(Criterion)
    expected = (
        Outcome.APPROVE
        if result.total >= Q.approve_at
        else Outcome.REJECT
        if result.total < Q.reject_below
        else Outcome.REVIEW
    )
    assert result.outcome is expected


@given(applications, judgements, judgements)
def test_a_better_cultural_fit_never_lowers_the_score(
    app: Application, low: Decimal, high: Decimal
) -> None:
    low, high = sorted((low, high))
    assert qualify(Q, app, "v", low).total <= qualify(Q, app, "v", high).total


@pytest.mark.parametrize(
    ("raw", "domain"),
    [
        ("contoso.com", "contoso.com"),
        ("https://www.Contoso.com/about?x=1", "contoso.com"),
        ("HTTP://shop.contoso.co.uk.", "shop.contoso.co.uk"),
        ("  www.fabrikam.io  ", "fabrikam.io"),
        ("admin@contoso.com", "contoso.com"),
        # a name in another script by its A-labels, its top-level domain too (found from outside)
        ("https://www.Bücher.de/", "xn--bcher-kva.de"),
        ("пример.рф", "xn--e1afmkfd.xn--p1ai"),
        ("xn--e1afmkfd.xn--p1ai", "xn--e1afmkfd.xn--p1ai"),
    ],
)
def test_domains_are_normalised(raw: str, domain: str) -> None:
    assert normalise_domain(raw) == domain


@pytest.mark.parametrize(
    "raw", ["localhost", "not a domain", "contoso", "-bad-.com", "", "1.2.3.4", "xn--.de"]
)
def test_non_domains_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="is not a company domain"):
        normalise_domain(raw)


# ---- program configuration


def test_defaults_are_a_valid_versioned_program() -> None:
    assert CONFIG.version
    assert [t.name for t in CONFIG.tiers] == ["registered", "bronze", "silver", "gold", "platinum"]
    assert CONFIG.base_tier == "registered"
    assert CONFIG.tier_rank("gold") == 3
    assert CONFIG.tier_rank("retired-tier") == -1


def test_a_json_file_overrides_only_what_it_names() -> None:
    config = OnboardingConfig.model_validate_json(
        '{"version": "acme-7", "grace_days": 14, "qualification": {"approve_at": 80}}'
    )
    assert (config.version, config.grace_days, config.qualification.approve_at) == (
        "acme-7",
        14,
        Decimal(80),
    )
    assert config.qualification.reject_below == Decimal(40)
    assert config.tiers == CONFIG.tiers


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ('{"qualification": {"approve_at": 30, "reject_below": 50}}', "must not exceed"),
        ('{"grace_dayz": 3}', "Extra inputs are not permitted"),
        ('{"qualification": {"weights": {"charisma": 1}}}', "weights.charisma"),
        (
            '{"tiers": [{"name": "a", "min_revenue": 0}, {"name": "b", "min_revenue": 10},'
            ' {"name": "c", "min_revenue": 5}]}',
            "ascending min_revenue",
        ),
        ('{"tiers": [{"name": "a", "min_revenue": 5}]}', "must require nothing"),
        (
            '{"tiers": [{"name": "a", "min_revenue": 0}, {"name": "a", "min_revenue": 1}]}',
            "unique",
        ),
        (
            '{"tiers": [{"name": "a", "min_revenue": 0},'
            ' {"name": "b", "min_revenue": 1, "required_competencies": ["x"]}]}',
            "unknown competencies",
        ),
        ('{"gated_products": {"ai": "wizardry"}}', "unknown competencies"),
        ('{"checklist": ["profile_complete"]}', "agreement_item"),
        ('{"reporting_currency": "usd"}', "reporting_currency"),
    ],
)
def test_an_inconsistent_program_is_refused_with_the_reason(document: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OnboardingConfig.model_validate_json(document)


# ---- status machine

EXPECTED_EDGES = {
    (S.APPLIED, S.QUALIFIED),
    (S.APPLIED, S.REJECTED),
    (S.QUALIFIED, S.ONBOARDING),
    (S.QUALIFIED, S.EXPELLED),
    (S.ONBOARDING, S.ACTIVE),
    (S.ONBOARDING, S.EXPELLED),
    (S.ACTIVE, S.GRACE),
    (S.ACTIVE, S.SUSPENDED),
    (S.ACTIVE, S.EXPELLED),
    (S.GRACE, S.ACTIVE),
    (S.GRACE, S.SUSPENDED),
    (S.GRACE, S.EXPELLED),
    (S.SUSPENDED, S.ACTIVE),
    (S.SUSPENDED, S.EXPELLED),
    (S.EXPELLED, S.ONBOARDING),
}


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("target", list(S))
def test_every_transition_is_allowed_exactly_when_the_lifecycle_says(current: S, target: S) -> None:
    if (current, target) in EXPECTED_EDGES:
        check_transition("ptn_1", current, target)
        assert target in TRANSITIONS[current]
    else:
        with pytest.raises(IllegalTransition, match=f"partner ptn_1 .*{current.value}"):
            check_transition("ptn_1", current, target)


def test_an_illegal_transition_says_what_is_allowed() -> None:
    with pytest.raises(IllegalTransition) as error:
        check_transition("ptn_1", S.APPLIED, S.ACTIVE)
    assert str(error.value) == (
        "partner ptn_1 cannot go from applied to active; allowed next: qualified, rejected"
    )
    with pytest.raises(IllegalTransition, match="allowed next: none \\(final\\)"):
        check_transition("ptn_1", S.REJECTED, S.APPLIED)
    with pytest.raises(IllegalTransition, match="is already suspended"):
        check_transition("ptn_1", S.SUSPENDED, S.SUSPENDED)


# ---- certifications, competencies, tiers


def cert(
    person: str,
    role: CertificationRole,
    track: str = "data",
    issued: datetime = NOW - timedelta(days=30),
    expires: datetime = NOW + timedelta(days=30),
) -> Certification:
    return Certification(person, role, track, issued, expires)


SALES, TECH = CertificationRole.SALES, CertificationRole.TECHNICAL


def test_a_competency_needs_a_valid_sales_and_a_valid_technical_certification() -> None:
    pair = [cert("a@x.io", SALES), cert("b@x.io", TECH)]
    assert derive_competencies(CONFIG, pair, NOW) == {"data"}
    assert derive_competencies(CONFIG, pair[:1], NOW) == frozenset()
    # Valid from issue (inclusive) until expiry (exclusive).
    assert derive_competencies(CONFIG, pair, NOW + timedelta(days=30)) == frozenset()
    assert derive_competencies(CONFIG, pair, NOW - timedelta(days=30)) == {"data"}
    assert derive_competencies(CONFIG, pair, NOW - timedelta(days=31)) == frozenset()
    # Another track does not count.
    assert derive_competencies(CONFIG, [pair[0], cert("b@x.io", TECH, "ai")], NOW) == frozenset()


def test_competency_minimums_count_distinct_people() -> None:
    config = OnboardingConfig(
        competencies=(
            CompetencyRule(name="data", min_sales=1, min_technical=2),
            CompetencyRule(name="security"),
        )
    )
    same_person_twice = [
        cert("a@x.io", SALES),
        cert("b@x.io", TECH),
        cert("b@x.io", TECH, issued=NOW - timedelta(days=1)),
    ]
    assert derive_competencies(config, same_person_twice, NOW) == frozenset()
    assert derive_competencies(config, [*same_person_twice, cert("c@x.io", TECH)], NOW) == {"data"}


def test_a_competency_with_no_minimum_still_needs_one_certification() -> None:
    config = OnboardingConfig(
        competencies=(
            CompetencyRule(name="data", min_sales=0, min_technical=0),
            CompetencyRule(name="security"),
        )
    )
    assert derive_competencies(config, [], NOW) == frozenset()
    assert derive_competencies(config, [cert("a@x.io", TECH)], NOW) == {"data"}


@pytest.mark.parametrize(
    ("revenue", "competencies", "tier"),
    [
        ("0", set(), "registered"),
        ("49999.99", set(), "registered"),
        ("50000", set(), "bronze"),
        ("250000", set(), "bronze"),  # silver needs a competency
        ("250000", {"data"}, "silver"),
        ("999999.99", {"data", "ai"}, "silver"),
        ("1000000", {"data", "ai"}, "gold"),
        ("9000000", {"data", "ai", "cloud"}, "gold"),  # platinum requires security
        ("5000000", {"data", "ai", "security"}, "platinum"),
        ("10", {"data", "ai", "security"}, "registered"),  # competencies without revenue
    ],
)
def test_tier_needs_revenue_and_competencies(
    revenue: str, competencies: set[str], tier: str
) -> None:
    assert compute_tier(CONFIG, Decimal(revenue), frozenset(competencies), None).tier == tier


def test_tier_assessment_explains_what_the_next_tier_lacks() -> None:
    assessment = compute_tier(CONFIG, Decimal("300000"), frozenset(), None)
    assert assessment.tier == "bronze"
    assert assessment.reasons[-1] == ("not silver: 0 competencies held (none), silver needs 1")
    assessment = compute_tier(CONFIG, Decimal("6000000"), frozenset({"data", "ai", "cloud"}), None)
    assert assessment.reasons[-1] == "not platinum: platinum requires competency security"


@given(
    st.decimals(min_value=0, max_value=10**8, places=2),
    st.decimals(min_value=0, max_value=10**8, places=2),
    st.frozensets(st.sampled_from(["data", "ai", "security", "cloud"])),
    st.frozensets(st.sampled_from(["data", "ai", "security", "cloud"])),
)
def test_more_revenue_or_more_competencies_never_lowers_the_tier(
    r1: Decimal, r2: Decimal, c1: frozenset[str], c2: frozenset[str]
) -> None:
    low = compute_tier(CONFIG, min(r1, r2), c1, None).tier
    high = compute_tier(CONFIG, max(r1, r2), c1 | c2, None).tier
    assert CONFIG.tier_rank(low) <= CONFIG.tier_rank(high)


def test_gated_products_need_their_competency() -> None:
    config = OnboardingConfig(gated_products={"ai": "ai"})
    assert authorised_products(config, ["data", "ai"], frozenset()) == {"data"}
    assert authorised_products(config, ["data", "ai"], frozenset({"ai"})) == {"data", "ai"}
    assert authorised_products(CONFIG, ["data", "ai"], frozenset()) == {"data", "ai"}


# ---- requalification

# The small program, with suspended partners expelled after 30 days.
SMALL = OnboardingConfig.model_validate(SMALL_PROGRAM | {"expel_after_suspended_days": 30})


def test_a_compliant_partner_is_left_alone() -> None:
    verdict = evaluate(SMALL, standing(), NOW)
    assert (verdict.action, verdict.status, verdict.tier) == (Action.NONE, S.ACTIVE, "silver")


def test_growth_promotes_at_once() -> None:
    verdict = evaluate(SMALL, standing(revenue=Decimal(5000)), NOW)
    assert (verdict.action, verdict.status, verdict.tier) == (Action.PROMOTE, S.ACTIVE, "gold")
    assert "gold: attributed revenue 5000 >= 5000" in verdict.reason


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"revenue": Decimal("999.99")}, "attributed revenue 999.99 is below the silver minimum"),
        ({"competencies": frozenset()}, "0 competencies held (none), silver needs 1"),
        ({"agreement_valid_until": NOW}, "partner agreement expired on 2026-11-23"),
        ({"agreement_valid_until": None}, "no signed partner agreement"),
        ({"tier": "diamond"}, "tier 'diamond' no longer exists"),
    ],
)
def test_a_shortfall_starts_a_grace_period_first(overrides: dict[str, object], why: str) -> None:
    verdict = evaluate(SMALL, standing(**overrides), NOW)
    assert verdict.action is Action.START_GRACE
    assert verdict.status is S.GRACE
    assert verdict.tier == standing(**overrides).tier  # nothing lost yet
    assert verdict.grace_until == NOW + timedelta(days=10)
    assert why in verdict.reason
    assert "grace until 2026-12-03" in verdict.reason


def test_grace_holds_until_the_deadline() -> None:
    grace = standing(status=S.GRACE, revenue=Decimal(10), grace_until=NOW + timedelta(days=1))
    verdict = evaluate(SMALL, grace, NOW)
    assert (verdict.action, verdict.status, verdict.grace_until) == (
        Action.NONE,
        S.GRACE,
        NOW + timedelta(days=1),
    )


def test_tier_shortfall_past_the_deadline_demotes_to_what_is_met() -> None:
    grace = standing(status=S.GRACE, revenue=Decimal(10), grace_until=NOW)
    verdict = evaluate(SMALL, grace, NOW)
    assert (verdict.action, verdict.status, verdict.tier, verdict.grace_until) == (
        Action.DEMOTE,
        S.ACTIVE,
        "registered",
        None,
    )
    assert verdict.reasons[0] == "grace period ended"


def test_program_shortfall_past_the_deadline_suspends() -> None:
    grace = standing(status=S.GRACE, agreement_valid_until=NOW, grace_until=NOW)
    verdict = evaluate(SMALL, grace, NOW + timedelta(seconds=1))
    assert (verdict.action, verdict.status, verdict.tier) == (Action.SUSPEND, S.SUSPENDED, "silver")


def test_curing_during_grace_restores_active_and_may_promote() -> None:
    cured = evaluate(SMALL, standing(status=S.GRACE, grace_until=NOW + timedelta(days=3)), NOW)
    assert (cured.action, cured.status, cured.tier, cured.grace_until) == (
        Action.CLEAR_GRACE,
        S.ACTIVE,
        "silver",
        None,
    )
    grown = evaluate(SMALL, standing(status=S.GRACE, revenue=Decimal(9000), grace_until=NOW), NOW)
    assert (grown.action, grown.tier) == (Action.CLEAR_GRACE, "gold")


def test_a_requalification_suspension_lifts_when_cured_and_ends_in_expulsion_otherwise() -> None:
    suspended = standing(
        status=S.SUSPENDED,
        agreement_valid_until=None,
        suspended_at=NOW - timedelta(days=29),
        suspended_by_requalification=True,
    )
    assert evaluate(SMALL, suspended, NOW).action is Action.NONE
    expelled = evaluate(SMALL, suspended, NOW + timedelta(days=1))
    assert (expelled.action, expelled.status) == (Action.EXPEL, S.EXPELLED)
    assert "over 30 days" in expelled.reason
    signed = Standing(**{**suspended.__dict__, "agreement_valid_until": AGREEMENT})
    reinstated = evaluate(SMALL, signed, NOW)
    assert (reinstated.action, reinstated.status, reinstated.tier) == (
        Action.REINSTATE,
        S.ACTIVE,
        "silver",
    )


def test_a_manual_suspension_is_never_lifted_or_escalated_automatically() -> None:
    manual = standing(
        status=S.SUSPENDED, suspended_at=NOW - timedelta(days=400), agreement_valid_until=None
    )
    assert evaluate(SMALL, manual, NOW).action is Action.NONE
    assert evaluate(SMALL, standing(status=S.SUSPENDED), NOW).action is Action.NONE


@pytest.mark.parametrize("status", [S.APPLIED, S.QUALIFIED, S.ONBOARDING, S.REJECTED, S.EXPELLED])
def test_partners_outside_the_program_are_not_requalified(status: S) -> None:
    assert evaluate(SMALL, standing(status=status, revenue=Decimal(0)), NOW).action is Action.NONE


@given(
    st.sampled_from([S.ACTIVE, S.GRACE, S.SUSPENDED]),
    st.sampled_from(["registered", "silver", "gold"]),
    st.decimals(min_value=0, max_value=20000, places=2),
    st.frozensets(st.sampled_from(["data", "ai"])),
    st.booleans(),
    st.integers(-20, 20),
    st.booleans(),
)
def test_every_verdict_is_a_legal_lifecycle_step(
    status: S,
    tier: str,
    revenue: Decimal,
    competencies: frozenset[str],
    agreement: bool,
    deadline_days: int,
    automatic: bool,
) -> None:
    current = standing(
        status=status,
        tier=tier,
        revenue=revenue,
        competencies=competencies,
        agreement_valid_until=AGREEMENT if agreement else None,
        grace_until=NOW + timedelta(days=deadline_days) if status is S.GRACE else None,
        suspended_at=NOW + timedelta(days=deadline_days) if status is S.SUSPENDED else None,
        suspended_by_requalification=automatic,
    )
    verdict = evaluate(SMALL, current, NOW)
    if verdict.status is not status:
        check_transition("ptn", status, verdict.status)
    if verdict.action is Action.DEMOTE:
        assert SMALL.tier_rank(verdict.tier) < SMALL.tier_rank(tier)
    if verdict.action is Action.PROMOTE:
        assert SMALL.tier_rank(verdict.tier) > SMALL.tier_rank(tier)
    if verdict.status is S.GRACE:
        assert verdict.grace_until is not None
    if verdict.action is not Action.NONE:
        assert verdict.reasons


def test_the_readme_documents_the_defaults_exactly() -> None:
    readme = (Path(__file__).parents[2] / "services" / "onboarding" / "README.md").read_text()
    documented = readme.split("```json\n", 1)[1].split("```", 1)[0]
    assert OnboardingConfig.model_validate_json(documented) == OnboardingConfig()
