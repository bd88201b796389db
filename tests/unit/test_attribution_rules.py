"""The rules attribution applies to its inputs before any split: which registration status a
deal holds when a snapshot and a registration event disagree (and whether it sources the deal),
when a reported touchpoint is a repeat, who may report for whom, when a report is in the
future, how a partner named by the CRM counts, what a revenue report may ask for, which deals
hold credits and how a settlement explains its trigger."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.attribution.domain.campaigns import (
    CampaignNotKnown,
    KnownCampaign,
    NotThroughCampaign,
    check_touch_campaign,
)
from services.attribution.domain.config import AttributionConfig, ModelName
from services.attribution.domain.deals import (
    DealState,
    describe_change,
    settlement_trigger,
    wanted_attribution,
)
from services.attribution.domain.models import Touchpoint, TouchpointKind
from services.attribution.domain.registrations import is_sourcing, lost_one_sources, newest_status
from services.attribution.domain.reporting import Period, RevenueQuery
from services.attribution.domain.touchpoints import (
    CLOCK_SKEW,
    MAX_BACKDATE,
    ExternalIdReused,
    ReportedKind,
    ReportedTouchpoint,
    StoredTouchpoint,
    check_not_before_deal,
    crm_counted_at,
    crm_partner_kind,
    reported_counts,
    reported_touchpoint_id,
    reporting_for,
)
from shared.errors import Conflict, Forbidden, Unprocessable
from shared.events.crm import CrmSource, DealStatus
from shared.events.registrations import RegistrationStatus as S

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
RANK = {
    S.SUBMITTED: 0,
    S.PENDING_REVIEW: 1,
    S.APPROVED: 2,
    S.REJECTED: 3,
    S.EXPIRED: 3,
    S.WON: 4,
    S.LOST: 4,
}

# -- registration status -------------------------------------------------------------------------


T0 = datetime(2026, 6, 1, tzinfo=UTC)
LATER = T0 + timedelta(seconds=1)


@pytest.mark.parametrize(
    ("held", "held_at", "new", "new_at", "kept"),
    [
        (S.SUBMITTED, T0, S.APPROVED, LATER, S.APPROVED),  # moves forward
        # Sent back to review (a CRM merge displaced it): the newer word, though less advanced.
        (S.APPROVED, T0, S.PENDING_REVIEW, LATER, S.PENDING_REVIEW),
        (S.APPROVED, LATER, S.PENDING_REVIEW, T0, S.APPROVED),  # a late, older word does not
        (S.WON, LATER, S.APPROVED, T0, S.WON),  # the snapshot said won before the approval came
        (S.REJECTED, T0, S.EXPIRED, LATER, S.EXPIRED),
        # At the same moment, or a held moment unknown: the more advanced.
        (S.APPROVED, T0, S.PENDING_REVIEW, T0, S.APPROVED),
        (S.PENDING_REVIEW, T0, S.APPROVED, T0, S.APPROVED),
        (S.WON, None, S.APPROVED, LATER, S.WON),
        (S.REJECTED, T0, S.EXPIRED, T0, S.EXPIRED),  # same rank: the newer word wins
    ],
)
def test_the_newest_registration_status_is_held(
    held: S, held_at: datetime | None, new: S, new_at: datetime, kept: S
) -> None:
    assert newest_status(held, held_at, new, new_at) is kept


@given(st.lists(st.tuples(st.sampled_from(list(S)), st.integers(0, 5)), min_size=1))
def test_whatever_order_statuses_arrive_in_the_newest_is_held(words: list[tuple[S, int]]) -> None:
    held, held_at = words[0][0], T0 + timedelta(seconds=words[0][1])
    for status, second in words[1:]:
        at = T0 + timedelta(seconds=second)
        held, held_at = newest_status(held, held_at, status, at), max(held_at, at)
    newest = max(second for _, second in words)
    assert RANK[held] == max(RANK[s] for s, second in words if second == newest)


def test_approved_won_and_lost_registrations_source_the_deal() -> None:
    assert {s for s in S if is_sourcing(s)} == {S.APPROVED, S.WON, S.LOST}


# -- reported touchpoints ------------------------------------------------------------------------


def report(**fields: object) -> ReportedTouchpoint:
    values: dict[str, object] = {
        "caller_partner_id": "p-1",
        "named_partner_id": None,
        "deal_key": "salesforce:006A",
        "kind": ReportedKind.REFERRAL,
        "occurred_at": NOW - timedelta(days=3),
        "source": "partner-crm",
        "external_id": "ext-1",
        "received_at": NOW,
    }
    return ReportedTouchpoint.report(**(values | fields))  # type: ignore[arg-type]


def stored(touchpoint: ReportedTouchpoint, **fields: object) -> StoredTouchpoint:
    values: dict[str, object] = {
        "deal_key": touchpoint.deal_key,
        "partner_id": touchpoint.partner_id,
        "kind": touchpoint.kind.value,
        "occurred_at": touchpoint.occurred_at,
    }
    return StoredTouchpoint(**(values | fields))  # type: ignore[arg-type]


def test_the_same_source_and_external_id_is_the_same_touchpoint() -> None:
    same = reported_touchpoint_id("p-1", "crm-x", "42")
    assert same == reported_touchpoint_id("p-1", "crm-x", "42")
    assert same != reported_touchpoint_id("p-1", "crm-y", "42")
    assert same.startswith("tp_")
    # another partner's (source, external_id) is another touchpoint: no one can take a
    # partner's id first (found in review)
    assert same != reported_touchpoint_id("p-2", "crm-x", "42")
    # without an external id every report is a touchpoint of its own
    assert reported_touchpoint_id("p-1", "crm-x", None) != reported_touchpoint_id(
        "p-1", "crm-x", None
    )


def test_a_repeated_report_of_the_same_touchpoint_is_a_repeat() -> None:
    touchpoint = report()
    assert touchpoint.repeats(stored(touchpoint)) is True


@pytest.mark.parametrize(
    "difference",
    [
        {"deal_key": "salesforce:006B"},
        {"partner_id": "p-2"},
        {"kind": "implementation"},
        {"occurred_at": NOW - timedelta(days=4)},
    ],
)
def test_an_external_id_reused_for_another_touchpoint_is_a_conflict(
    difference: dict[str, object],
) -> None:
    touchpoint = report()
    with pytest.raises(ExternalIdReused) as refused:
        touchpoint.repeats(stored(touchpoint, **difference))
    assert isinstance(refused.value, Conflict)
    assert refused.value.message == (
        f"external_id 'ext-1' from 'partner-crm' was already reported for a different "
        f"touchpoint ({touchpoint.touchpoint_id})"
    )


def test_a_partner_reports_for_itself_and_a_channel_manager_names_the_partner() -> None:
    assert reporting_for("p-1", None) == "p-1"
    assert reporting_for("p-1", "p-1") == "p-1"
    assert reporting_for(None, "p-2") == "p-2"
    with pytest.raises(Forbidden, match="a partner may report touchpoints only for itself"):
        reporting_for("p-1", "p-2")
    with pytest.raises(Unprocessable, match="admin touchpoints must name partner_id"):
        reporting_for(None, None)


def test_the_reporter_is_recorded() -> None:
    assert report().reported_by == "p-1"
    assert report(caller_partner_id=None, named_partner_id="p-2").reported_by == "admin"
    assert report(caller_partner_id=None, named_partner_id="p-2").partner_id == "p-2"


def test_a_touchpoint_may_be_a_little_ahead_of_our_clock_but_not_in_the_future() -> None:
    assert report(occurred_at=NOW + CLOCK_SKEW).occurred_at == NOW + CLOCK_SKEW
    ahead = NOW + CLOCK_SKEW + timedelta(seconds=1)
    with pytest.raises(Unprocessable) as refused:
        report(occurred_at=ahead)
    assert refused.value.message == f"occurred_at {ahead.isoformat()} is in the future"


def test_a_touchpoint_reaches_back_at_most_the_backdating_limit() -> None:
    assert report(occurred_at=NOW - MAX_BACKDATE).occurred_at == NOW - MAX_BACKDATE
    older = NOW - MAX_BACKDATE - timedelta(seconds=1)
    with pytest.raises(Unprocessable) as refused:
        report(occurred_at=older)
    assert refused.value.message == (
        f"occurred_at {older.isoformat()} is before the 365-day limit "
        f"({(NOW - MAX_BACKDATE).isoformat()})"
    )


def test_a_touchpoint_is_never_dated_before_its_deal_was_created() -> None:
    created = NOW - timedelta(days=10)
    check_not_before_deal(created, created)
    check_not_before_deal(NOW - timedelta(days=90), None)  # the CRM did not say
    with pytest.raises(Unprocessable, match="before the deal was created"):
        check_not_before_deal(created - timedelta(seconds=1), created)


def test_a_reported_touchpoint_counts_only_for_a_linked_partner_or_once_approved() -> None:
    assert reported_counts("p-1", approved=False, linked_partners={"p-1", "p-2"})
    assert not reported_counts("p-3", approved=False, linked_partners={"p-1", "p-2"})
    assert reported_counts("p-3", approved=True, linked_partners=set())
    # a linked partner's report once the deal is won waits; before the win it counts
    won = NOW - timedelta(hours=1)
    linked = {"p-1"}
    assert not reported_counts(
        "p-1", approved=False, linked_partners=linked, reported_at=NOW, won_at=won
    )
    assert reported_counts(
        "p-1", approved=False, linked_partners=linked, reported_at=won, won_at=won
    )
    assert reported_counts(
        "p-1", approved=True, linked_partners=linked, reported_at=NOW, won_at=won
    )
    # a channel manager's own report is approved; a partner's is not
    assert report(caller_partner_id=None, named_partner_id="p-2").approved
    assert not report().approved


def test_the_late_touchpoint_explains_itself() -> None:
    touchpoint = report()
    assert touchpoint.describe() == f"late touchpoint {touchpoint.touchpoint_id} (referral by p-1)"


# -- the partner a CRM names ---------------------------------------------------------------------


def test_the_partner_a_crm_names_is_a_marketplace_seller_on_aws_and_a_referral_elsewhere() -> None:
    assert crm_partner_kind(CrmSource.AWS_ACE) is TouchpointKind.MARKETPLACE_TRANSACTION
    for source in (CrmSource.MICROSOFT, CrmSource.SALESFORCE, CrmSource.HUBSPOT):
        assert crm_partner_kind(source) is TouchpointKind.REFERRAL


def test_the_partner_a_crm_names_counts_no_later_than_the_close() -> None:
    close = date(2026, 3, 31)
    end_of_close = datetime(2026, 4, 1, tzinfo=UTC) - timedelta(seconds=1)
    assert crm_counted_at(datetime(2026, 5, 1, tzinfo=UTC), close) == end_of_close
    assert crm_counted_at(datetime(2026, 3, 1, tzinfo=UTC), close) == datetime(
        2026, 3, 1, tzinfo=UTC
    )
    assert crm_counted_at(datetime(2026, 5, 1, tzinfo=UTC), None) == datetime(
        2026, 5, 1, tzinfo=UTC
    )


# -- revenue reports -----------------------------------------------------------------------------


def test_a_revenue_report_groups_by_a_known_period_over_an_ordered_range() -> None:
    query = RevenueQuery.parse("quarter", date(2026, 1, 1), date(2026, 12, 31))
    assert query == RevenueQuery(Period.QUARTER, date(2026, 1, 1), date(2026, 12, 31))
    assert RevenueQuery.parse("month", None, None).period is Period.MONTH
    with pytest.raises(Unprocessable) as unknown:
        RevenueQuery.parse("week", None, None)
    assert unknown.value.message == "period must be one of month, quarter, year, not 'week'"
    with pytest.raises(Unprocessable, match="since is after until"):
        RevenueQuery.parse("year", date(2026, 2, 1), date(2026, 1, 1))


# -- what a deal holds, and why it was settled again ---------------------------------------------

WON = DealState(3, DealStatus.WON, False, Decimal("1000"), "USD", date(2026, 3, 31), "p-9")
TOUCH = Touchpoint("t1", "p-9", TouchpointKind.REFERRAL, datetime(2026, 3, 1, tzinfo=UTC))


def test_only_a_won_deal_that_is_not_deleted_holds_credits() -> None:
    config = AttributionConfig(model=ModelName.LINEAR)
    wanted, parked = wanted_attribution(config, WON, [TOUCH])
    assert wanted is not None
    assert parked == ()
    assert [(line.partner_id, line.original_amount) for line in wanted.lines] == [
        ("p-9", Decimal("1000.00"))
    ]
    for state in (
        replace(WON, status=DealStatus.OPEN),
        replace(WON, status=DealStatus.LOST),
        replace(WON, deleted=True),
    ):
        assert wanted_attribution(config, state, [TOUCH]) == (None, ())


def test_a_settlement_of_a_deal_without_credits_says_why() -> None:
    assert settlement_trigger(WON, "revision 3") == "revision 3"
    assert settlement_trigger(replace(WON, status=DealStatus.LOST), "r") == "r (deal lost)"
    assert settlement_trigger(replace(WON, deleted=True), "r") == "r (deal deleted)"


def test_a_snapshot_describes_what_it_changed() -> None:
    assert describe_change(None, WON) == "revision 3: deal won"
    new = replace(
        WON,
        revision=4,
        status=DealStatus.LOST,
        amount=Decimal("1500"),
        close_date=date(2026, 4, 1),
        partner_ref="p-8",
        deleted=True,
    )
    assert describe_change(WON, new) == (
        "revision 4: deal deleted, status won -> lost, amount 1000 USD -> 1500 USD, "
        "close date 2026-03-31 -> 2026-04-01, CRM partner p-9 -> p-8"
    )
    assert describe_change(WON, replace(WON, revision=4)) == (
        "revision 4: touchpoints or details changed"
    )


def test_a_campaign_touchpoint_names_its_campaign_and_only_it_does() -> None:
    campaign = report(kind=ReportedKind.CAMPAIGN, campaign_id="camp-1")
    assert (campaign.kind, campaign.campaign_id) == (ReportedKind.CAMPAIGN, "camp-1")
    with pytest.raises(Unprocessable, match="a campaign touchpoint must name campaign_id"):
        report(kind=ReportedKind.CAMPAIGN)
    with pytest.raises(Unprocessable, match="only a campaign touchpoint names campaign_id, not"):
        report(kind=ReportedKind.REFERRAL, campaign_id="camp-1")


def test_a_campaign_touchpoint_names_a_known_campaign_its_partner_ran_then() -> None:
    ran = KnownCampaign(
        "camp-1", frozenset({"p-1", "p-2"}), date(2026, 11, 2), date(2026, 11, 9), None
    )
    first_day = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
    last_day = datetime(2026, 11, 9, 23, 59, tzinfo=UTC)
    check_touch_campaign("camp-1", ran, "p-2", first_day)
    check_touch_campaign("camp-1", ran, "p-1", last_day)  # its last day still counts
    # 9 November 23:59 UTC written from Sydney is 10 November there: still its last day
    check_touch_campaign("camp-1", ran, "p-1", last_day.astimezone(timezone(timedelta(hours=11))))
    with pytest.raises(CampaignNotKnown, match=r"campaign camp-9 is not known \(yet\)") as unknown:
        check_touch_campaign("camp-9", None, "p-1", first_day)
    assert unknown.value.status == 409  # worth retrying: the announcement may be on its way
    with pytest.raises(NotThroughCampaign, match="campaign camp-1 is not run by partner p-3"):
        check_touch_campaign("camp-1", ran, "p-3", first_day)
    for outside in (first_day - timedelta(minutes=1), last_day + timedelta(minutes=1)):
        with pytest.raises(
            NotThroughCampaign,
            match=r"outside campaign camp-1's dates \(2026-11-02 to 2026-11-09\)",
        ) as refused:
            check_touch_campaign("camp-1", ran, "p-1", outside)
        assert refused.value.status == 422
    off = replace(ran, cancelled_at=datetime(2026, 11, 5, 12, tzinfo=UTC))
    check_touch_campaign("camp-1", off, "p-1", datetime(2026, 11, 5, 11, tzinfo=UTC))  # before
    with pytest.raises(NotThroughCampaign, match="after campaign camp-1 was cancelled"):
        check_touch_campaign("camp-1", off, "p-1", datetime(2026, 11, 5, 13, tzinfo=UTC))


def test_a_lost_registration_sources_only_a_deal_nobody_else_holds() -> None:
    assert lost_one_sources([])
    assert lost_one_sources([S.LOST, S.REJECTED, S.EXPIRED, S.PENDING_REVIEW])
    assert not lost_one_sources([S.WON])
    assert not lost_one_sources([S.LOST, S.APPROVED])
