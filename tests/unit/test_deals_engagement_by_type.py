"""Rules of engagement per partner type (services/deals/domain/engagement.py, applied by
check_registration): referral and influencer partners refer rather than register, each type
has its protection window, precedence decides a conflict's review, a non-exclusive holder is no
conflict, and a partner whose type is unknown keeps the rules every partner had."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from services.deals.domain.engagement import (
    ConflictTreatment,
    EngagementMode,
    TypeRules,
    conflict_treatment,
    protection_days,
)
from services.deals.domain.rules import (
    InvalidPolicy,
    PartnerConflictPolicy,
    PartnerView,
    RulesOfEngagement,
    check_registration,
    rules_from_mapping,
)
from shared.events.partners import PartnerStatus
from shared.events.registrations import RegistrationStatus as S
from tests.support.registrations import NOW, existing, request

POLICY = RulesOfEngagement()
UNTYPED = PartnerView(
    "p-1", PartnerStatus.ACTIVE, "silver", frozenset({"US"}), frozenset({"data", "ai"})
)
REQUEST = request()
HELD = existing()


def typed(partner_type: str | None) -> PartnerView:
    return replace(UNTYPED, partner_type=partner_type)


@pytest.mark.parametrize("kind", ["referral_affiliate", "consultant_influencer"])
def test_referral_and_influencer_partners_refer_rather_than_register(kind: str) -> None:
    decision = check_registration(POLICY, REQUEST, typed(kind), [], [])
    assert decision.status is S.REJECTED
    assert decision.expires_at is None
    assert decision.reasons[0].startswith(f"{kind} partners refer deals rather than register")
    assert decision.partner_reasons == decision.reasons


def test_each_type_has_its_protection_window_and_an_unknown_type_the_policys() -> None:
    windows = {
        kind: check_registration(POLICY, REQUEST, typed(kind), [], []).expires_at
        for kind in (None, "gsi", "var_reseller", "technology_alliance", "a-future-type")
    }
    assert windows == {
        None: NOW + timedelta(days=90),
        "gsi": NOW + timedelta(days=90),
        "var_reseller": NOW + timedelta(days=60),
        "technology_alliance": NOW + timedelta(days=180),
        "a-future-type": NOW + timedelta(days=90),
    }
    # A pending review holds its customer for the type's window too.
    big = replace(REQUEST, amount=Decimal("10000000"))
    pending = check_registration(POLICY, big, typed("var_reseller"), [], [])
    assert (pending.status, pending.expires_at) == (S.PENDING_REVIEW, NOW + timedelta(days=60))


def test_a_higher_ranked_type_goes_to_review_instead_of_being_refused() -> None:
    decision = check_registration(
        POLICY, REQUEST, typed("gsi"), [HELD], [], {"p-2": "var_reseller"}
    )
    assert decision.status is S.PENDING_REVIEW
    assert "precedence: gsi (3) over var_reseller (1): escalated for review" in decision.reasons[0]
    assert decision.conflicts[0].reference == "reg-old"
    # The partner is told a conflict's kind, never who outranks whom.
    assert decision.partner_reasons[0] == (
        "possible conflict with another partner: escalated for review"
    )


@pytest.mark.parametrize(
    ("own", "holder"),
    [
        ("var_reseller", "gsi"),  # lower: first come wins
        ("isv", "msp"),  # equal
        ("gsi", None),  # the holder's type unknown
        (None, "var_reseller"),  # the requester's type unknown
    ],
)
def test_equal_lower_or_unknown_rank_keeps_the_policys_first_come(
    own: str | None, holder: str | None
) -> None:
    decision = check_registration(POLICY, REQUEST, typed(own), [HELD], [], {"p-2": holder})
    assert decision.status is S.REJECTED
    assert decision.reasons[0].startswith("customer already registered inside the protection")


def test_a_non_exclusive_holder_is_no_conflict() -> None:
    decision = check_registration(
        POLICY, REQUEST, typed("var_reseller"), [HELD], [], {"p-2": "technology_alliance"}
    )
    assert decision.status is S.APPROVED
    assert decision.conflicts == ()
    assert decision.reasons[0] == (
        "alongside registration reg-old by p-2 (technology_alliance registrations are not"
        " exclusive): no conflict"
    )
    assert "p-2" not in " ".join(decision.partner_reasons)


def test_precedence_never_overrides_an_escalation_policy_into_a_refusal() -> None:
    escalate = replace(POLICY, partner_conflict=PartnerConflictPolicy.ESCALATE)
    lower = check_registration(escalate, REQUEST, typed("var_reseller"), [HELD], [], {"p-2": "gsi"})
    assert lower.status is S.PENDING_REVIEW


def test_the_treatment_of_a_conflict_by_type() -> None:
    table = POLICY.partner_types
    assert conflict_treatment(table, "gsi", "msp")[0] is ConflictTreatment.REVIEW
    assert conflict_treatment(table, "msp", "gsi")[0] is ConflictTreatment.POLICY
    assert conflict_treatment(table, None, "technology_alliance")[0] is ConflictTreatment.ALONGSIDE
    assert conflict_treatment(table, "gsi", "unheard-of")[0] is ConflictTreatment.POLICY
    assert conflict_treatment(table, None, None) == (ConflictTreatment.POLICY, "")
    assert protection_days(table, "referral_affiliate", 45) == 45


def test_the_per_type_policy_is_configurable_and_validated() -> None:
    policy = rules_from_mapping(
        {
            "version": "acme-types-1",
            "partner_types": {
                "referral_affiliate": {"mode": "register", "protection_days": 30},
                "gsi": {"precedence": 9},
            },
        }
    )
    # A key replaces the whole table: types left out are treated as unknown ones.
    assert policy.partner_types == {
        "referral_affiliate": TypeRules(EngagementMode.REGISTER, 30),
        "gsi": TypeRules(precedence=9),
    }
    referral = check_registration(policy, REQUEST, typed("referral_affiliate"), [], [])
    assert (referral.status, referral.expires_at) == (S.APPROVED, NOW + timedelta(days=30))
    with pytest.raises(InvalidPolicy, match="unknown partner type"):
        rules_from_mapping({"version": "x", "partner_types": {"pirate": {}}})
    with pytest.raises(
        InvalidPolicy, match=r"partner_types\.gsi\.protection_days must be positive"
    ):
        rules_from_mapping({"version": "x", "partner_types": {"gsi": {"protection_days": 0}}})
    with pytest.raises(InvalidPolicy, match="partner_types"):
        rules_from_mapping({"version": "x", "partner_types": {"gsi": {"mode": "lurk"}}})
