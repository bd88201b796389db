"""The partner projection's rules (services/programme/domain/profiles.py): the newest word per
partner, and an annual review's outcome once an appeal was decided."""

from __future__ import annotations

from datetime import date

import pytest

from services.programme.domain.profiles import newest_per_partner, review_standing


def test_each_partner_keeps_its_newest_event_whatever_the_order() -> None:
    events = [
        ("a", date(2026, 1, 2), "a-newest"),
        ("b", date(2026, 1, 1), "b-only"),
        ("a", date(2026, 1, 1), "a-older, read late"),
    ]
    kept = newest_per_partner(events, lambda e: e[0], lambda e: e[1])
    assert sorted(e[2] for e in kept) == ["a-newest", "b-only"]


def test_on_a_tie_the_later_event_in_the_batch_wins() -> None:
    events = [("a", 1, "first"), ("a", 1, "second")]
    assert newest_per_partner(events, lambda e: e[0], lambda e: e[1]) == [("a", 1, "second")]


@pytest.mark.parametrize(
    ("outcome", "upheld", "standing"),
    [
        (None, None, None),
        ("requalified", None, "requalified"),
        ("requalified", True, "requalified"),  # nothing to reverse
        ("probation", None, "probation"),  # no appeal decided
        ("probation", False, "probation"),  # dismissed
        ("probation", True, "probation reversed on appeal"),
        ("demoted", True, "demoted reversed on appeal"),
        ("expelled", True, "expelled reversed on appeal"),
    ],
)
def test_an_upheld_appeal_reverses_a_demotion_probation_or_expulsion(
    outcome: str | None, upheld: bool | None, standing: str | None
) -> None:
    assert review_standing(outcome, upheld) == standing
