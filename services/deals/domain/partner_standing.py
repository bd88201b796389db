"""What a partner's standing (its projected lifecycle status) does to its registrations.

- An **ended** partner (`expelled`, or `rejected`: onboarding's statuses for a partnership that
  is over; there is no separate "offboarded") protects no customer: its live registrations
  (submitted, approved, pending review) are closed as `expired` when the partner projection
  learns of it, and in any case a conflict check never lets such a registration turn another
  partner away (found from outside, probe p5: an expelled partner's approvals kept rejecting
  others for up to 120 days). `expired` rather than a new status: every consumer of
  `deals.registrations.v1` (attribution, notifications, CRM write-back) already treats it as a
  terminal status that no longer sources the deal; the reason and the history entry say why.
- A **suspended** partner keeps its holds until their windows end: a suspension may be lifted,
  and closing its registrations would hand its customers to others for a compliance pause.
  It may not extend them while suspended (nor may any partner the policy does not let
  register): an extension is new protection, which it may not earn now.

No I/O.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from services.deals.domain.rules import RulesOfEngagement
from shared.events.partners import PartnerStatus
from shared.events.registrations import RegistrationStatus

ENDED = frozenset({PartnerStatus.EXPELLED, PartnerStatus.REJECTED})


def holds_customers(status: str | None) -> bool:
    """Whether registrations of a partner in this projected status protect their customers
    (None: deals never heard of the partner; its registrations hold, as they always did)."""
    return status is None or status not in ENDED


def ended_reasons(partner_id: str, status: PartnerStatus, why: str) -> tuple[str, str]:
    """The reason a registration closes because its partner's partnership ended: in full (for
    channel managers, with onboarding's reason) and as the partner is told it."""
    told = (
        f"partner {partner_id} is {status.value}: its registrations no longer protect their"
        " customers"
    )
    return (f"{told} ({why})" if why else told), told


def extension_refusal(
    status: PartnerStatus | None, allowed: Collection[PartnerStatus]
) -> str | None:
    """Why the partner may not extend a registration now (None: it may). A partner deals never
    heard of is not refused (its registrations predate the projection)."""
    if status is None or status in allowed:
        return None
    return (
        f"partner is {status.value}: its registrations keep their protection until their window"
        " ends, but none is extended until it may register again"
    )


def approval_refusal(
    status: PartnerStatus | None, allowed: Collection[PartnerStatus]
) -> str | None:
    """Why a review may not approve the partner's registration now (None: it may). Found in
    review: a suspended partner's registration was approved with a fresh window, which an
    extension, the lesser grant, would have been refused."""
    if status is None or status in allowed:
        return None
    return (
        f"partner is {status.value}: none of its registrations is approved until it may register"
        " again (reject it, or review it then)"
    )


def extensions_left(max_extensions: int, used: int, status: RegistrationStatus) -> int:
    """How many more extensions the policy in force allows the registration (only an approved
    one is extended; its partner's standing and its window are checked when it asks)."""
    if status is not RegistrationStatus.APPROVED:
        return 0
    return max(0, max_extensions - used)


def extend(
    policy: RulesOfEngagement,
    expires_at: datetime,
    extensions_used: int,
    status: RegistrationStatus,
    at: datetime,
) -> tuple[datetime | None, str]:
    """A protection-window extension under policy, asked at `at`: the new expiry, or None and
    why not. A window that has passed is over, whether or not the expiry job has marked it
    yet (found in review: another partner could hold the customer by then, and the extension
    gave two exclusive approvals)."""
    if status is not RegistrationStatus.APPROVED:
        return None, f"only approved registrations can be extended (this one is {status.value})"
    if expires_at <= at:
        return None, f"its protection window ended at {expires_at.isoformat()}"
    if extensions_used >= policy.max_extensions:
        return None, f"the policy allows {policy.max_extensions} extension(s) and none are left"
    days = policy.extension_days
    return expires_at + timedelta(days=days), f"extended by {days} days"
