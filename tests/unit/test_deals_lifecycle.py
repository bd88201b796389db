"""The deals rules that live beside the conflict check: one parsed customer carried by a
registration, what a decision's partner is told, when a review may happen and when a partner is
warned that its protection window ends."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from services.deals.domain.customers import Customer
from services.deals.domain.ledger import LedgerWhat
from services.deals.domain.lifecycle import (
    decision_notification_kind,
    expiry_warning_days,
    merge_is_told,
    review_outcome,
    window_after_review,
)
from services.deals.domain.partner_standing import approval_refusal, extensions_left
from services.deals.domain.rules import (
    ExistingRegistration,
    RegistrationRequest,
    conflicts_at_approval,
)
from shared.errors import Conflict
from shared.events.notifications import NotificationKind as K
from shared.events.partners import PartnerStatus
from shared.events.registrations import RegistrationStatus as S
from tests.support.registrations import NOW, POLICY, existing, request


def test_a_customer_is_parsed_once_into_its_domain_and_name_key() -> None:
    customer = Customer.parse("Northwind Traders, Ltd.", "https://www.Sales.Northwind.com/x", "us")
    assert customer == Customer(
        name="Northwind Traders, Ltd.",
        domain="northwind.com",
        country="US",
        normalised_name="northwind traders",
        name_key="northwind",
    )
    assert Customer.parse(None) == Customer("", None, None, "", "")


def test_a_registration_carries_its_parsed_customer_and_keeps_what_was_asked() -> None:
    request = RegistrationRequest(
        partner_id="p-1",
        customer_name="Société Générale S.A.",
        customer_domain="shop.societe.co.uk",
        customer_country="FR",
        products=frozenset({"data", "ai"}),
        amount=Decimal("10.00"),
        currency="EUR",
        submitted_at=NOW,
    )
    assert (request.customer.domain, request.customer.name_key) == ("societe.co.uk", "societe")
    assert request.as_asked()["customer_domain"] == "shop.societe.co.uk"
    assert request.as_asked()["products"] == ["ai", "data"]


@pytest.mark.parametrize(
    ("other", "match"),
    [
        (Customer.parse("Anything Else", "northwind.com"), ("domain", 1.0)),
        (Customer.parse("NORTHWIND TRADERS LIMITED"), ("name", 1.0)),
        (Customer.parse("Fabrikam", "fabrikam.com"), None),
        # No domain on either side is not "the same domain".
        (Customer.parse("Fabrikam"), None),
    ],
)
def test_the_same_customer_is_the_same_domain_or_a_name_alike_enough(
    other: Customer, match: tuple[str, float] | None
) -> None:
    northwind = Customer.parse("Northwind Traders", "https://northwind.com")
    assert northwind.matches(other, 0.88) == match
    assert Customer.parse("Fabrikam").matches(Customer.parse("Fabrikam Inc"), 0.88) == (
        "name",
        1.0,
    )


@pytest.mark.parametrize(
    ("status", "conflicted", "kind"),
    [
        (S.APPROVED, False, K.REGISTRATION_APPROVED),
        (S.APPROVED, True, K.REGISTRATION_APPROVED),
        (S.PENDING_REVIEW, True, K.PENDING_REVIEW),
        (S.REJECTED, False, K.REGISTRATION_REJECTED),
        (S.REJECTED, True, K.CONFLICT),
    ],
)
def test_the_partner_hears_its_decision_as_a_conflict_only_when_one_rejected_it(
    status: S, conflicted: bool, kind: K
) -> None:
    assert decision_notification_kind(status, conflicted) is kind


def test_only_a_decision_has_a_decision_notification() -> None:
    with pytest.raises(ValueError, match="expired is not a decision"):
        decision_notification_kind(S.EXPIRED, False)


def test_a_review_decides_a_registration_pending_review() -> None:
    assert review_outcome(S.PENDING_REVIEW, True, "") == (S.APPROVED, "manual review: approved")
    assert review_outcome(S.PENDING_REVIEW, False, "no budget") == (
        S.REJECTED,
        "manual review: no budget",
    )


@pytest.mark.parametrize("status", [s for s in S if s is not S.PENDING_REVIEW])
def test_only_a_registration_pending_review_can_be_reviewed(status: S) -> None:
    with pytest.raises(Conflict, match=f"registration is {status.value}, not pending_review"):
        review_outcome(status, True, "")


def test_an_approval_after_review_counts_the_window_from_the_approval() -> None:
    submitted = NOW - timedelta(days=100)
    assert window_after_review(submitted, submitted + timedelta(days=90), NOW) == (
        NOW + timedelta(days=90)
    )
    # An extension already beyond it is kept; no window, nothing moves.
    extended = NOW + timedelta(days=200)
    assert window_after_review(submitted, extended, NOW - timedelta(days=150)) is None
    assert window_after_review(submitted, None, NOW) is None


def test_an_approval_after_a_later_return_to_review_gives_back_only_what_was_left() -> None:
    # Approved long ago and extended: 20 days left when a CRM link sent it back to review.
    began = NOW - timedelta(days=5)
    ends = began + timedelta(days=20)
    assert window_after_review(began, ends, NOW) == NOW + timedelta(days=20)
    # Its window had ended before the review began: nothing was left to give back.
    assert window_after_review(began, began - timedelta(days=1), NOW) == NOW


def test_a_review_approves_nothing_over_a_hold_its_decision_did_not_weigh() -> None:
    # The request waited 100 days; another partner registered the customer 5 days ago.
    waited = request(submitted_at=NOW - timedelta(days=100), amount=Decimal("900000"))
    newcomer = existing(
        registration_id="reg-new",
        registered_at=NOW - timedelta(days=5),
        expires_at=NOW + timedelta(days=85),
    )
    types: tuple[str | None, dict[str, str | None]] = (None, {})
    lapsed = NOW - timedelta(days=10)  # the waiting one's window ended ten days ago

    def refused_over(
        *holders: ExistingRegistration, considered: frozenset[str] = frozenset()
    ) -> list[str]:
        found = conflicts_at_approval(POLICY, waited, NOW, list(holders), types, considered, lapsed)
        return [c.reference for c in found]

    assert refused_over(newcomer) == ["reg-new"]
    # One its decision weighed, or one registered while it still held the customer (that one's
    # own decision met it: found in review, the later one could be approved and the first not),
    # is the reviewer's call; an ended hold, or the partner's own registration, is no conflict.
    assert refused_over(newcomer, considered=frozenset({"reg-new"})) == []
    meanwhile = replace(newcomer, registration_id="reg-mid", registered_at=NOW - timedelta(days=50))
    assert refused_over(meanwhile) == []
    assert refused_over(replace(newcomer, expires_at=NOW - timedelta(seconds=1))) == []
    assert refused_over(replace(newcomer, partner_id="p-1")) == []


@pytest.mark.parametrize("status", list(PartnerStatus))
def test_a_review_approves_a_registration_only_while_its_partner_may_register(
    status: PartnerStatus,
) -> None:
    refusal = approval_refusal(status, POLICY.statuses_allowed_to_register)
    assert (refusal is None) is (status in POLICY.statuses_allowed_to_register)
    assert approval_refusal(None, POLICY.statuses_allowed_to_register) is None


def test_an_expiry_warning_counts_at_least_one_day_and_none_once_the_window_ended() -> None:
    # a day begun counts whole: told 6 with 6 days and 23 hours left, a partner lost one
    assert expiry_warning_days(NOW + timedelta(days=6, hours=23), NOW) == 7
    assert expiry_warning_days(NOW + timedelta(days=7), NOW) == 7
    assert expiry_warning_days(NOW + timedelta(hours=3), NOW) == 1
    assert expiry_warning_days(NOW, NOW) is None
    assert expiry_warning_days(NOW - timedelta(seconds=1), NOW) is None


def test_the_extensions_left_are_the_policys_and_only_an_approved_one_has_any() -> None:
    assert extensions_left(3, 1, S.APPROVED) == 2
    assert extensions_left(1, 1, S.APPROVED) == 0
    assert extensions_left(1, 4, S.APPROVED) == 0  # a policy lowered since
    assert extensions_left(3, 0, S.PENDING_REVIEW) == 0


def test_a_merge_moving_a_closed_registration_tells_no_one() -> None:
    for closed in (S.WON, S.LOST, S.EXPIRED, S.REJECTED):
        assert not merge_is_told(LedgerWhat.MERGED, closed)
    for live in (S.APPROVED, S.PENDING_REVIEW):
        assert merge_is_told(LedgerWhat.MERGED, live)
    assert merge_is_told(LedgerWhat.CLOSED, S.WON)  # a win itself is told
