"""Onboarding's rules about changing a partner: what a change is published as and who is told,
a channel manager's status decisions, what a requalification verdict sets, the checklist,
who may be reviewed, certified or hold a token, and how credits count."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.onboarding.domain.checklist import NEVER, checklist_item, submit_evidence, tick
from services.onboarding.domain.config import OnboardingConfig, QualificationConfig
from services.onboarding.domain.credits import check_reporting_currency, first_occurrences
from services.onboarding.domain.lifecycle import (
    TRANSITIONS,
    Change,
    IllegalTransition,
    check_awaiting_review,
    check_may_be_certified,
    check_may_hold_token,
    manual_status_change,
    notification_kind,
)
from services.onboarding.domain.requalification import (
    Action,
    Verdict,
    authorisation_change,
    evaluate,
    verdict_change,
)
from services.onboarding.domain.tiers import certification_track, revenue_in_window
from services.onboarding.domain.verification import (
    check_may_verify,
    domain_state,
    expected_record,
    held_domain,
    proves,
)
from shared.errors import Conflict, Forbidden, Unprocessable
from shared.events import InvalidEvent
from shared.events.notifications import NotificationKind
from shared.events.partners import PartnerChange
from shared.events.partners import PartnerStatus as S
from tests.support.onboarding import NOW, SMALL, standing

CONFIG = OnboardingConfig()
ITEMS = CONFIG.checklist  # agreement_signed, profile_complete, first_enablement_done


# ---- what a change is published as, and who is told


def test_every_change_is_published_under_its_own_name_but_grace_cleared() -> None:
    for change in Change:
        if change is Change.GRACE_CLEARED:
            assert change.published is PartnerChange.UPDATED
        else:
            assert change.published.value == change.value
    # Every change the contract knows can be made.
    assert {c.published for c in Change} == set(PartnerChange)


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        (Change.TIER_CHANGED, NotificationKind.TIER_CHANGED),
        (Change.GRACE_STARTED, NotificationKind.REQUALIFICATION),
        (Change.GRACE_CLEARED, NotificationKind.REQUALIFICATION),
        (Change.DEMOTED, NotificationKind.REQUALIFICATION),
    ],
)
def test_tier_and_requalification_news_have_their_own_kind(
    change: Change, kind: NotificationKind
) -> None:
    assert notification_kind(change, S.ACTIVE, S.ACTIVE) is kind
    assert notification_kind(change, S.GRACE, S.ACTIVE) is kind


def test_other_changes_are_told_only_when_the_status_moves() -> None:
    assert notification_kind(Change.ACTIVATED, S.ONBOARDING, S.ACTIVE) is (
        NotificationKind.PARTNER_STATUS
    )
    assert notification_kind(Change.SUSPENDED, S.GRACE, S.SUSPENDED) is (
        NotificationKind.PARTNER_STATUS
    )
    assert notification_kind(Change.UPDATED, S.ONBOARDING, S.ONBOARDING) is None
    assert notification_kind(Change.AUTHORISATIONS_CHANGED, S.ACTIVE, S.ACTIVE) is None
    assert notification_kind(Change.APPLIED, S.APPLIED, S.APPLIED) is None


# ---- a channel manager's status decisions


def manual(
    current: S, target: S, completed: dict[str, str] | None = None
) -> tuple[Change, dict[str, object]]:
    return manual_status_change(
        "ptn_1", current, target, checklist=ITEMS, completed=completed or {}, at=NOW
    )


def test_a_manual_suspension_is_marked_as_such_and_ends_grace() -> None:
    assert manual(S.GRACE, S.SUSPENDED) == (
        Change.SUSPENDED,
        {
            "status": "suspended",
            "suspended_at": NOW,
            "suspended_by_requalification": False,
            "grace_until": None,
        },
    )


def test_expulsion_and_reinstatement() -> None:
    assert manual(S.ACTIVE, S.EXPELLED) == (
        Change.EXPELLED,
        {"status": "expelled", "grace_until": None},
    )
    change, fields = manual(S.SUSPENDED, S.ACTIVE)
    assert change is Change.REINSTATED
    assert fields["suspended_at"] is None
    assert fields["suspended_by_requalification"] is False
    assert manual(S.GRACE, S.ACTIVE)[0] is Change.UPDATED
    # Back from expulsion: onboarding again, checklist and agreement start over.
    change, fields = manual(S.EXPELLED, S.ONBOARDING)
    assert change is Change.REINSTATED
    assert (fields["checklist"], fields["agreement_valid_until"]) == ({}, None)


def test_an_incomplete_onboarding_is_not_activated_by_hand() -> None:
    with pytest.raises(Conflict) as refused:
        manual(S.ONBOARDING, S.ACTIVE, {"agreement_signed": NOW.isoformat()})
    assert refused.value.message == (
        "partner ptn_1 becomes active when its checklist is complete; missing: "
        "profile_complete, first_enablement_done"
    )


def test_qualification_outcomes_are_not_set_by_hand() -> None:
    with pytest.raises(Conflict, match="is decided by qualification"):
        manual(S.APPLIED, S.QUALIFIED)


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("target", [S.ACTIVE, S.SUSPENDED, S.EXPELLED, S.ONBOARDING])
def test_a_manual_step_outside_the_lifecycle_is_an_illegal_transition(
    current: S, target: S
) -> None:
    if target in TRANSITIONS[current]:
        return
    with pytest.raises(IllegalTransition) as refused:
        manual(current, target)
    assert isinstance(refused.value, Conflict)  # answered 409


# ---- who may be reviewed, certified or hold a token


def test_only_an_application_waiting_for_a_manager_is_decided() -> None:
    # A recommended approval waits for a manager too: self-declared figures approve no one.
    check_awaiting_review("ptn_1", S.APPLIED, "review")
    check_awaiting_review("ptn_1", S.APPLIED, "approve")
    for status, outcome in (
        (S.APPLIED, "reject"),
        (S.ONBOARDING, "review"),
        (S.ONBOARDING, "approve"),
        (S.REJECTED, "reject"),
    ):
        with pytest.raises(Conflict, match="is not waiting for review"):
            check_awaiting_review("ptn_1", status, outcome)


@pytest.mark.parametrize("status", list(S))
def test_certifications_and_tokens_follow_the_status(status: S) -> None:
    if status in (S.REJECTED, S.EXPELLED):
        with pytest.raises(Conflict, match=f"is {status.value}: no certifications recorded"):
            check_may_be_certified("ptn_1", status)
    else:
        check_may_be_certified("ptn_1", status)
    if status in (S.APPLIED, S.REJECTED):
        with pytest.raises(Conflict, match="tokens are issued once qualified"):
            check_may_hold_token("ptn_1", status)
    elif status in (S.SUSPENDED, S.EXPELLED):
        with pytest.raises(Conflict, match=f"is {status.value}: it holds no tokens"):
            check_may_hold_token("ptn_1", status)
    else:
        check_may_hold_token("ptn_1", status)


# ---- what a requalification verdict sets


def test_a_cured_grace_is_grace_cleared_unless_the_tier_grew() -> None:
    kept = standing(status=S.GRACE, grace_until=NOW + timedelta(days=3))
    change, fields = verdict_change(SMALL, "ptn_1", kept, evaluate(SMALL, kept, NOW), NOW)
    assert change is Change.GRACE_CLEARED
    assert (fields["status"], fields["tier"], fields["grace_until"]) == ("active", "silver", None)
    grown = standing(status=S.GRACE, revenue=Decimal(6000), grace_until=NOW + timedelta(days=3))
    change, fields = verdict_change(SMALL, "ptn_1", grown, evaluate(SMALL, grown, NOW), NOW)
    assert (change, fields["tier"]) == (Change.TIER_CHANGED, "gold")


def test_a_requalification_suspension_is_marked_and_its_reinstatement_clears_it() -> None:
    lapsed = standing(
        status=S.GRACE, agreement_valid_until=None, grace_until=NOW - timedelta(days=1)
    )
    change, fields = verdict_change(SMALL, "ptn_1", lapsed, evaluate(SMALL, lapsed, NOW), NOW)
    assert change is Change.SUSPENDED
    assert (fields["suspended_at"], fields["suspended_by_requalification"]) == (NOW, True)
    suspended = standing(status=S.SUSPENDED, suspended_at=NOW, suspended_by_requalification=True)
    change, fields = verdict_change(SMALL, "ptn_1", suspended, evaluate(SMALL, suspended, NOW), NOW)
    assert change is Change.REINSTATED
    assert (fields["suspended_at"], fields["suspended_by_requalification"]) == (None, False)
    assert fields["policy_version"] == SMALL.version


def test_a_verdict_outside_the_lifecycle_is_refused() -> None:
    verdict = Verdict(Action.PROMOTE, S.ACTIVE, "gold", None, ("grown",))
    with pytest.raises(IllegalTransition):
        verdict_change(SMALL, "ptn_1", standing(status=S.EXPELLED), verdict, NOW)


def test_authorisations_changed_only_when_the_products_do() -> None:
    data, both = frozenset({"data"}), frozenset({"data", "ai"})
    assert authorisation_change(data, data, both, both) is Change.AUTHORISATIONS_CHANGED
    assert authorisation_change(data, data, both, data) is Change.UPDATED
    assert authorisation_change(both, data, both, data) is None


# ---- the checklist


# A channel manager completing an item, with the evidence's reference where it needs one.
MANAGER = {"by": "alice@vendor", "confirms": True, "reference": "docusign:env-1"}
PARTNER = {"by": "ptn_1/app (ptn_1)", "confirms": False}


def test_items_are_ticked_while_onboarding_and_the_last_activates() -> None:
    first = tick(CONFIG, "ptn_1", S.ONBOARDING, {}, "profile_complete", NOW, **PARTNER)
    assert (first.done, first.activates, first.renewal) == (1, False, False)
    assert first.fields == {"checklist": {"profile_complete": NOW.isoformat()}}
    done = {item: NOW.isoformat() for item in ITEMS[:-1]}
    last = tick(CONFIG, "ptn_1", S.ONBOARDING, done, ITEMS[-1], NOW, **MANAGER)
    assert (last.done, last.activates) == (3, True)


def test_signing_the_agreement_sets_its_term_and_renews_it_in_the_program() -> None:
    signed = tick(CONFIG, "ptn_1", S.ONBOARDING, {}, "agreement_signed", NOW, **MANAGER)
    assert signed.fields["agreement_valid_until"] == NOW + timedelta(days=365)
    forever = OnboardingConfig(agreement_term_days=None)
    assert (
        tick(forever, "ptn_1", S.ONBOARDING, {}, "agreement_signed", NOW, **MANAGER).fields[
            "agreement_valid_until"
        ]
        == NEVER
    )
    for status in (S.ACTIVE, S.GRACE, S.SUSPENDED):
        renewed = tick(CONFIG, "ptn_1", status, {}, "agreement_signed", NOW, **MANAGER)
        assert (renewed.renewal, renewed.activates) == (True, False)


def test_an_item_completed_again_while_onboarding_changes_nothing() -> None:
    """Each repeat made a new version and event and overwrote the first evidence (found from
    outside)."""
    done = {"agreement_signed": NOW.isoformat()}
    evidence = {"agreement_signed": {"reference": "docusign:env-1", "confirmed_by": "alice"}}
    later = NOW + timedelta(days=1)
    again = tick(
        CONFIG, "ptn_1", S.ONBOARDING, done, "agreement_signed", later, evidence=evidence, **MANAGER
    )
    assert (again.fields, again.completed, again.done, again.activates) == ({}, done, 1, False)
    unnamed = MANAGER | {"reference": None}
    assert not tick(
        CONFIG, "ptn_1", S.ONBOARDING, done, "agreement_signed", later, evidence=evidence, **unnamed
    ).fields
    with pytest.raises(Conflict, match=r"completed at .* with evidence docusign:env-1"):
        tick(
            CONFIG,
            "ptn_1",
            S.ONBOARDING,
            done,
            "agreement_signed",
            later,
            evidence=evidence,
            **(MANAGER | {"reference": "docusign:env-2"}),
        )
    ticked = {"profile_complete": NOW.isoformat()}
    assert not tick(
        CONFIG, "ptn_1", S.ONBOARDING, ticked, "profile_complete", later, **PARTNER
    ).fields


@pytest.mark.parametrize("item", ["agreement_signed", "first_enablement_done"])
def test_a_partner_cannot_complete_an_evidence_item_by_its_own_tick(item: str) -> None:
    done = {i: NOW.isoformat() for i in ITEMS if i != item}
    evidence = {item: {"reference": "ref-1", "submitted_by": "ptn_1/app (ptn_1)"}}
    for status in (S.ONBOARDING, S.ACTIVE) if item == "agreement_signed" else (S.ONBOARDING,):
        with pytest.raises(Forbidden, match="channel manager or the enablement system"):
            tick(CONFIG, "ptn_1", status, done, item, NOW, evidence=evidence, **PARTNER)
        with pytest.raises(Forbidden):
            tick(CONFIG, "ptn_1", status, done, item, NOW, reference="mine", **PARTNER)


def test_a_confirmer_completes_an_evidence_item_on_the_submitted_evidence_or_its_own() -> None:
    submitted = submit_evidence(
        CONFIG,
        "ptn_1",
        S.ONBOARDING,
        {},
        {},
        "first_enablement_done",
        reference="lms:course-7",
        by="ptn_1/ada (ptn_1)",
        at=NOW,
    )
    assert submitted == {
        "first_enablement_done": {
            "reference": "lms:course-7",
            "submitted_by": "ptn_1/ada (ptn_1)",
            "submitted_at": NOW.isoformat(),
        }
    }
    system = {"by": "enablement", "confirms": True}
    later = NOW + timedelta(hours=1)
    confirmed = tick(
        CONFIG,
        "ptn_1",
        S.ONBOARDING,
        {},
        "first_enablement_done",
        later,
        evidence=submitted,
        **system,
    )
    assert confirmed.fields["checklist_evidence"] == {
        "first_enablement_done": {
            **submitted["first_enablement_done"],
            "confirmed_by": "enablement",
            "confirmed_at": later.isoformat(),
        }
    }
    own = tick(CONFIG, "ptn_1", S.ONBOARDING, {}, "agreement_signed", NOW, **MANAGER)
    assert own.fields["checklist_evidence"] == {
        "agreement_signed": {
            "reference": "docusign:env-1",
            "confirmed_by": "alice@vendor",
            "confirmed_at": NOW.isoformat(),
        }
    }
    with pytest.raises(Unprocessable, match="agreement_signed has no evidence"):
        tick(CONFIG, "ptn_1", S.ONBOARDING, {}, "agreement_signed", NOW, **system)


def test_evidence_is_for_evidence_items_while_they_may_change() -> None:
    with pytest.raises(Unprocessable, match="profile_complete needs no evidence"):
        submit_evidence(
            CONFIG, "ptn_1", S.ONBOARDING, {}, {}, "profile_complete", reference="x", by="p", at=NOW
        )
    with pytest.raises(Conflict, match="partner ptn_1 is applied"):
        submit_evidence(
            CONFIG, "ptn_1", S.APPLIED, {}, {}, "agreement_signed", reference="x", by="p", at=NOW
        )
    with pytest.raises(ValueError, match="evidence_items name items not on the checklist"):
        OnboardingConfig(evidence_items=("teleport",))


def test_target_regions_are_country_codes_as_applications_give_them() -> None:
    """Found in review: `de` loaded, and no application's `DE` ever met it."""
    with pytest.raises(ValueError, match="target_regions names country 'de' is not an ISO"):
        QualificationConfig(target_regions=("de", "FR"))


