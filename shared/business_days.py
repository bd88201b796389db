"""The business calendar the platform's review deadlines count on (deals' registration reviews,
onboarding's application reviews): working weekdays and holidays, nothing else. Pure."""

from __future__ import annotations

from datetime import date, datetime, timedelta

MONDAY_TO_FRIDAY = frozenset({1, 2, 3, 4, 5})  # ISO weekdays: Monday is 1


def add_business_days(
    start: datetime, days: int, weekdays: frozenset[int], holidays: frozenset[date]
) -> datetime:
    """`days` business days after `start`, at the same time of day: each following day that is
    a working weekday (ISO, Monday 1) and not a holiday counts one. Friday 15:00 plus two is
    Tuesday 15:00."""
    moment, left = start, days
    while left > 0:
        moment += timedelta(days=1)
        if moment.isoweekday() in weekdays and moment.date() not in holidays:
            left -= 1
    return moment
