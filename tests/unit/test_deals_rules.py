from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.deals.domain.customers import (
    Customer,
    former_domain_key,
    name_similarity,
    normalise_domain,
    normalise_name,
)
from services.deals.domain.partner_standing import extend
from services.deals.domain.rules import (
    ExistingRegistration,
    InvalidPolicy,
    OpenOpportunity,
    PartnerConflictPolicy,
    PartnerView,
    RulesOfEngagement,
    check_registration,
    rules_from_mapping,
)
from services.deals.policy import load_policy, parsed
from services.deals.schemas import RegistrationIn
from shared.errors import Unprocessable
from shared.events.partners import PartnerStatus
from shared.events.registrations import RegistrationStatus as S
from tests.support.registrations import ACTIVE, NOW, POLICY, existing, request


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("https://www.Sales.Northwind-Traders.com/path?q=1", "northwind-traders.com"),
        ("northwind.co.uk", "northwind.co.uk"),
        ("shop.northwind.co.uk", "northwind.co.uk"),
        ("mailto:someone@northwind.com", "northwind.com"),
        ("not a domain", None),
        ("", None),
        # a name in another script by its A-labels, whichever form a partner typed
        ("https://www.Bücher-Haus.de/x", "xn--bcher-haus-9db.de"),
        ("xn--bcher-haus-9db.de", "xn--bcher-haus-9db.de"),
        ("1.2.3.4", None),
        ("https://ab--cd.com/", "ab--cd.com"),
        ("exa mple.com", None),
        # Found from outside: under a multi-label public suffix the former rule (a fixed dozen
        # of them) took the suffix as the customer's domain, so one partner's anadolu.com.tr
        # blocked another's unrelated bosphorus.com.tr. The Public Suffix List knows them all.
        ("anadolu.com.tr", "anadolu.com.tr"),
        ("https://www.bosphorus.com.tr/", "bosphorus.com.tr"),
        ("shop.samsung-foods.co.kr", "samsung-foods.co.kr"),
        ("bj.foods.com.cn", "foods.com.cn"),
        ("tango.com.ar", "tango.com.ar"),
        ("jakarta.co.id", "jakarta.co.id"),
        ("https://northwind.github.io/docs", "northwind.github.io"),  # a private suffix
        ("com.tr", None),  # a public suffix names no one
        ("github.io", None),
        ("northwind.example", "northwind.example"),  # a top-level domain the list lacks
        ("https://acme.com#top", "acme.com"),  # a fragment, as a CRM's Website may hold one
        ("acme.com?x=1#y", "acme.com"),
    ],
)
def test_domains_normalise_to_the_registrable_domain(raw: str, normalised: str | None) -> None:
    assert normalise_domain(raw) == normalised


def test_customers_under_one_multi_label_suffix_are_different_customers() -> None:
    anadolu = Customer.parse("Anadolu Gida", "anadolu.com.tr")
    assert anadolu.matches(Customer.parse("Bosphorus Bank", "www.bosphorus.com.tr"), 0.88) is None
    assert anadolu.matches(Customer.parse("Anadolu", "https://shop.anadolu.com.tr"), 0.88) == (
        "domain",
        1.0,
    )
    # A key stored by the former rule is a bare suffix: it matches no customer by domain.
    assert anadolu.matches(Customer.parse("Bosphorus Bank", "com.tr"), 0.88) is None


def test_the_former_key_is_named_only_where_it_differs() -> None:
    """Registrations stored before the Public Suffix List hold the former rule's key; lookups
    find them by it too."""
    assert former_domain_key("anadolu.com.tr") == "com.tr"
    assert former_domain_key("northwind.github.io") == "github.io"
    assert former_domain_key("northwind.co.uk") is None  # one of the dozen it knew
    assert former_domain_key("northwind.com") is None
    assert former_domain_key(None) is None


def test_names_drop_case_punctuation_accents_and_legal_forms() -> None:
    assert normalise_name("Northwind Traders, Ltd.") == "northwind traders"
    assert normalise_name("Société Générale S.A.") == "societe generale"
    assert normalise_name("AT&T Inc") == "at and t"
    assert name_similarity("Contoso Logistics GmbH", "CONTOSO LOGISTICS") == 1.0
    assert name_similarity("Contoso Logistics", "Contoso Logistic") > 0.9
    assert name_similarity("Contoso", "Fabrikam") < 0.5


def test_clean_registration_is_approved_with_a_protection_window() -> None:
    decision = check_registration(POLICY, request(), ACTIVE, [], [])
    assert decision.status is S.APPROVED
    assert decision.expires_at == NOW + timedelta(days=90)
    assert decision.policy_version == POLICY.version


