"""Governance rules of registrations (pure): who a ledger entry names to whom, what a close does
to a registration awaiting review, what each change tells."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.deals.domain.cooldown import live_repeat, repeat_refusal
from services.deals.domain.ledger import LedgerWhat, PrincipalKind, entry_seen, principal_seen
from services.deals.domain.lifecycle import (
    close_with_opportunity,
    review_outcome,
    status_notification,
)
from services.deals.domain.rules import (
    MissingCountryPolicy,
    check_registration,
)
from shared.events.crm import DealStatus
from shared.events.notifications import NotificationKind, NotificationKindV2
from shared.events.registrations import RegistrationStatus as S
from tests.support.registrations import ACTIVE, NOW, POLICY, existing, request

ROW = {
    "seq": 7,
    "at": datetime(2026, 3, 1, tzinfo=UTC),
    "what": "decided",
    "previous_status": None,
    "status": "pending_review",
    "principal_kind": "manager",
    "principal": "cm@vendor",
    "policy_version": "v1",
    "reasons": ["direct-sales conflict: open direct opportunity sf:9 owned by rep-1"],
    "partner_reasons": ["direct sales: escalated for review"],
}
EVIDENCE = {
    "request": {"customer_name": "Acme"},
    "conflicts_considered": [{"kind": "direct_sales", "reference": "sf:9", "party": "rep-1"}],
}


def test_a_partner_reads_what_it_was_told_and_no_managers_or_reps_identity() -> None:
    seen = entry_seen(ROW, EVIDENCE, partner=True)
    assert seen.principal is None
    assert seen.reasons == ["direct sales: escalated for review"]
    assert seen.evidence["conflicts_considered"] == [
        {"kind": "direct_sales", "summary": "direct sales"}
    ]
    assert "rep-1" not in str(seen)


def test_a_channel_manager_reads_everything() -> None:
    seen = entry_seen(ROW, EVIDENCE, partner=False)
    assert seen.principal == "cm@vendor"
    assert seen.reasons == ROW["reasons"]
    assert seen.evidence == EVIDENCE


def test_a_partner_sees_its_own_id_the_job_and_the_crm_opportunity() -> None:
    for kind, name in (
        (PrincipalKind.PARTNER, "p-1"),
        (PrincipalKind.SYSTEM, "expiry"),
        (PrincipalKind.CRM, "salesforce:1"),
    ):
        assert principal_seen(kind, name, partner=True) == name


def test_a_close_while_awaiting_review_is_not_a_stale_rejection() -> None:
    assert close_with_opportunity(S.PENDING_REVIEW, "sf:1", DealStatus.LOST)[0] is S.LOST
    status, reason = close_with_opportunity(S.PENDING_REVIEW, "sf:1", DealStatus.WON)
    assert status is S.PENDING_REVIEW
    assert "the review decides it" in reason
    # The review then decides knowing the outcome.
    assert review_outcome(S.PENDING_REVIEW, True, "ok", "won") == (
        S.WON,
        "manual review: ok; its linked CRM opportunity closed won",
    )
    assert review_outcome(S.PENDING_REVIEW, False, "no", "won") == (S.REJECTED, "manual review: no")


def test_every_change_has_its_notification_kind() -> None:
    assert status_notification(LedgerWhat.REVIEWED, S.APPROVED) is (
        NotificationKind.REGISTRATION_APPROVED
    )
    assert status_notification(LedgerWhat.REVIEWED, S.REJECTED) is (
        NotificationKind.REGISTRATION_REJECTED
    )
    assert status_notification(LedgerWhat.EXTENDED, S.APPROVED) is (
        NotificationKindV2.REGISTRATION_EXTENDED
    )
    assert status_notification(LedgerWhat.EXPIRED, S.EXPIRED) is NotificationKind.EXPIRED
    assert status_notification(LedgerWhat.CLOSED, S.WON) is NotificationKindV2.REGISTRATION_WON
    assert status_notification(LedgerWhat.CLOSED, S.LOST) is NotificationKindV2.REGISTRATION_LOST


def test_a_partners_repeat_on_a_live_registration_is_found_even_after_its_first_window() -> None:
    mine = existing(partner_id="p-1", registered_at=NOW - timedelta(days=100))  # extended
    assert live_repeat(POLICY, request(customer_domain=None), [mine]) == mine
    assert "reg-old" in repeat_refusal(mine)
    # Not a repeat: another partner's, another product, a window that ended, a closed one.
    assert live_repeat(POLICY, request(), [existing()]) is None
    assert live_repeat(POLICY, request(products=frozenset({"ai"})), [mine]) is None
    ended = existing(partner_id="p-1", expires_at=NOW)
    assert live_repeat(POLICY, request(), [ended]) is None
    assert live_repeat(POLICY, request(), [existing(partner_id="p-1", status=S.REJECTED)]) is None


def test_region_rules_hold_when_the_country_is_left_out() -> None:
    missing = request(customer_country=None)
    reviewed = check_registration(POLICY, missing, ACTIVE, [], [])
    assert reviewed.status is S.PENDING_REVIEW
    assert reviewed.reasons[0] == (
        "customer_country is missing and the partner is authorised for DE, US only:"
        " manual review of the region"
    )
    strict = replace(POLICY, missing_country=MissingCountryPolicy.REFUSE)
    refused = check_registration(strict, missing, ACTIVE, [], [])
    assert (refused.status, refused.reasons) == (
        S.REJECTED,
        ("customer_country is required: the partner is authorised for DE, US only",),
    )
    # A partner authorised everywhere, or a policy not enforcing regions: nothing to check.
    everywhere = replace(ACTIVE, regions=frozenset())
    assert check_registration(POLICY, missing, everywhere, [], []).status is S.APPROVED
    loose = replace(POLICY, enforce_region_authorisation=False)
    assert check_registration(loose, missing, ACTIVE, [], []).status is S.APPROVED


def test_a_partner_never_sees_the_direct_opportunities_a_decision_looked_at() -> None:
    inputs = {
        "request": {"customer_name": "Acme"},
        "partner": {"partner_id": "p-1", "tier": "gold"},
        "opportunities": [{"deal_key": "sf:9", "owner": "rep-1"}],
    }
    seen = entry_seen(ROW, inputs, partner=True)
    assert "opportunities" not in seen.evidence
    assert "rep-1" not in str(seen)
    assert entry_seen(ROW, inputs, partner=False).evidence == inputs
