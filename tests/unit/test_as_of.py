"""An admin run's "as of" (deals' expiry and review runs, onboarding's requalification,
programme-year, enablement and review runs, attribution's health run). Found from outside:
9999-12-31 made the runs add their windows past the last date there is (an OverflowError: a
500, or a run failing in the background)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import TypeAdapter, ValidationError

from shared.clock import now
from shared.inputs import AsOf

as_of = TypeAdapter(AsOf)


@pytest.mark.parametrize(
    "moment",
    ["9999-12-30T23:59:59.999999Z", "1900-01-01T00:00:00Z", "2200-01-01T00:00:00+14:00"],
)
def test_a_moment_more_than_a_hundred_years_away_is_refused(moment: str) -> None:
    with pytest.raises(ValidationError, match="must be within a hundred years of now"):
        as_of.validate_python(moment)


def test_a_moment_without_a_time_zone_is_refused() -> None:
    with pytest.raises(ValidationError, match="needs a time zone"):
        as_of.validate_python("2027-01-01T00:00:00")


def test_a_moment_in_reach_is_taken_in_utc() -> None:
    later = now() + timedelta(days=400)
    assert as_of.validate_python(later.isoformat()) == later
    assert as_of.validate_python("2027-01-01T02:00:00+02:00") == datetime(2027, 1, 1, tzinfo=UTC)
