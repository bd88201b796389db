"""MDF pre-approval rules: reservation arithmetic, partial claims up to the approved amount,
expiry releasing what no claim uses, and which transitions are allowed."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.incentives.domain import preapprovals
from services.incentives.domain.campaigns import (
    CampaignNotKnown,
    CampaignNotOpen,
    KnownCampaign,
    check_approvable,
    check_campaign,
    check_claimable,
    check_within,
)
from services.incentives.domain.mdf import Fund, Lot
from services.incentives.domain.preapprovals import (
    APPROVED,
    EXPIRED,
    REJECTED,
    REQUESTED,
    ZERO,
    Preapproval,
    PreapprovalConflict,
)
from shared.errors import Unprocessable

D = Decimal
AT = datetime(2026, 11, 2, 12, tzinfo=UTC)
DEADLINE = datetime(2027, 1, 31, tzinfo=UTC)


def requested(amount: str = "1000.00") -> Preapproval:
    return Preapproval("pa-1", "p-1", REQUESTED, D(amount), ZERO, ZERO, ZERO, None)


def approved(amount: str = "1000.00") -> Preapproval:
    decided = preapprovals.decide(
        requested(amount),
        approve=True,
        note="",
        available_now=D(amount),
        at=AT,
        expires_at=DEADLINE,
    )
    return decided.preapproval


def test_the_claim_deadline_is_the_end_of_the_campaign_plus_the_window() -> None:
    assert preapprovals.claim_deadline(date(2026, 11, 30), 60) == datetime(2027, 1, 30, tzinfo=UTC)
    assert preapprovals.claim_deadline(date(2026, 11, 30), 0) == datetime(2026, 12, 1, tzinfo=UTC)


def test_inverted_dates_are_refused() -> None:
    with pytest.raises(ValueError, match="ends_on 2026-11-01 is before starts_on 2026-11-02"):
        preapprovals.check_dates(date(2026, 11, 2), date(2026, 11, 1))
    preapprovals.check_dates(date(2026, 11, 2), date(2026, 11, 2))


def test_approval_reserves_the_amount_and_the_fund_shows_it_as_unavailable() -> None:
    pre = approved("1000.00")
    assert (pre.status, pre.reserved, pre.claimed, pre.expires_at) == (
        APPROVED,
        D("1000.00"),
        D(0),
        DEADLINE,
    )
    fund = Fund("p-1", D(0), [Lot("l", D("2500.00"), DEADLINE)], reserved=pre.reserved)
    assert fund.available(AT) == D("1500.00")


def test_approval_the_fund_cannot_cover_is_refused_and_changes_nothing() -> None:
    with pytest.raises(PreapprovalConflict) as refused:
        preapprovals.decide(
            requested("1000.00"),
            approve=True,
            note="",
            available_now=D("999.99"),
            at=AT,
            expires_at=DEADLINE,
        )
    assert refused.value.message == "pre-approval of 1000.00 exceeds the available fund of 999.99"


def test_approval_after_the_claim_window_closed_is_refused() -> None:
    with pytest.raises(PreapprovalConflict, match="its claim window closed"):
        preapprovals.decide(
            requested(),
            approve=True,
            note="",
            available_now=D("5000"),
            at=DEADLINE,
            expires_at=DEADLINE,
        )


def test_rejection_needs_a_reason_and_reserves_nothing() -> None:
    with pytest.raises(PreapprovalConflict, match="a rejection needs a reason"):
        preapprovals.decide(
            requested(), approve=False, note="  ", available_now=D(0), at=AT, expires_at=DEADLINE
        )
    decided = preapprovals.decide(
        requested(),
        approve=False,
        note="not our audience",
        available_now=D(0),
        at=AT,
        expires_at=DEADLINE,
    )
    assert (decided.preapproval.status, decided.preapproval.reserved, decided.reason) == (
        REJECTED,
        D(0),
        "not our audience",
    )


def test_repeating_a_decision_changes_nothing_and_the_other_decision_is_a_conflict() -> None:
    pre = approved()
    again = preapprovals.decide(
        pre, approve=True, note="", available_now=D(0), at=AT, expires_at=DEADLINE
    )
    assert again.changed is False
    assert again.preapproval == pre
    with pytest.raises(PreapprovalConflict, match="pa-1 is already approved"):
        preapprovals.decide(
            pre, approve=False, note="no", available_now=D(0), at=AT, expires_at=DEADLINE
        )


def test_partial_claims_up_to_the_approved_amount_counting_those_awaiting_a_decision() -> None:
    pre = approved("1000.00")
    preapprovals.check_claim(pre, D("600.00"), AT)
    pre = replace(pre, pending=D("600.00"))  # requested, not decided yet
    preapprovals.check_claim(pre, D("400.00"), AT)
    with pytest.raises(PreapprovalConflict) as refused:
        preapprovals.check_claim(pre, D("400.01"), AT)
    assert refused.value.message == (
        "claim of 400.01 exceeds what is left of pre-approval pa-1: 400.00 "
        "(approved 1000.00, claimed 0.00, awaiting decision 600.00)"
    )
    pre = preapprovals.claim_approved(pre, D("600.00"))
    assert (pre.reserved, pre.claimed, pre.pending, pre.claimable) == (
        D("400.00"),
        D("600.00"),
        D("0.00"),
        D("400.00"),
    )


def test_claims_need_an_approved_pre_approval_inside_its_window() -> None:
    with pytest.raises(PreapprovalConflict, match="pa-1 is requested: claims need an approved"):
        preapprovals.check_claim(requested(), D("1.00"), AT)
    with pytest.raises(PreapprovalConflict, match="stopped accepting claims"):
        preapprovals.check_claim(approved(), D("1.00"), DEADLINE)
    with pytest.raises(PreapprovalConflict, match="a claim must be for a positive amount"):
        preapprovals.check_claim(approved(), D("0.00"), AT)


def test_a_claim_past_the_deadline_is_refused_with_the_deadline_before_and_after_expiry() -> None:
    """Approved and past its deadline (the expiry job has not run yet) or expired already:
    the same reason, the moment claims stopped (was "is expired: claims need an approved
    one" once the job had run)."""
    reason = (
        "pre-approval pa-1 stopped accepting claims at 2027-01-31T00:00:00+00:00: its "
        "campaign's last day plus the claim window"
    )
    expired = preapprovals.expire(approved(), DEADLINE)
    assert expired is not None
    for pre, at in ((approved(), DEADLINE), (expired[0], AT)):
        with pytest.raises(PreapprovalConflict) as refused:
            preapprovals.check_claim(pre, D("1.00"), at)
        assert str(refused.value) == reason
    preapprovals.check_claim(approved(), D("1.00"), DEADLINE - timedelta(microseconds=1))


def test_a_rejected_claim_frees_its_amount_for_other_claims() -> None:
    pre = replace(approved("1000.00"), pending=D("300.00"))
    after, released = preapprovals.claim_rejected(pre, D("300.00"))
    assert (after.reserved, after.pending, after.claimable, released) == (
        D("1000.00"),
        D("0.00"),
        D("1000.00"),
        D(0),
    )


def test_expiry_releases_what_no_pending_claim_asks_for() -> None:
    pre = replace(
        preapprovals.claim_approved(replace(approved(), pending=D("200")), D("200")),
        pending=D("300.00"),
    )
    assert preapprovals.expire(pre, DEADLINE - timedelta(seconds=1)) is None
    expired = preapprovals.expire(pre, DEADLINE)
    assert expired is not None
    after, released = expired
    assert (after.status, after.reserved, after.claimed, released) == (
        EXPIRED,
        D("300.00"),
        D("200.00"),
        D("500.00"),
    )
    # The pending claim, rejected after expiry, gives back the rest; approved, it is spent.
    rejected, freed = preapprovals.claim_rejected(replace(after), D("300.00"))
    assert (rejected.reserved, freed) == (D("0.00"), D("300.00"))
    spent = preapprovals.claim_approved(after, D("300.00"))
    assert (spent.reserved, spent.claimed) == (D("0.00"), D("500.00"))
    assert preapprovals.expire(after, DEADLINE) is None  # once


cents = st.decimals(min_value=D("0.01"), max_value=D("5000.00"), places=2)


@given(approved_amount=cents, claims=st.lists(st.tuples(cents, st.booleans()), max_size=12))
def test_reserved_plus_claimed_never_exceeds_the_approved_amount(
    approved_amount: Decimal, claims: list[tuple[Decimal, bool]]
) -> None:
    pre = approved(str(approved_amount))
    for amount, approve in claims:
        try:
            preapprovals.check_claim(pre, amount, AT)
        except PreapprovalConflict:
            assert amount > pre.claimable
            continue
        pre = replace(pre, pending=pre.pending + amount)
        if approve:
            pre = preapprovals.claim_approved(pre, amount)
        else:
            pre, _ = preapprovals.claim_rejected(pre, amount)
        assert pre.reserved + pre.claimed == pre.amount
        assert 0 <= pre.pending <= pre.reserved
    expired = preapprovals.expire(pre, DEADLINE)
    assert expired is not None
    after, released = expired
    assert after.reserved + after.claimed + released == pre.amount


def campaign(**changes: object) -> KnownCampaign:
    fields: dict[str, object] = {
        "campaign_id": "camp_1",
        "partner_ids": frozenset({"p-1", "p-2"}),
        "starts_on": date(2026, 11, 1),
        "ends_on": date(2026, 11, 30),
        "cancelled_at": None,
    }
    return KnownCampaign(**(fields | changes))  # type: ignore[arg-type]


def test_a_pre_approval_names_a_known_campaign_of_its_partner_that_has_not_ended() -> None:
    today = date(2026, 11, 30)
    assert check_campaign("camp_1", campaign(), "p-2", today) == campaign()
    # planned (not started yet) and on its last day: still open for budget
    assert check_campaign("camp_1", campaign(starts_on=date(2026, 12, 5)), "p-1", today)
    with pytest.raises(CampaignNotKnown, match=r"campaign camp_9 is not known \(yet\)") as unknown:
        check_campaign("camp_9", None, "p-1", today)
    assert unknown.value.status == 409  # worth retrying: the announcement may be on its way
    with pytest.raises(Unprocessable, match="campaign camp_1 is not run by partner p-3"):
        check_campaign("camp_1", campaign(), "p-3", today)
    with pytest.raises(CampaignNotOpen, match="campaign camp_1 is cancelled") as cancelled:
        check_campaign("camp_1", campaign(cancelled_at=AT), "p-1", today)
    assert cancelled.value.status == 409
    with pytest.raises(CampaignNotOpen, match="campaign camp_1 ended on 2026-11-30"):
        check_campaign("camp_1", campaign(), "p-1", today + timedelta(days=1))
    # another partner's campaign is refused as such even once it is over or cancelled
    with pytest.raises(Unprocessable, match="not run by partner p-3"):
        check_campaign("camp_1", campaign(cancelled_at=AT), "p-3", today + timedelta(days=9))


def test_a_pre_approvals_activity_lies_within_its_campaigns_dates() -> None:
    check_within(campaign(), date(2026, 11, 1), date(2026, 11, 30))  # its very dates
    check_within(campaign(), date(2026, 11, 10), date(2026, 11, 12))
    for starts, ends in (
        (date(2026, 5, 1), date(2028, 11, 1)),  # the probe's: two years around it
        (date(2026, 10, 31), date(2026, 11, 5)),
        (date(2026, 11, 25), date(2026, 12, 1)),
        (date(2026, 12, 1), date(2026, 12, 2)),  # wholly after it
    ):
        with pytest.raises(Unprocessable) as refused:
            check_within(campaign(), starts, ends)
        assert str(refused.value) == (
            f"the activity's dates {starts}..{ends} lie outside campaign camp_1's dates "
            "2026-11-01..2026-11-30: a pre-approval is for spending within its campaign"
        )
        assert refused.value.status == 422


def test_a_pre_approval_is_approved_only_while_its_campaign_is_not_cancelled() -> None:
    check_approvable("camp_1", campaign(), "p-1")
    check_approvable("camp_1", campaign(ends_on=date(2026, 1, 1)), "p-2")  # asked in time
    with pytest.raises(CampaignNotOpen, match="camp_1 was cancelled on 2026-11-02: its") as off:
        check_approvable("camp_1", campaign(cancelled_at=AT), "p-1")
    assert off.value.status == 409
    with pytest.raises(CampaignNotOpen, match="partner p-3 no longer runs campaign camp_1"):
        check_approvable("camp_1", campaign(), "p-3")  # it left before the campaign started
    with pytest.raises(CampaignNotKnown, match=r"campaign camp_9 is not known \(any more\)"):
        check_approvable("camp_9", None, "p-1")


def test_a_claim_is_taken_while_its_partner_runs_the_campaign_even_cancelled() -> None:
    check_claimable("camp_1", campaign(), "p-1")
    check_claimable("camp_1", campaign(cancelled_at=AT), "p-2")  # money spent before
    with pytest.raises(CampaignNotOpen, match="partner p-3 no longer runs campaign camp_1: no"):
        check_claimable("camp_1", campaign(), "p-3")
    with pytest.raises(CampaignNotKnown, match=r"campaign camp_9 is not known \(any more\)"):
        check_claimable("camp_9", None, "p-1")