@pytest.mark.parametrize(
    ("partner", "reason"),
    [
        (None, "partner p-1 is unknown to deals"),
        (
            PartnerView("p-1", PartnerStatus.SUSPENDED, "gold", frozenset(), frozenset({"data"})),
            "partner p-1 is suspended; partners that may register: active, grace",
        ),
    ],
)
def test_unknown_or_inactive_partners_are_rejected(
    partner: PartnerView | None, reason: str
) -> None:
    decision = check_registration(POLICY, request(), partner, [], [])
    assert decision.status is S.REJECTED
    assert decision.reasons[0].startswith(reason)


def test_unauthorised_product_or_region_is_rejected() -> None:
    product = check_registration(POLICY, request(products=frozenset({"security"})), ACTIVE, [], [])
    assert product.status is S.REJECTED
    assert "product(s) security" in product.reasons[0]
    region = check_registration(POLICY, request(customer_country="FR"), ACTIVE, [], [])
    assert region.status is S.REJECTED
    assert "region FR" in region.reasons[0]


def test_first_come_first_served_rejects_the_later_registration_with_evidence() -> None:
    decision = check_registration(POLICY, request(), ACTIVE, [existing()], [])
    assert decision.status is S.REJECTED
    assert decision.conflicts[0].reference == "reg-old"
    assert decision.conflicts[0].matched_on == "domain"
    assert (NOW - timedelta(days=10)).isoformat() in decision.reasons[0]


def test_fuzzy_name_match_without_domain_conflicts() -> None:
    other = existing(customer_domain=None, customer_name="NORTHWIND TRADERS LIMITED")
    decision = check_registration(POLICY, request(customer_domain=None), ACTIVE, [other], [])
    assert decision.status is S.REJECTED
    assert decision.conflicts[0].matched_on == "name"


def test_alike_names_on_two_different_domains_go_to_review_not_first_come() -> None:
    """Found in review: Deutsche Bahn (deutschebahn.com) was refused outright as Deutsche Bank
    (db.com) by a 0.92 name match; two given domains that differ make it a person's call."""
    bank = existing(customer_name="Deutsche Bank AG", customer_domain="db.com")
    bahn = request(customer_name="Deutsche Bahn AG", customer_domain="deutschebahn.com")
    decision = check_registration(POLICY, bahn, ACTIVE, [bank], [])
    assert decision.status is S.PENDING_REVIEW
    assert (
        "though the customers' domains differ (deutschebahn.com, db.com)" in (decision.reasons[0])
    )
    # The same name on the same domain, or a name alike with no domain given: first come.
    same = request(customer_name="Deutsche Bank", customer_domain="www.db.com")
    assert check_registration(POLICY, same, ACTIVE, [bank], []).status is S.REJECTED
    unsaid = request(customer_name="Deutsche Bank", customer_domain=None)
    assert check_registration(POLICY, unsaid, ACTIVE, [bank], []).status is S.REJECTED


def test_escalation_policy_sends_conflicts_to_review() -> None:
    policy = RulesOfEngagement(partner_conflict=PartnerConflictPolicy.ESCALATE)
    decision = check_registration(policy, request(), ACTIVE, [existing()], [])
    assert decision.status is S.PENDING_REVIEW


@pytest.mark.parametrize(
    "other",
    [
        # Outside the window: submitted 91 days ago, its 90 days ended yesterday.
        existing(registered_at=NOW - timedelta(days=91), expires_at=NOW - timedelta(days=1)),
        existing(registered_at=NOW - timedelta(days=91), expires_at=None),  # no stored expiry
        existing(expires_at=NOW - timedelta(seconds=1)),  # already expired
        existing(status=S.REJECTED),
        existing(products=frozenset({"ai"})),  # different product
        existing(partner_id="p-1"),  # the partner's own
    ],
)
def test_registrations_that_do_not_block(other: ExistingRegistration) -> None:
    assert check_registration(POLICY, request(), ACTIVE, [other], []).status is S.APPROVED


def test_an_extended_registration_keeps_holding_its_customer_past_the_first_window() -> None:
    extended = existing(
        registered_at=NOW - timedelta(days=100), expires_at=NOW + timedelta(days=20)
    )
    decision = check_registration(POLICY, request(), ACTIVE, [extended], [])
    assert decision.status is S.REJECTED
    assert "reg-old" in decision.reasons[0]


