"""An operator's "as of" for the expiry and review runs: found from outside, 9999-12-31 made
the runs add their windows past the last date there is (an OverflowError, a 500)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.deals.api import as_of_moment
from shared.clock import now
from shared.errors import Unprocessable


@pytest.mark.parametrize(
    "moment",
    [
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1900, 1, 1, tzinfo=UTC),
        now() + timedelta(days=36_501),
    ],
)
def test_a_moment_more_than_a_hundred_years_away_is_refused(moment: datetime) -> None:
    with pytest.raises(Unprocessable, match="within a hundred years of now"):
        as_of_moment(moment)


def test_a_moment_without_a_time_zone_is_refused() -> None:
    with pytest.raises(Unprocessable, match="needs a time zone"):
        as_of_moment(datetime(2027, 1, 1, tzinfo=UTC).replace(tzinfo=None))


def test_a_moment_in_reach_is_taken_and_none_is_now() -> None:
    later = now() + timedelta(days=400)
    assert as_of_moment(later) == later
    assert abs(as_of_moment(None) - now()) < timedelta(minutes=1)
