"""Joint business plans: the goals a channel manager and a partner agree for a year, the
plan's states, and how a quarterly review compares goals with actuals.

States: a manager proposes (revision 1); the partner accepts or declines a proposed plan; the
manager may revise any plan (the next revision, proposed again: goals changed after acceptance
need accepting again). Only an accepted plan is reviewed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

from services.programme.domain.figures import ratio
from services.programme.domain.quarters import Quarter
from shared.errors import Conflict, Unprocessable


class PlanState(StrEnum):
    PROPOSED = "proposed"
    ACCEPTED = "accepted"
    DECLINED = "declined"


def is_repeat(current: Mapping[str, Any] | None, currency: str, goals: Goals, note: str) -> bool:
    """Whether a proposal asks for the plan as it stands (a PUT sent again): then it is no new
    revision, and an accepted plan stays accepted (20 identical PUTs made 20 revisions, and a
    retry undid the partner's acceptance: found from outside). A declined plan proposed again
    is asked again."""
    if current is None or current["state"] == PlanState.DECLINED.value:
        return False  # a declined plan proposed again asks the partner again
    return (
        current["currency"],
        Goals(
            current["sourced_revenue"],
            current["certifications"],
            current["new_logos"],
            current["campaigns"],
        ),
        current["note"],
    ) == (currency, goals, note)


def check_plan_currency(currency: str, reporting_currency: str) -> None:
    """A plan is in the reporting currency: its revenue goal is compared with the partner's
    attributed revenue, which attribution credits in that currency alone. Found in review: a
    plan in EUR showed 0 sourced revenue all year, and every review recorded that 0."""
    if currency != reporting_currency:
        raise Unprocessable(
            f"currency {currency}: a plan's revenue goal is measured against attributed"
            f" revenue, which is in the reporting currency {reporting_currency}; plan in"
            f" {reporting_currency}"
        )


def answer(state: PlanState, revision: int, accept: bool, answered: int) -> PlanState:
    """The partner's answer to a plan at `revision`: only a proposed plan can be answered, and
    only the revision the partner read (`answered`)."""
    if state is not PlanState.PROPOSED:
        raise Conflict(
            f"the plan is {state.value}: only a proposed plan can be accepted or declined"
        )
    if answered != revision:
        raise Conflict(
            f"the plan is at revision {revision}, not {answered}: read it again before answering"
        )
    return PlanState.ACCEPTED if accept else PlanState.DECLINED


def check_reviewable(state: PlanState, year: int, quarter: Quarter, today: date) -> None:
    """An accepted plan's quarter of its year, once that quarter has begun (a quarterly
    review is held in its last weeks or after it): recorded for a quarter still to come, a
    review's actuals were another quarter's and, one per quarter, it blocked the real one
    (found in review)."""
    if state is not PlanState.ACCEPTED:
        raise Conflict(f"the plan is {state.value}: only an accepted plan is reviewed")
    if quarter.year != year:
        raise Unprocessable(f"quarter {quarter} is not in the plan's year {year}")
    if quarter.first_day > today:
        raise Unprocessable(
            f"quarter {quarter} has not begun (its first day is {quarter.first_day}): it is "
            "reviewed once it has"
        )


@dataclass(frozen=True)
class Goals:
    sourced_revenue: Decimal
    certifications: int
    new_logos: int
    co_marketing_campaigns: int


@dataclass(frozen=True)
class Actuals:
    """What the partner achieved in the plan year up to the end of a quarter, each from the
    service that owns it."""

    sourced_revenue: Decimal  # attribution: sourced credits net of reversals
    certifications: int  # onboarding: competencies held at the quarter's end
    new_logos: int  # incentives: deals that earned the new-logo kicker (not clawed back)
    co_marketing_campaigns: int  # programme: campaigns run (completed, not cancelled)
    mdf_claims_approved: int = 0  # incentives: MDF claims approved (shown beside, no goal)


@dataclass(frozen=True)
class Line:
    goal_name: str
    source: str
    goal: Decimal
    actual: Decimal
    attainment: Decimal | None  # actual / goal; None for a goal of zero


# (goal, the service whose events give the actual)
MEASURES = (
    ("sourced_revenue", "attribution"),
    ("certifications", "onboarding"),
    ("new_logos", "incentives"),
    ("co_marketing_campaigns", "programme"),
)


def campaigns_run_between(year: int, through: Quarter, today: date) -> tuple[date, date]:
    """The last days a plan's campaigns run must fall on, [first, end): a campaign counts once
    it completed (the day after its last: `domain.campaigns.state_of`) inside the plan's period,
    1 January to the end of `through`. A cancelled campaign never ran (cancelling is refused
    once one has ended, so it never completed either)."""
    return date(year, 1, 1), min(through.next.first_day, today)


def compare(goals: Goals, actuals: Actuals) -> list[Line]:
    lines = []
    for name, source in MEASURES:
        goal, actual = Decimal(getattr(goals, name)), Decimal(getattr(actuals, name))
        lines.append(Line(name, source, goal, actual, ratio(actual, goal)))
    return lines