def test_direct_sales_conflict_goes_to_review_only_when_the_opportunity_came_first() -> None:
    earlier = OpenOpportunity(
        "salesforce:006", "rep-1", "Northwind Traders", "northwind.com", NOW - timedelta(days=1)
    )
    decision = check_registration(POLICY, request(), ACTIVE, [], [earlier])
    assert decision.status is S.PENDING_REVIEW
    assert decision.direct_conflict is not None
    assert decision.direct_conflict.party == "rep-1"
    later = OpenOpportunity(
        "salesforce:007", "rep-1", "Northwind Traders", "northwind.com", NOW + timedelta(hours=1)
    )
    assert check_registration(POLICY, request(), ACTIVE, [], [later]).status is S.APPROVED
    strict = RulesOfEngagement(direct_conflict_reviews=False)
    assert check_registration(strict, request(), ACTIVE, [], [earlier]).status is S.REJECTED


def test_amount_over_the_tier_limit_goes_to_review() -> None:
    decision = check_registration(POLICY, request(amount=Decimal("150000.01")), ACTIVE, [], [])
    assert decision.status is S.PENDING_REVIEW
    assert "exceeds the silver auto-approval limit 150000" in decision.reasons[0]
    assert (
        check_registration(POLICY, request(amount=Decimal("150000")), ACTIVE, [], []).status
        is S.APPROVED
    )


def test_extension_under_policy() -> None:
    expiry = NOW + timedelta(days=5)
    new, _why = extend(POLICY, expiry, 0, S.APPROVED, NOW)
    assert new == expiry + timedelta(days=30)
    assert extend(POLICY, expiry, 1, S.APPROVED, NOW)[0] is None
    assert extend(POLICY, expiry, 0, S.PENDING_REVIEW, NOW)[0] is None


def test_a_window_that_has_passed_is_not_extended_before_the_job_marks_it() -> None:
    ended = NOW - timedelta(seconds=1)
    assert extend(POLICY, ended, 0, S.APPROVED, NOW) == (
        None,
        f"its protection window ended at {ended.isoformat()}",
    )


def test_a_partner_in_its_grace_period_still_registers_unless_policy_says_otherwise() -> None:
    grace = PartnerView("p-1", PartnerStatus.GRACE, "silver", ACTIVE.regions, ACTIVE.products)
    assert check_registration(POLICY, request(), grace, [], []).status is S.APPROVED
    strict = RulesOfEngagement(statuses_allowed_to_register=frozenset({PartnerStatus.ACTIVE}))
    decision = check_registration(strict, request(), grace, [], [])
    assert decision.status is S.REJECTED
    assert decision.reasons[0] == "partner p-1 is grace; partners that may register: active"


def test_policy_from_configuration_keeps_defaults_for_unset_settings() -> None:
    policy = rules_from_mapping(
        {
            "version": "acme-2027-01",
            "protection_days": 60,
            "auto_approve_limits": {"gold": "750000.00"},
            "partner_conflict": "escalate",
            "statuses_allowed_to_register": ["active"],
        }
    )
    assert policy.version == "acme-2027-01"
    assert policy.protection_days == 60
    assert policy.auto_approve_limits == {"gold": Decimal("750000.00")}
    assert policy.partner_conflict is PartnerConflictPolicy.ESCALATE
    assert policy.statuses_allowed_to_register == frozenset({PartnerStatus.ACTIVE})
    assert policy.extension_days == POLICY.extension_days
    decision = check_registration(policy, request(), ACTIVE, [], [])
    assert decision.expires_at == NOW + timedelta(days=60)
    assert decision.policy_version == "acme-2027-01"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"version": "x", "protection_dayz": 5},
            "unknown rules-of-engagement setting(s): protection_dayz",
        ),
        ({"protection_days": 5}, "a configured policy must name its version"),
        ({"version": "x", "partner_conflict": "coin_flip"}, "partner_conflict"),
        ({"version": "x", "protection_days": 0}, "protection_days must be positive"),
        ({"version": "x", "name_similarity_threshold": 1.5}, "name_similarity_threshold"),
        ({"version": "x", "auto_approve_limits": {"gold": "lots"}}, "auto_approve_limits.gold"),
        # Found from outside: each of these was stored or replayed and then overflowed a date,
        # a database integer or the JSON encoder (a 500).
        ({"version": "x", "protection_days": 2**63}, "protection_days: Input should be less"),
        ({"version": "x", "expiry_warning_days": 10**20}, "expiry_warning_days: Input should"),
        ({"version": "x", "max_extensions": 10**20}, "max_extensions: Input should be less"),
        ({"version": "x", "review_days": {"other": 10**9}}, "review_days.other: Input should"),
        ({"version": "x", "review_reminder_hours": 10**9}, "review_reminder_hours: Input"),
        (
            {"version": "x", "hyperscaler_acceptance_hours": {"aws_ace": 10**9}},
            "hyperscaler_acceptance_hours.aws_ace: Input should",
        ),
        (
            {"version": "x", "partner_types": {"gsi": {"protection_days": 10**9}}},
            "partner_types.gsi.protection_days must be at most 3660",
        ),
        ({"version": "x", "auto_approve_limits": {"gold": "1e400"}}, "auto_approve_limits.gold"),
        ({"version": "x", "auto_approve_limits": {"gold": "-1"}}, "auto_approve_limits.gold"),
        ({"version": "x", "review_auto_approve_limit": "1e20"}, "review_auto_approve_limit"),
        ({"version": "x", "link_amount_tolerance": "-0.1"}, "link_amount_tolerance"),
        ({"version": "\ud800"}, "version: Input should be a valid string"),
        ({"version": "a\x00b"}, "version: String should match pattern"),
        ({"version": "a b"}, "version: String should match pattern"),
        ({"version": "v" * 101}, "version: String should match pattern"),
    ],
)
def test_a_broken_policy_is_refused_with_the_exact_reason(
    data: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidPolicy, match=re.escape(message)):
        rules_from_mapping(data)


