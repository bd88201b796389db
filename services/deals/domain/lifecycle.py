"""A registration's lifecycle after its decision: who hears about a decision, when a review may
happen, and when a partner is warned that its protection window ends.

No I/O: the use cases load the registration, ask these rules and store what they answer.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from services.deals.domain.ledger import LedgerWhat
from shared.errors import Conflict
from shared.events.crm import DealStatus
from shared.events.notifications import NotificationKind, NotificationKindV2
from shared.events.registrations import RegistrationStatus

_DECISION_KINDS = {
    RegistrationStatus.APPROVED: NotificationKind.REGISTRATION_APPROVED,
    RegistrationStatus.REJECTED: NotificationKind.REGISTRATION_REJECTED,
    RegistrationStatus.PENDING_REVIEW: NotificationKind.PENDING_REVIEW,
}


def decision_notification_kind(status: RegistrationStatus, conflicted: bool) -> NotificationKind:
    """What the partner is told about its decision: a rejection because of a conflict is a
    `conflict` (the partner sees the evidence), any other one a plain rejection."""
    if status is RegistrationStatus.REJECTED and conflicted:
        return NotificationKind.CONFLICT
    try:
        return _DECISION_KINDS[status]
    except KeyError:
        raise ValueError(f"{status.value} is not a decision") from None


def window_after_review(
    review_began_at: datetime, expires_at: datetime | None, approved_at: datetime
) -> datetime | None:
    """The end of an approved registration's protection when a review approved it: what was
    left of its window when the review began (its submission, for a review its decision
    started), counted from the approval. The review's time no longer eats it (a registration
    reviewed past its window's end was approved to expire at the next run, its extension
    refused and its partner cooled down), and it earns no more than was left (found in review:
    a registration sent back to review by a later CRM link was given its whole window again,
    around the extension limit). Never earlier than it was; None when nothing moves."""
    if expires_at is None:
        return None
    restarted = approved_at + max(expires_at - review_began_at, timedelta(0))
    return restarted if restarted > expires_at else None


def review_outcome(
    status: RegistrationStatus, approve: bool, note: str, deal_outcome: str | None = None
) -> tuple[RegistrationStatus, str]:
    """A channel manager's review: only a registration pending review can be reviewed; it
    becomes approved or rejected, with the note (or the outcome) as the reason. One whose
    linked opportunity already closed won while it waited is won when approved."""
    if status is not RegistrationStatus.PENDING_REVIEW:
        raise Conflict(f"registration is {status.value}, not pending_review")
    outcome = RegistrationStatus.APPROVED if approve else RegistrationStatus.REJECTED
    reason = f"manual review: {note or outcome.value}"
    if approve and deal_outcome == DealStatus.WON.value:
        return RegistrationStatus.WON, f"{reason}; its linked CRM opportunity closed won"
    return outcome, reason


def close_with_opportunity(
    status: RegistrationStatus, deal_key: str, outcome: DealStatus
) -> tuple[RegistrationStatus, str]:
    """A linked registration when its opportunity closes. An approved one closes with it. One
    still awaiting review was never decided, so it is not rejected for an old reason: a lost
    deal leaves nothing to protect (lost), a won one stays for the review to decide, which now
    knows the outcome (approved: won; rejected: rejected). One expired since the close (its
    window held when the deal closed; the close was heard after the expiry job ran) closes as
    the approved one it was then."""
    if status in (RegistrationStatus.APPROVED, RegistrationStatus.EXPIRED):
        closed = RegistrationStatus.WON if outcome is DealStatus.WON else RegistrationStatus.LOST
        late = (
            " inside its protection window (the close was heard after the window's end)"
            if status is RegistrationStatus.EXPIRED
            else ""
        )
        return closed, f"linked CRM opportunity {deal_key} closed {outcome.value}{late}"
    if outcome is DealStatus.LOST:
        return (
            RegistrationStatus.LOST,
            f"linked CRM opportunity {deal_key} closed lost while the registration awaited review",
        )
    return (
        RegistrationStatus.PENDING_REVIEW,
        f"linked CRM opportunity {deal_key} closed won while the registration awaited review:"
        " the review decides it (approved: won, rejected: rejected)",
    )


_STATUS_KINDS: dict[RegistrationStatus, NotificationKind | NotificationKindV2] = {
    **_DECISION_KINDS,
    RegistrationStatus.EXPIRED: NotificationKind.EXPIRED,
    RegistrationStatus.WON: NotificationKindV2.REGISTRATION_WON,
    RegistrationStatus.LOST: NotificationKindV2.REGISTRATION_LOST,
}


def status_notification(
    what: LedgerWhat, status: RegistrationStatus
) -> NotificationKind | NotificationKindV2:
    """What the partner and the direct owner are told of a change after the first decision."""
    if what is LedgerWhat.EXTENDED:
        return NotificationKindV2.REGISTRATION_EXTENDED
    if what is LedgerWhat.ESCALATED:
        return NotificationKindV2.REVIEW_ESCALATED
    return _STATUS_KINDS.get(status, NotificationKind.PENDING_REVIEW)


_LIVE = frozenset(
    {RegistrationStatus.SUBMITTED, RegistrationStatus.APPROVED, RegistrationStatus.PENDING_REVIEW}
)


def merge_is_told(what: LedgerWhat, status: RegistrationStatus) -> bool:
    """Whether the partner and the direct owners are told of this change: a CRM merge moving a
    closed registration (won, lost, expired or rejected long ago) tells no one (found in
    review: it was told again as a new win or rejection, under its old status's kind, and
    integrations keyed on the kind counted a second win). Its status event still goes out:
    downstream moves what it holds by it."""
    return what is not LedgerWhat.MERGED or status in _LIVE


def expiry_warning_days(expires_at: datetime, at: datetime) -> int | None:
    """Days left to announce in an expiry warning at `at`, at least one, a day begun counting
    whole (6 days and 23 hours left is 7: rounded down, a partner was told a day less than it
    had); None when the window has already ended (the expiry itself tells the partner)."""
    if expires_at <= at:
        return None
    return max(1, math.ceil((expires_at - at) / timedelta(days=1)))
