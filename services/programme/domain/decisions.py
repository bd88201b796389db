"""Which decisions the programme counts, and whether a person made them.

The programme's goal is that most onboarding and registration decisions need no human. The
events say what was decided; who decided follows from how the owning services decide:
- onboarding: an application the scoring rejects is rejected at once, by the service; every
  other outcome is a channel manager's review, whose reason starts "manual review".
- deals: a registration is decided by the rules of engagement when it is submitted (approved or
  rejected at once; pending review otherwise). A pending one is then decided by a channel
  manager's review (reason "manual review: ...") or, past its review deadline, by the review
  policy (a system decision).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared.events.partners import PartnerChange, PartnerStatus
from shared.events.registrations import RegistrationStatus

# How both services word a person's decision (onboarding: "manual review: application
# approved (score ...)"; deals: "manual review: <note>"). tests/unit/test_programme_domain.py
# pins both.
MANUAL_REVIEW = "manual review"


class Decider(StrEnum):
    AUTOMATIC = "automatic"
    MANUAL = "manual"


def decider(reason: str) -> Decider:
    return Decider.MANUAL if reason.startswith(MANUAL_REVIEW) else Decider.AUTOMATIC


def onboarding_decision(
    change: PartnerChange, previous: PartnerStatus | None, reason: str
) -> Decider | None:
    """Who decided an application, if this partner version is the decision on it."""
    if change not in (PartnerChange.QUALIFIED, PartnerChange.REJECTED):
        return None
    if previous is not PartnerStatus.APPLIED:
        return None
    return decider(reason)


# What a registration decision ends in. Won: a review approved a registration whose deal had
# already closed won while it waited.
DECIDED = frozenset(
    {RegistrationStatus.APPROVED, RegistrationStatus.REJECTED, RegistrationStatus.WON}
)


# The outcomes that let the partner in or the deal through: an application qualified, a
# registration approved (or won, approved by a review after its deal had closed won).
APPROVING = frozenset(
    {PartnerChange.QUALIFIED.value, RegistrationStatus.APPROVED.value, RegistrationStatus.WON.value}
)


def approves(outcome: str) -> bool:
    """Whether a counted decision's outcome (a partner change or a registration status) is a
    yes; every other counted outcome is a rejection."""
    return outcome in APPROVING


class MoveKind(StrEnum):
    PENDING = "pending"  # waits for a decision from now
    DECISION = "decision"


@dataclass(frozen=True)
class RegistrationMove:
    kind: MoveKind
    outcome: RegistrationStatus | None = None
    automatic: bool | None = None
    at_submission: bool = False


def first_decision(status: RegistrationStatus) -> RegistrationMove | None:
    """The rules' decision at submission: a decision, or the start of a review."""
    if status in DECIDED:
        return RegistrationMove(MoveKind.DECISION, status, automatic=True, at_submission=True)
    if status is RegistrationStatus.PENDING_REVIEW:
        return RegistrationMove(MoveKind.PENDING)
    return None


def status_move(
    previous: RegistrationStatus, status: RegistrationStatus, reason: str
) -> RegistrationMove | None:
    """A later change: a pending registration decided (by whom), or one sent (back) to review.
    Expiry, closing with the deal and other changes decide nothing."""
    if previous is RegistrationStatus.PENDING_REVIEW and status in DECIDED:
        automatic = decider(reason) is Decider.AUTOMATIC
        return RegistrationMove(MoveKind.DECISION, status, automatic=automatic)
    if status is RegistrationStatus.PENDING_REVIEW and previous is not status:
        return RegistrationMove(MoveKind.PENDING)
    return None
