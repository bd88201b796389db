"""The re-registration cooldown (services/deals/domain/cooldown.py) and what a partner's
standing does to its registrations (services/deals/domain/partner_standing.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.deals.domain.bounds import proposal_problem
from services.deals.domain.cooldown import cooldown_refusal, cooldown_start, cooling_down
from services.deals.domain.partner_standing import (
    ended_reasons,
    extension_refusal,
    holds_customers,
)
from services.deals.domain.rules import (
    ExistingRegistration,
    InvalidPolicy,
    RulesOfEngagement,
    rules_from_mapping,
)
from services.deals.policy import differences, document_of
from shared.events.partners import PartnerStatus
from shared.events.registrations import RegistrationStatus as S
from tests.support.registrations import NOW, existing, request

POLICY = RulesOfEngagement()


def own_expired(**overrides: object) -> ExistingRegistration:
    """The requesting partner's (p-1) registration on Northwind, expired five days ago."""
    values: dict[str, object] = {
        "partner_id": "p-1",
        "status": S.EXPIRED,
        "registered_at": NOW - timedelta(days=125),
        "expires_at": NOW - timedelta(days=5),
    }
    return existing(**(values | overrides))


def test_a_partner_may_not_register_its_expired_customer_again_inside_the_cooldown() -> None:
    lapsed = own_expired()
    assert POLICY.reregistration_cooldown_days == 30
    assert cooling_down(POLICY, request(), [lapsed]) == lapsed
    refusal = cooldown_refusal(POLICY, lapsed)
    again = (NOW + timedelta(days=25)).isoformat()
    assert refusal == (
        f"this partner's registration reg-old on this customer expired at"
        f" {(NOW - timedelta(days=5)).isoformat()}: under the re-registration cooldown (30 days,"
        f" policy {POLICY.version}) this partner may register this customer again from {again}"
    )


def test_an_approved_registration_past_its_window_cools_down_before_the_job_marks_it() -> None:
    """Found in review: registering again between the window's end and the expiry job's next
    run got a fresh window, as if the cooldown depended on the job."""
    lapsed = own_expired(status=S.APPROVED)  # its window ended five days ago
    assert cooling_down(POLICY, request(), [lapsed]) == lapsed
    live = own_expired(status=S.APPROVED, expires_at=NOW + timedelta(days=1))
    assert cooling_down(POLICY, request(), [live]) is None  # a repeat, refused as one


def test_the_cooldown_matches_customers_as_the_conflict_check_does() -> None:
    # By name alone (no domain given), and by domain under another name.
    by_name = request(customer_domain=None, customer_name="NORTHWIND TRADERS")
    assert cooling_down(POLICY, by_name, [own_expired()]) is not None
    by_domain = request(customer_name="NW Holdings", customer_domain="sales.northwind.com")
    assert cooling_down(POLICY, by_domain, [own_expired()]) is not None
    other = request(customer_name="Contoso", customer_domain="contoso.com")
    assert cooling_down(POLICY, other, [own_expired()]) is None


@pytest.mark.parametrize(
    "lapsed",
    [
        own_expired(expires_at=NOW - timedelta(days=30)),  # the cooldown is over
        own_expired(partner_id="p-2"),  # another partner's: not this partner's cooldown
        own_expired(status=S.REJECTED),  # never protected anything
        own_expired(status=S.WON),  # closed with its deal
        own_expired(status=S.LOST),
        own_expired(products=frozenset({"ai"})),  # another product is another deal
    ],
)
def test_what_does_not_cool_a_customer_down(lapsed: ExistingRegistration) -> None:
    assert cooling_down(POLICY, request(), [lapsed]) is None


def test_the_latest_expiry_names_the_date_and_zero_days_turns_the_cooldown_off() -> None:
    older = own_expired(registration_id="reg-a", expires_at=NOW - timedelta(days=20))
    newer = own_expired(registration_id="reg-b", expires_at=NOW - timedelta(days=2))
    assert cooling_down(POLICY, request(), [newer, older]) == newer
    assert cooling_down(POLICY, request(), [older, newer]) == newer
    off = rules_from_mapping({"version": "v-off", "reregistration_cooldown_days": 0})
    assert cooling_down(off, request(), [newer]) is None
    assert cooldown_start(POLICY, NOW) == NOW - timedelta(days=30)


def test_the_cooldown_setting_is_bounded_validated_and_shown_in_a_versions_diff() -> None:
    for bad in (-1, 3661):
        with pytest.raises(InvalidPolicy, match="reregistration_cooldown_days"):
            rules_from_mapping({"version": "v", "reregistration_cooldown_days": bad})
    assert proposal_problem({"reregistration_cooldown_days": True}) == (
        "reregistration_cooldown_days must be a JSON integer, not true"
    )
    longer = rules_from_mapping({"version": "v-60", "reregistration_cooldown_days": 60})
    assert document_of(POLICY)["reregistration_cooldown_days"] == 30
    assert differences(POLICY, longer) == {"reregistration_cooldown_days": [30, 60]}


def test_an_ended_partners_registrations_hold_nothing_a_suspended_ones_still_do() -> None:
    assert not holds_customers("expelled")
    assert not holds_customers("rejected")
    for status in ("active", "grace", "suspended", None):
        assert holds_customers(status)
    full, told = ended_reasons("p-9", PartnerStatus.EXPELLED, "fraud")
    assert told == "partner p-9 is expelled: its registrations no longer protect their customers"
    assert full == f"{told} (fraud)"
    assert ended_reasons("p-9", PartnerStatus.EXPELLED, "")[0] == told


def test_a_partner_that_may_not_register_may_not_extend_either() -> None:
    allowed = POLICY.statuses_allowed_to_register
    assert extension_refusal(PartnerStatus.SUSPENDED, allowed) == (
        "partner is suspended: its registrations keep their protection until their window"
        " ends, but none is extended until it may register again"
    )
    assert extension_refusal(PartnerStatus.ACTIVE, allowed) is None
    assert extension_refusal(PartnerStatus.GRACE, allowed) is None
    assert extension_refusal(None, allowed) is None