def test_evidence_for_an_item_completed_while_onboarding_keeps_its_confirmation() -> None:
    """Found from outside: a submission replaced the confirmed record of a completed item."""
    item = "first_enablement_done"
    completed = {item: NOW.isoformat()}
    confirmed = {item: {"reference": "lms:1", "confirmed_by": "enablement", "confirmed_at": "t"}}
    again = {"reference": "lms:1", "by": "ptn_1/ada (ptn_1)", "at": NOW}
    assert (
        submit_evidence(CONFIG, "ptn_1", S.ONBOARDING, completed, confirmed, item, **again) is None
    )
    with pytest.raises(Conflict) as refused:
        submit_evidence(
            CONFIG,
            "ptn_1",
            S.ONBOARDING,
            completed,
            confirmed,
            item,
            **(again | {"reference": "lms:2"}),
        )
    assert refused.value.message == (
        f"{item} was completed at {NOW.isoformat()} with evidence lms:1: while onboarding an "
        "item is completed once"
    )
    renewed = submit_evidence(
        CONFIG,
        "ptn_1",
        S.ACTIVE,
        {"agreement_signed": NOW.isoformat()},
        {"agreement_signed": confirmed[item]},
        "agreement_signed",
        **(again | {"reference": "docusign:renewal"}),
    )
    assert renewed is not None
    assert renewed["agreement_signed"]["reference"] == "docusign:renewal"


