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
    Tuesday 15:00. A start on a day off counts from the start of the next working day:
    Saturday 01:00 plus two is Wednesday 00:00 (at its own time of day it came out as Tuesday
    01:00, earlier than Friday 23:00's Tuesday 23:00: found in review)."""

    def working(moment: datetime) -> bool:
        return moment.isoweekday() in weekdays and moment.date() not in holidays

    moment, left = start, days
    if days > 0 and weekdays and not working(start):
        moment = start.replace(hour=0, minute=0, second=0, microsecond=0)
        while not working(moment):
            moment += timedelta(days=1)
    while left > 0:
        moment += timedelta(days=1)
        if working(moment):
            left -= 1
    return moment