def test_the_largest_settings_allowed_still_compute_dates() -> None:
    widest = rules_from_mapping(
        {"version": "acme.2027:wide_1", "protection_days": 3660, "extension_days": 3660}
    )
    assert widest.protection_days == 3660


def test_a_registration_s_customer_domain_must_hold_a_domain_name() -> None:
    base = {
        "customer_name": "Bücher Haus GmbH",
        "products": ["data"],
        "amount": "10",
        "currency": "EUR",
    }
    assert (
        RegistrationIn(**base, customer_domain="bücher-haus.de").customer_domain == "bücher-haus.de"
    )
    for bad in ("not a domain", "1.2.3.4", "a\x00b.example"):
        with pytest.raises(ValidationError):
            RegistrationIn(**base, customer_domain=bad)


def test_a_name_stays_within_its_bound_once_normalised() -> None:
    with pytest.raises(ValidationError, match="longer than 200 characters once normalised"):
        RegistrationIn(customer_name="\ufdfa" * 200, products=["d"], amount="1", currency="EUR")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"version": "x", "protection_days": True},
            "protection_days must be a JSON integer, not true",
        ),
        (
            {"version": "x", "business_weekdays": ["1"]},
            "business_weekdays[0] must be a JSON integer",
        ),
        (
            {"version": "x", "business_weekdays": [True]},
            "business_weekdays[0] must be a JSON integer",
        ),
        (
            {"version": "x", "holidays": ["0001-01-01"]},
            "holidays[0] must lie between 1900 and 9999",
        ),
        (
            {"version": "x", "partner_types": {"gsi": {"precedence": 10**30}}},
            "partner_types.gsi.precedence must be a JSON integer from 0 to 100",
        ),
        (
            {"version": "x", "partner_types": {"gsi": {"precedence": -1}}},
            "partner_types.gsi.precedence must be a JSON integer from 0 to 100",
        ),
        (
            {"version": "x", "auto_approve_limits": {"gold": "1_000"}},
            "amount text must be ASCII digits",
        ),
        (
            {"version": "x", "review_auto_approve_limit": "25000.005"},
            "no more than 2 decimal places",
        ),
    ],
)
def test_a_proposal_is_held_to_the_json_it_should_be(data: dict[str, object], message: str) -> None:
    """Found from outside in session 24: `true` read as 1, "1" as Monday, a holiday in year 1,
    a rank of 10^30, `1_000` as a limit."""
    with pytest.raises(Unprocessable) as refused:
        parsed(data)
    assert message in refused.value.message


def test_a_stored_version_is_read_as_it_was_written_before_the_proposal_checks() -> None:
    """A version stored before them is never judged again: one in force that failed would stop
    every registration (found by review)."""
    stored = {
        "version": "old-1",
        "auto_approve_limits": {"gold": "1E+5"},
        "review_auto_approve_limit": "25000.005",
        "partner_types": {"gsi": {"precedence": 10**30}},
        "holidays": ["0001-01-01"],
    }
    policy = rules_from_mapping(stored)
    assert policy.auto_approve_limits["gold"] == Decimal("1E+5")
    assert policy.partner_types["gsi"].precedence == 10**30
    with pytest.raises(Unprocessable):
        parsed(stored)


def test_a_deployed_policy_file_is_held_to_what_a_proposal_is(tmp_path: Path) -> None:
    """A deployed file is seeded as a stored version (found by review: it skipped the checks)."""
    policy_file = tmp_path / "policy.json"
    policy_file.write_text('{"version": "v1", "business_weekdays": ["1", "2"]}')
    with pytest.raises(InvalidPolicy, match=r"business_weekdays\[0\] must be a JSON integer"):
        load_policy(str(policy_file))
    policy_file.write_text('{"version": "v1", "business_weekdays": [1, 2]}')
    assert load_policy(str(policy_file)).business_weekdays == frozenset({1, 2})
