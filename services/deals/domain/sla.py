"""Review deadlines: when a registration waiting for review must be decided, on a business
calendar, and what happens around the deadline (a reminder before it, an escalation at it, the
policy's outcome after it). Referrals from a hyperscaler (AWS ACE, Microsoft) carry their own
acceptance deadline, which ours never passes.

No I/O: the use cases load what is pending and store what these rules answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from shared.business_days import add_business_days


class OverdueOutcome(StrEnum):
    """What becomes of a review still undecided after its deadline (and the grace)."""

    STAY = "stay"  # escalated, left for a channel manager
    APPROVE_UNDER_LIMIT = "approve_under_limit"  # at or under the limit and no conflict, else stays
    REJECT = "reject"


def review_situation(conflict_kinds: frozenset[str]) -> str:
    """Which deadline applies: a partner conflict, a direct-sales conflict, or any other review
    (amount over the limit, region unknown, a CRM link that disagrees)."""
    if "partner" in conflict_kinds:
        return "partner_conflict"
    if "direct_sales" in conflict_kinds:
        return "direct_sales"
    return "other"


@dataclass(frozen=True)
class ReviewDeadline:
    due_at: datetime
    situation: str
    acceptance_due_at: datetime | None  # the hyperscaler's, shown to the reviewer

    @property
    def why(self) -> str:
        text = f"review due {self.due_at.isoformat()} ({self.situation.replace('_', ' ')})"
        if self.acceptance_due_at is not None and self.acceptance_due_at <= self.due_at:
            text += ", brought forward to the hyperscaler's acceptance deadline"
        return text


def review_deadline(
    since: datetime,
    situation: str,
    review_days: dict[str, int],
    weekdays: frozenset[int],
    holidays: frozenset[date],
    acceptance_due_at: datetime | None = None,
) -> ReviewDeadline:
    """The deadline of a review that started at `since`: the situation's business days (the
    `other` ones for a situation the policy does not name), never after the hyperscaler's
    acceptance deadline."""
    days = review_days.get(situation, review_days.get("other", 3))
    due = add_business_days(since, days, weekdays, holidays)
    if acceptance_due_at is not None:
        due = min(due, acceptance_due_at)
    return ReviewDeadline(due, situation, acceptance_due_at)


def acceptance_deadline(
    source: str | None, referred_at: datetime | None, acceptance_hours: dict[str, int]
) -> datetime | None:
    """When a hyperscaler referral must be accepted (None: not a referral the policy times)."""
    if source is None or referred_at is None or source not in acceptance_hours:
        return None
    return referred_at + timedelta(hours=acceptance_hours[source])


def needs_reminder(due_at: datetime, at: datetime, reminder_hours: int, reminded: bool) -> bool:
    return not reminded and due_at - timedelta(hours=reminder_hours) <= at < due_at


def overdue_decision(
    outcome: OverdueOutcome, amount: Decimal, limit: Decimal, due_at: datetime, conflicted: bool
) -> tuple[bool, str] | None:
    """The system's decision on an overdue review: (approve, why), or None when it stays.
    `conflicted`: its decision found a conflict (another partner, a direct rep). Such a review
    is never approved unseen (found in review: a channel team clearing a backlog of small
    amount reviews also approved registrations over another partner's hold); rejected, it is
    the policy's to say."""
    late = f"review deadline {due_at.isoformat()} passed undecided"
    if outcome is OverdueOutcome.REJECT:
        return False, f"{late}: rejected under policy"
    if outcome is OverdueOutcome.APPROVE_UNDER_LIMIT and amount <= limit and not conflicted:
        return True, f"{late}: approved under policy (amount within {limit})"
    return None
