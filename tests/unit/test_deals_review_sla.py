"""Review deadlines on a business calendar (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.deals.domain.rules import InvalidPolicy, rules_from_mapping
from services.deals.domain.sla import (
    OverdueOutcome,
    acceptance_deadline,
    needs_reminder,
    overdue_decision,
    review_deadline,
    review_situation,
)
from shared.business_days import add_business_days

WEEK = frozenset({1, 2, 3, 4, 5})
FRIDAY = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
DAYS = {"partner_conflict": 2, "direct_sales": 3, "other": 3}


def test_business_days_skip_weekends_and_holidays() -> None:
    assert add_business_days(FRIDAY, 2, WEEK, frozenset()) == FRIDAY + timedelta(days=4)  # Tue
    # A start on a day off counts from the next working day's start: Saturday 10:00 plus one
    # is Tuesday 00:00, not Monday 10:00 (earlier than Friday 23:00's Monday 23:00).
    saturday = FRIDAY + timedelta(days=1, hours=-5)
    assert add_business_days(saturday, 1, WEEK, frozenset()) == datetime(2026, 12, 8, tzinfo=UTC)
    christmas = datetime(2026, 12, 25, 1, 0, tzinfo=UTC)  # a Friday, and a holiday
    assert add_business_days(christmas, 3, WEEK, frozenset({christmas.date()})) == datetime(
        2026, 12, 31, tzinfo=UTC
    )
    monday = date(2026, 12, 7)
    assert add_business_days(FRIDAY, 2, WEEK, frozenset({monday})).date() == date(2026, 12, 9)
    assert add_business_days(FRIDAY, 1, frozenset(range(1, 8)), frozenset()) == (
        FRIDAY + timedelta(days=1)
    )


@given(
    st.datetimes(
        min_value=datetime(2026, 1, 1),  # noqa: DTZ001 (hypothesis: naive bounds, UTC below)
        max_value=datetime(2027, 12, 31),  # noqa: DTZ001
    ),
    st.integers(min_value=1, max_value=600),
    st.integers(min_value=0, max_value=10),
)
def test_a_later_start_never_has_an_earlier_deadline(
    start: datetime, minutes_later: int, days: int
) -> None:
    holidays = frozenset({date(2026, 12, 25), date(2027, 1, 1), date(2027, 5, 3)})
    first = start.replace(tzinfo=UTC)
    later = first + timedelta(minutes=minutes_later)
    assert add_business_days(later, days, WEEK, holidays) >= add_business_days(
        first, days, WEEK, holidays
    )


def test_each_situation_has_its_deadline_and_a_referral_brings_it_forward() -> None:
    assert review_situation(frozenset({"partner", "direct_sales"})) == "partner_conflict"
    assert review_situation(frozenset({"direct_sales"})) == "direct_sales"
    assert review_situation(frozenset()) == "other"
    partner = review_deadline(FRIDAY, "partner_conflict", DAYS, WEEK, frozenset())
    assert partner.due_at == FRIDAY + timedelta(days=4)
    accept_by = acceptance_deadline("aws_ace", FRIDAY - timedelta(hours=60), {"aws_ace": 72})
    assert accept_by == FRIDAY + timedelta(hours=12)
    ace = review_deadline(FRIDAY, "other", DAYS, WEEK, frozenset(), accept_by)
    assert ace.due_at == accept_by
    assert ace.why.endswith("brought forward to the hyperscaler's acceptance deadline")
    assert acceptance_deadline("salesforce", FRIDAY, {"aws_ace": 72}) is None
    assert acceptance_deadline("aws_ace", None, {"aws_ace": 72}) is None


def test_reminder_window_and_overdue_outcomes() -> None:
    due = FRIDAY
    assert needs_reminder(due, due - timedelta(hours=23), 24, reminded=False)
    assert not needs_reminder(due, due - timedelta(hours=25), 24, reminded=False)
    assert not needs_reminder(due, due - timedelta(hours=1), 24, reminded=True)
    assert not needs_reminder(due, due, 24, reminded=False)  # at the deadline: escalation
    limit = Decimal("25000")
    assert overdue_decision(OverdueOutcome.STAY, Decimal("1"), limit, due, False) is None
    assert (
        overdue_decision(OverdueOutcome.APPROVE_UNDER_LIMIT, Decimal("25001"), limit, due, False)
        is None
    )
    approved = overdue_decision(
        OverdueOutcome.APPROVE_UNDER_LIMIT, Decimal("25000"), limit, due, False
    )
    assert approved is not None
    assert approved[0] is True
    # A review for a conflict is never approved unseen, however small; rejected under policy.
    assert (
        overdue_decision(OverdueOutcome.APPROVE_UNDER_LIMIT, Decimal("1"), limit, due, True) is None
    )
    assert overdue_decision(OverdueOutcome.REJECT, Decimal("1"), limit, due, True) is not None
    rejected = overdue_decision(OverdueOutcome.REJECT, Decimal("1"), limit, due, False)
    assert rejected == (
        False,
        f"review deadline {due.isoformat()} passed undecided: rejected under policy",
    )


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"review_days": {"other": 0}}, "review_days must be positive"),
        ({"business_weekdays": [0]}, "business_weekdays must name ISO weekdays"),
        ({"business_weekdays": []}, "business_weekdays must name ISO weekdays"),
        ({"review_reminder_hours": -1}, "cannot be negative"),
        ({"hyperscaler_acceptance_hours": {"aws_ace": 0}}, "must be positive"),
        ({"hyperscaler_acceptance_hours": {"aws-ace": 72}}, "unknown CRM source"),
        ({"review_overdue_outcome": "maybe"}, "review_overdue_outcome"),
    ],
)
def test_review_settings_are_checked(setting: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidPolicy, match=message):
        rules_from_mapping({"version": "v", **setting})