@pytest.mark.parametrize("status", [S.APPLIED, S.ACTIVE, S.EXPELLED, S.REJECTED])
def test_other_items_are_refused_outside_onboarding(status: S) -> None:
    with pytest.raises(Conflict) as refused:
        tick(CONFIG, "ptn_1", status, {}, "profile_complete", NOW, **MANAGER)
    assert refused.value.message.startswith(f"partner ptn_1 is {status.value}: checklist items")


def test_unknown_items_and_tracks_are_unprocessable() -> None:
    assert checklist_item(CONFIG, "profile_complete") == "profile_complete"
    with pytest.raises(Unprocessable) as refused:
        checklist_item(CONFIG, "teleport")
    assert refused.value.message == (
        "unknown checklist item 'teleport'; items are agreement_signed, profile_complete, "
        "first_enablement_done"
    )
    assert certification_track(SMALL, "ai") == "ai"
    with pytest.raises(
        Unprocessable, match="unknown certification track 'cloud'; tracks are ai, data"
    ):
        certification_track(SMALL, "cloud")


# ---- credits


def test_credits_count_only_in_the_reporting_currency() -> None:
    check_reporting_currency(CONFIG, "credit c1", "USD")
    with pytest.raises(InvalidEvent) as refused:
        check_reporting_currency(CONFIG, "credit c1", "EUR")
    assert str(refused.value) == (
        "credit c1 is in EUR; onboarding's tier thresholds are in the reporting currency USD"
    )


