"""A registration's lifecycle after its decision: who hears about a decision, when a review may
happen, and when a partner is warned that its protection window ends.

No I/O: the use cases load the registration, ask these rules and store what they answer.
"""

from __future__ import annotations

from datetime import datetime

from shared.errors import Conflict
from shared.events.notifications import NotificationKind
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


def review_outcome(
    status: RegistrationStatus, approve: bool, note: str
) -> tuple[RegistrationStatus, str]:
    """A channel manager's review: only a registration pending review can be reviewed; it
    becomes approved or rejected, with the note (or the outcome) as the reason."""
    if status is not RegistrationStatus.PENDING_REVIEW:
        raise Conflict(f"registration is {status.value}, not pending_review")
    outcome = RegistrationStatus.APPROVED if approve else RegistrationStatus.REJECTED
    return outcome, f"manual review: {note or outcome.value}"


def expiry_warning_days(expires_at: datetime, at: datetime) -> int | None:
    """Days left to announce in an expiry warning at `at`, at least one; None when the window
    has already ended (the expiry itself tells the partner)."""
    if expires_at <= at:
        return None
    return max(1, (expires_at - at).days)
