"""The programme year's pure rules: review dates, notices, the review's outcomes, appeals,
and tier bars per partner type."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.lifecycle import (
    IllegalTransition,
    appeal_restores,
    check_appeal_reversal,
    check_transition,
)
from services.onboarding.domain.programme_year import (
    Standing,
    check_appealable,
    next_review,
    notice_due,
    review,
)
from services.onboarding.domain.tiers import compute_tier
from shared.errors import Conflict
from shared.events.partners import PartnerStatus as S
from shared.events.programme import RequalificationOutcome as Outcome
from tests.support.onboarding import SMALL_PROGRAM

AT = datetime(2027, 6, 1, 12, tzinfo=UTC)
CONFIG = OnboardingConfig.model_validate(
    {
        **SMALL_PROGRAM,
        "programme_year": {
            "probation_days": 60,
            "minimum": {"min_revenue": "1000", "min_certifications": 1, "min_health": "40"},
        },
    }
)
MEETS = Standing(
    status=S.ACTIVE,
    tier="silver",
    partner_type="gsi",
    revenue=Decimal(2000),
    competencies=frozenset({"data"}),
    valid_certifications=2,
    health=Decimal(55),
    agreement_valid_until=AT + timedelta(days=100),
)


def test_the_review_is_the_activation_anniversary_or_a_fixed_date() -> None:
    year = CONFIG.programme_year
    assert next_review(year, date(2026, 3, 10), None) == date(2027, 3, 10)
    assert next_review(year, date(2026, 3, 10), date(2027, 3, 10)) == date(2028, 3, 10)
    assert next_review(year, date(2024, 2, 29), None) == date(2025, 2, 28)
    fixed = OnboardingConfig.model_validate(
        {"programme_year": {"review_basis": "fixed_date", "fixed_review_date": "07-01"}}
    ).programme_year
    assert next_review(fixed, date(2026, 3, 10), None) == date(2026, 7, 1)
    assert next_review(fixed, date(2026, 8, 10), None) == date(2027, 7, 1)
    assert next_review(fixed, date(2026, 3, 10), date(2026, 7, 1)) == date(2027, 7, 1)
    # Activated again after its last review (re-onboarded): the first date after the return.
    assert next_review(fixed, date(2027, 8, 10), date(2026, 7, 1)) == date(2028, 7, 1)
    assert next_review(year, date(2027, 8, 10), date(2027, 3, 10)) == date(2028, 8, 10)
    with pytest.raises(ValueError, match="fixed_review_date"):
        OnboardingConfig.model_validate({"programme_year": {"review_basis": "fixed_date"}})


def test_notices_go_90_and_30_days_ahead_each_once_and_a_late_run_sends_the_urgent_one() -> None:
    review_on = date(2027, 6, 1)
    assert notice_due((90, 30), review_on, review_on - timedelta(days=91), []) is None
    assert notice_due((90, 30), review_on, review_on - timedelta(days=90), []) == 90
    assert notice_due((90, 30), review_on, review_on - timedelta(days=80), [90]) is None
    assert notice_due((90, 30), review_on, review_on - timedelta(days=30), [90]) == 30
    assert notice_due((90, 30), review_on, review_on - timedelta(days=20), []) == 30  # late
    assert notice_due((90, 30), review_on, review_on - timedelta(days=20), [30]) is None


def test_meeting_the_bar_and_the_minimum_requalifies() -> None:
    decision = review(CONFIG, MEETS, AT, probation_ends=False)
    assert (decision.outcome, decision.tier, decision.plan) == (Outcome.REQUALIFIED, "silver", ())


def test_below_the_tier_bar_only_demotes_to_the_tier_met() -> None:
    decision = review(CONFIG, replace(MEETS, competencies=frozenset()), AT, probation_ends=False)
    assert (decision.outcome, decision.tier) == (Outcome.DEMOTED, "registered")
    assert "below the silver bar" in decision.reasons


def test_below_the_minimum_is_probation_with_a_plan_then_expulsion_if_unmet() -> None:
    weak = replace(MEETS, revenue=Decimal(200), health=None, valid_certifications=0)
    decision = review(CONFIG, weak, AT, probation_ends=False)
    assert decision.outcome is Outcome.PROBATION
    assert decision.probation_until == AT.date() + timedelta(days=60)
    assert decision.tier == "registered"  # the tier's bar missed too: demoted as well
    assert decision.plan == (
        "attributed revenue of at least 1000 (now 200)",
        "at least 1 valid certifications (now 0)",
        "a health score of at least 40 (not scored yet)",
    )
    ended = review(CONFIG, weak, AT + timedelta(days=60), probation_ends=True)
    assert (ended.outcome, ended.status) == (Outcome.EXPELLED, S.EXPELLED)
    cured = review(CONFIG, MEETS, AT + timedelta(days=60), probation_ends=True)
    assert cured.outcome is Outcome.REQUALIFIED
    assert "the probation's plan is met" in cured.reasons


def test_a_suspended_partner_below_the_minimum_is_expelled_and_an_agreement_is_needed() -> None:
    lapsed = replace(MEETS, status=S.SUSPENDED, agreement_valid_until=AT - timedelta(days=1))
    decision = review(CONFIG, lapsed, AT, probation_ends=False)
    assert decision.outcome is Outcome.EXPELLED
    assert "a signed partner agreement valid past the review" in decision.reasons


def test_appeals_only_of_adverse_decisions_once_and_within_the_window() -> None:
    until = AT + timedelta(days=30)
    check_appealable(Outcome.PROBATION, until, False, False, AT)
    with pytest.raises(Conflict, match="requalified decision cannot be appealed"):
        check_appealable(Outcome.REQUALIFIED, until, False, False, AT)
    with pytest.raises(Conflict, match="already been appealed"):
        check_appealable(Outcome.EXPELLED, until, False, True, AT)
    with pytest.raises(Conflict, match="window closed"):
        check_appealable(Outcome.DEMOTED, until, False, False, until + timedelta(seconds=1))


def test_an_upheld_appeal_undoes_an_expulsion_and_nothing_else_does() -> None:
    check_appeal_reversal("ptn_1", S.EXPELLED, S.ACTIVE)
    check_appeal_reversal("ptn_1", S.EXPELLED, S.SUSPENDED)  # a manager's suspension stands
    with pytest.raises(IllegalTransition, match="cannot go back from expelled to onboarding"):
        check_appeal_reversal("ptn_1", S.EXPELLED, S.ONBOARDING)
    with pytest.raises(IllegalTransition):
        check_transition("ptn_1", S.EXPELLED, S.ACTIVE)  # not a lifecycle step otherwise


def test_an_upheld_appeal_restores_the_standing_the_review_found() -> None:
    """Found in review: the grace came back without an end (the next run demoted or suspended
    the partner at once) and a manager's suspension came back as active."""
    decided, later = AT, AT + timedelta(days=20)
    assert appeal_restores(S.GRACE, decided + timedelta(days=6), decided, later) == (
        S.GRACE,
        later + timedelta(days=6),
    )
    assert appeal_restores(S.GRACE, decided - timedelta(days=1), decided, later) == (S.GRACE, later)
    assert appeal_restores(S.GRACE, None, decided, later) == (S.ACTIVE, None)  # not recorded
    assert appeal_restores(S.SUSPENDED, None, decided, later) == (S.SUSPENDED, None)
    assert appeal_restores(S.ACTIVE, None, decided, later) == (S.ACTIVE, None)


def test_tier_bars_differ_per_partner_type() -> None:
    config = OnboardingConfig.model_validate(
        {
            **SMALL_PROGRAM,
            "type_tiers": {
                "referral_affiliate": [
                    {"name": "registered", "min_revenue": 0},
                    {"name": "silver", "min_revenue": 300},
                    {"name": "gold", "min_revenue": 1000},
                ]
            },
        }
    )
    none: frozenset[str] = frozenset()
    assert compute_tier(config, Decimal(1200), none, "referral_affiliate").tier == "gold"
    assert compute_tier(config, Decimal(1200), none, "gsi").tier == "registered"
    with pytest.raises(ValueError, match="must name the tiers"):
        OnboardingConfig.model_validate(
            {**SMALL_PROGRAM, "type_tiers": {"isv": [{"name": "registered", "min_revenue": 0}]}}
        )