@given(st.lists(st.sampled_from("abcde"), max_size=30))
def test_a_run_counts_each_key_once_at_its_first_place(keys: list[str]) -> None:
    first = first_occurrences(keys)
    assert set(first) == set(keys)
    for key, index in first.items():
        assert keys[index] == key
        assert key not in keys[:index]


def test_revenue_counts_the_days_of_the_trailing_window() -> None:
    config = OnboardingConfig(revenue_window_days=30)
    today = NOW.date()
    days = {
        today: Decimal(100),
        today - timedelta(days=29): Decimal(10),
        today - timedelta(days=30): Decimal(1000),  # just outside
        today + timedelta(days=1): Decimal(5000),  # not closed yet as of now
        date(2020, 1, 1): Decimal(-7),
    }
    assert revenue_in_window(config, days, NOW) == Decimal(110)
    assert revenue_in_window(config, {}, NOW) == Decimal(0)


# ---- domain ownership


def test_only_the_exact_token_proves_a_domain_and_only_a_held_domain_is_published() -> None:
    record = expected_record("t0k")
    assert record == "pollinate-verification=t0k"
    assert proves(["v=spf1 -all", f' "{record}" '], "t0k")
    assert not proves(["pollinate-verification=t0k2", "t0k", ""], "t0k")
    assert (domain_state(None), domain_state(NOW)) == ("claimed", "held")
    assert held_domain("partner.example", None) is None
    assert held_domain("partner.example", NOW) == "partner.example"
    check_may_verify("ptn_1", S.ONBOARDING)
    for status in (S.REJECTED, S.EXPELLED):
        with pytest.raises(Conflict, match="holds no domain"):
            check_may_verify("ptn_1", status)


