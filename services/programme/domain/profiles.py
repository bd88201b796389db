"""The partner's standing in the programme as its events tell it: which of several events
about one partner is the newest word, and what its annual review's outcome means once an
appeal was decided."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar


class Ordered(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


T = TypeVar("T")
K = TypeVar("K", bound=Ordered)


def newest_per_partner(
    events: Iterable[T], partner: Callable[[T], str], moment: Callable[[T], K]
) -> list[T]:
    """Each partner's newest event (by `moment`; on a tie the later one in the batch), so one
    batch writes one row per partner."""
    latest: dict[str, T] = {}
    for event in events:
        held = latest.get(partner(event))
        if held is None or not moment(event) < moment(held):
            latest[partner(event)] = event
    return list(latest.values())


REVERSIBLE = ("demoted", "probation", "expelled")


def review_standing(outcome: str | None, appeal_upheld: bool | None) -> str | None:
    """The annual review's outcome as it stands: an upheld appeal reverses a demotion, a
    probation or an expulsion (onboarding puts the partner back as it was before the review);
    a dismissed or pending appeal leaves the outcome."""
    if outcome is None:
        return None
    if appeal_upheld and outcome in REVERSIBLE:
        return f"{outcome} reversed on appeal"
    return outcome
