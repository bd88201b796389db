"""Deals' trust rules: what a CRM link must agree with before it is made or trusted, and what
a partner is told of a conflict (its kind and the policy reason, never who or what it is with)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from services.deals.domain.customers import Customer
from services.deals.domain.disclosure import conflicts_seen, inputs_seen, reasons_seen
from services.deals.domain.links import (
    DIFFERS_FROM_CRM,
    CrmDealSeen,
    LinkVerdict,
    decided_with_link,
    linkable,
    verify_link,
)
from services.deals.domain.rules import (
    Decision,
    ExistingRegistration,
    OpenOpportunity,
    PartnerConflictPolicy,
    PartnerView,
    RulesOfEngagement,
    check_registration,
)
from shared.errors import Conflict
from shared.events.crm import DealStatus
from shared.events.partners import PartnerStatus
from shared.events.registrations import ConflictInfo
from shared.events.registrations import RegistrationStatus as S
from tests.support.registrations import NOW, existing, request

CUSTOMER = Customer.parse("Northwind Traders Ltd.", "https://www.northwind.com")
KEY = "salesforce:006A"
TOLERANCE = Decimal("0.05")


def deal(**overrides: object) -> CrmDealSeen:
    values: dict[str, object] = {
        "deal_key": KEY,
        "customer": Customer.parse("Northwind Traders", "northwind.com"),
        "amount": Decimal("40000"),
        "currency": "USD",
    }
    values.update(overrides)
    return CrmDealSeen(**values)  # type: ignore[arg-type]


def verdict(
    found: CrmDealSeen | None,
    *,
    amount: str = "40000",
    holders: tuple[S, ...] = (),
    submitted_at: datetime | None = None,
    for_partner: bool = False,
) -> LinkVerdict:
    return verify_link(
        KEY,
        CUSTOMER,
        Decimal(amount),
        "USD",
        found,
        holders,
        0.88,
        TOLERANCE,
        submitted_at,
        for_partner=for_partner,
    )


def test_a_customer_alike_by_name_on_another_domain_goes_to_review() -> None:
    """Found in review: a name-only match linked Deutsche Bank's registration to Deutsche
    Bahn's deal (the conflict check reviews the same pair), and the partner became its
    sourcing partner, turning away the partner that held Deutsche Bahn."""
    other_domain = deal(customer=Customer.parse("Northwind Traders", "northwind-shipping.com"))
    answer = verdict(other_domain)
    assert answer.review is True
    assert "matches by name only and its domain (northwind-shipping.com)" in answer.reason
    assert answer.partner_reason == DIFFERS_FROM_CRM
    # Without a domain on the CRM's side, the name is all there is to go by.
    assert verdict(deal(customer=Customer.parse("Northwind Traders", None))).review is False


def test_a_partner_hears_neither_the_crms_figures_nor_which_refusal_it_met() -> None:
    """Found in review: the refusals told a partner guessing keys that another partner's
    registration held a deal, or that a rep had closed it (with the outcome and its time), and
    a review's reason gave the CRM's amount, even on a rejection."""
    refusals = set()
    for found, holders in (
        (None, ()),
        (deal(customer=Customer.parse("Contoso", "contoso.com")), ()),
        (deal(), (S.APPROVED,)),
        (deal(status=DealStatus.WON, closed_at=NOW), ()),
    ):
        with pytest.raises(Conflict) as refused:
            verdict(found, holders=holders, for_partner=True)
        refusals.add(str(refused.value))
    assert len(refusals) == 1
    differs = verdict(deal(), amount="10", for_partner=True)
    assert differs.review is True
    assert "40000" in differs.reason
    assert "40000" not in differs.partner_reason
    assert verdict(deal(currency="EUR"), for_partner=True).partner_reason == DIFFERS_FROM_CRM


def test_a_link_agreeing_with_the_crm_is_trusted() -> None:
    assert verdict(deal()) == LinkVerdict(False, f"linked to CRM deal {KEY}")
    # The customer may match by name, as the conflict check matches it.
    by_name = deal(customer=Customer.parse("NORTHWIND TRADERS, INC", None))
    assert verdict(by_name).review is False
    assert verdict(deal(), amount="41999").review is False  # within 5%


@pytest.mark.parametrize(
    "found",
    [
        None,
        deal(deleted=True),
        deal(customer=Customer.parse("Contoso", "contoso.com")),
        deal(customer=Customer.parse(None, None)),
    ],
)
def test_an_unknown_or_another_customers_deal_is_refused_alike(found: CrmDealSeen | None) -> None:
    with pytest.raises(Conflict, match=f"^no CRM deal {KEY} for this registration's customer$"):
        verdict(found)


@pytest.mark.parametrize("holder", [S.SUBMITTED, S.APPROVED, S.PENDING_REVIEW, S.WON])
def test_a_deal_another_registration_holds_is_refused(holder: S) -> None:
    with pytest.raises(Conflict, match="already linked to another registration"):
        verdict(deal(), holders=(S.REJECTED, holder))


def test_a_deal_only_released_registrations_were_linked_to_may_be_linked() -> None:
    assert verdict(deal(), holders=(S.REJECTED, S.EXPIRED, S.LOST)).review is False


@pytest.mark.parametrize(
    ("found", "amount", "why"),
    [
        (deal(), "42001", "differs from CRM deal salesforce:006A's 40000 by more than 5%"),
        (deal(), "10", "differs from CRM deal"),
        (deal(currency="EUR"), "40000", "declared currency USD differs"),
        (deal(amount=None), "40000", "has no amount to reconcile"),
    ],
)
def test_an_amount_the_crm_disagrees_with_goes_to_review(
    found: CrmDealSeen, amount: str, why: str
) -> None:
    answer = verdict(found, amount=amount)
    assert answer.review is True
    assert why in answer.reason


@pytest.mark.parametrize("outcome", [DealStatus.WON, DealStatus.LOST])
def test_a_deal_closed_before_the_registration_was_submitted_is_refused(
    outcome: DealStatus,
) -> None:
    """Found from outside: a partner registered a customer naming a deal a direct rep had
    already won, and took its sourcing credit. A registration after the outcome sourced
    nothing."""
    closed = deal(status=outcome, closed_at=NOW)
    why = re.escape(
        f"CRM deal {KEY} closed {outcome.value} at {NOW.isoformat()}, before this registration"
        " was submitted: a registration submitted after its deal closed cannot source it"
    )
    with pytest.raises(Conflict, match=f"^{why}$"):
        verdict(closed)  # being submitted now
    with pytest.raises(Conflict, match=f"^{why}$"):
        verdict(closed, submitted_at=NOW + timedelta(seconds=1))
    with pytest.raises(Conflict, match="before this registration was submitted"):
        verdict(deal(status=outcome), submitted_at=NOW)  # when it closed is unknown


def test_a_deal_closed_after_the_registration_was_submitted_closes_it_with_the_link() -> None:
    closed = deal(status=DealStatus.WON, closed_at=NOW)
    early = NOW - timedelta(days=3)
    assert verdict(closed, submitted_at=early) == LinkVerdict(
        False, f"linked to CRM deal {KEY}", DealStatus.WON
    )
    assert verdict(closed, submitted_at=early, amount="60000").closed is DealStatus.WON
    assert verdict(deal(), submitted_at=early).closed is None


def test_only_a_live_unlinked_registration_is_linked() -> None:
    assert linkable(S.APPROVED, None, KEY) is True
    assert linkable(S.PENDING_REVIEW, KEY, KEY) is False  # already linked there: nothing to do
    with pytest.raises(Conflict, match="already linked to CRM deal salesforce:006B"):
        linkable(S.APPROVED, "salesforce:006B", KEY)
    for closed in (S.REJECTED, S.EXPIRED, S.WON, S.LOST):
        with pytest.raises(Conflict, match="only a live registration"):
            linkable(closed, None, KEY)


def test_an_approval_whose_link_goes_to_review_is_pending_review() -> None:
    approved = Decision(S.APPROVED, ("ok",), (), "v1", NOW, ("ok",))
    review = decided_with_link(approved, LinkVerdict(True, "amounts differ: review"))
    assert (review.status, review.reasons, review.partner_reasons) == (
        S.PENDING_REVIEW,
        ("ok", "amounts differ: review"),
        ("ok", "amounts differ: review"),
    )
    rejected = Decision(S.REJECTED, ("no",), (), "v1", None, ("no",))
    assert decided_with_link(rejected, LinkVerdict(True, "review")).status is S.REJECTED
    assert decided_with_link(approved, LinkVerdict(False, "linked")).status is S.APPROVED
    assert decided_with_link(approved, None) is approved


# ---- Need to know.

PARTNER = PartnerView(
    "p-1", PartnerStatus.ACTIVE, "silver", frozenset({"US"}), frozenset({"data", "ai"})
)


HELD = existing(
    registration_id="reg-rival",
    partner_id="p-rival",
    registered_at=NOW - timedelta(days=3),
    expires_at=NOW + timedelta(days=87),
)
DIRECT = OpenOpportunity(
    "salesforce:006REP", "rep-dana", "Northwind Traders", "northwind.com", NOW - timedelta(days=1)
)
SECRETS = ("p-rival", "reg-rival", "rep-dana", "salesforce:006REP", HELD.registered_at.isoformat())


@pytest.mark.parametrize(
    ("policy", "registrations", "opportunities", "told"),
    [
        (
            RulesOfEngagement(),
            [HELD],
            [],
            "conflict with another partner: the customer is already registered",
        ),
        (
            RulesOfEngagement(partner_conflict=PartnerConflictPolicy.ESCALATE),
            [HELD],
            [],
            "possible conflict with another partner: escalated for review",
        ),
        (RulesOfEngagement(), [], [DIRECT], "direct sales: the vendor's own sales team"),
        (
            RulesOfEngagement(direct_conflict_reviews=False),
            [],
            [DIRECT],
            "direct conflicts are not reviewed",
        ),
    ],
)
def test_a_partner_is_told_the_kind_of_conflict_and_managers_the_evidence(
    policy: RulesOfEngagement,
    registrations: list[ExistingRegistration],
    opportunities: list[OpenOpportunity],
    told: str,
) -> None:
    decision = check_registration(policy, request(), PARTNER, registrations, opportunities)
    assert decision.conflicts
    assert any(told in reason for reason in decision.partner_reasons)
    assert not [s for s in SECRETS for r in decision.partner_reasons if s in r]
    full = " ".join(decision.reasons)
    assert any(s in full for s in SECRETS)


def test_reasons_without_a_conflict_are_told_as_they_are() -> None:
    decision = check_registration(RulesOfEngagement(), request(), PARTNER, [], [])
    assert decision.partner_reasons == decision.reasons


CONFLICT = ConflictInfo(
    kind="partner",
    reference="reg-rival",
    party="p-rival",
    matched_on="name",
    similarity=0.93,
    registered_at=NOW,
)


def test_a_partner_sees_a_conflicts_kind_and_a_manager_all_of_it() -> None:
    [seen] = conflicts_seen([CONFLICT], partner=True)
    assert (seen.kind, seen.summary, seen.matched_on) == (
        "partner",
        "conflict with another partner",
        "name",
    )
    assert (seen.reference, seen.party, seen.similarity, seen.registered_at) == (None,) * 4
    [full] = conflicts_seen([CONFLICT], partner=False)
    assert (full.reference, full.party, full.similarity, full.registered_at) == (
        "reg-rival",
        "p-rival",
        0.93,
        NOW,
    )


def test_stored_reasons_a_partner_sees() -> None:
    full = ["customer already registered (registration reg-rival by p-rival)"]
    assert reasons_seen(full, ["told"], [CONFLICT], partner=True) == ["told"]
    assert reasons_seen(full, ["told"], [CONFLICT], partner=False) == full
    # Decided before the partner's reasons were kept: only the kinds of the conflicts.
    assert reasons_seen(full, None, [CONFLICT, CONFLICT], partner=True) == [
        "conflict with another partner"
    ]
    assert reasons_seen(["fine"], None, [], partner=True) == ["fine"]


def test_stored_inputs_a_partner_sees() -> None:
    inputs = {"request": {"partner_id": "p-1"}, "conflicts_considered": [CONFLICT.model_dump()]}
    assert inputs_seen(inputs, partner=True) == {
        "request": {"partner_id": "p-1"},
        "conflicts_considered": [{"kind": "partner", "summary": "conflict with another partner"}],
    }
    assert inputs_seen(inputs, partner=False) is inputs


def test_a_merge_never_names_the_registration_holding_the_survivor_to_a_partner() -> None:
    evidence = {"merged_into": "salesforce:006S", "held_by": "reg-winner"}
    assert inputs_seen(evidence, partner=True) == {"merged_into": "salesforce:006S"}
    assert inputs_seen(evidence, partner=False)["held_by"] == "reg-winner"