def test_a_renewal_needs_evidence_newer_than_the_last_confirmed() -> None:
    """Found in review: the agreement renewed with no body confirmed the term before's envelope
    for a whole new term; a reinstated partner's items were completed on its old evidence."""
    confirmed = {
        "agreement_signed": {
            "reference": "envelope-2026",
            "submitted_at": (NOW - timedelta(days=400)).isoformat(),
            "confirmed_by": "alice",
            "confirmed_at": (NOW - timedelta(days=399)).isoformat(),
        }
    }
    unnamed = MANAGER | {"reference": None}
    with pytest.raises(Unprocessable, match="its evidence envelope-2026 was confirmed on"):
        tick(CONFIG, "ptn_1", S.ACTIVE, {}, "agreement_signed", NOW, evidence=confirmed, **unnamed)
    # New evidence: the confirmer's own, or the partner's submitted since.
    named = MANAGER | {"reference": "envelope-2027"}
    assert tick(
        CONFIG, "ptn_1", S.ACTIVE, {}, "agreement_signed", NOW, evidence=confirmed, **named
    ).renewal
    resubmitted = {
        "agreement_signed": confirmed["agreement_signed"]
        | {"reference": "envelope-2027", "submitted_at": (NOW - timedelta(days=1)).isoformat()}
    }
    assert tick(
        CONFIG, "ptn_1", S.ACTIVE, {}, "agreement_signed", NOW, evidence=resubmitted, **unnamed
    ).renewal


def test_a_partner_back_from_expulsion_starts_its_checklist_and_its_evidence_over() -> None:
    change, fields = manual_status_change(
        "ptn_1", S.EXPELLED, S.ONBOARDING, checklist=ITEMS, completed={}, at=NOW
    )
    assert change is Change.REINSTATED
    assert (fields["checklist"], fields["checklist_evidence"]) == ({}, {})
