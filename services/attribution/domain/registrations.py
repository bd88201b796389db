"""What a deals registration means to attribution: the status it holds when a deal snapshot and
a registration event disagree, and whether that status makes its partner the deal's source."""

from __future__ import annotations

from shared.events.registrations import RegistrationStatus

# A registration makes its partner the deal's source once approved (and stays so when the deal
# closes: deals marks it won or lost then).
SOURCING_STATUSES = frozenset(
    {RegistrationStatus.APPROVED, RegistrationStatus.WON, RegistrationStatus.LOST}
)

# Registration statuses only move forward; a snapshot and a registration event may arrive in
# either order, so the more advanced status wins.
_STATUS_RANK = {
    RegistrationStatus.SUBMITTED: 0,
    RegistrationStatus.PENDING_REVIEW: 1,
    RegistrationStatus.APPROVED: 2,
    RegistrationStatus.REJECTED: 3,
    RegistrationStatus.EXPIRED: 3,
    RegistrationStatus.WON: 4,
    RegistrationStatus.LOST: 4,
}


def more_advanced(held: RegistrationStatus | None, new: RegistrationStatus) -> RegistrationStatus:
    """The status to hold: the new one unless the held one is further along (ties: the new)."""
    if held is None:
        return new
    return new if _STATUS_RANK[new] >= _STATUS_RANK[held] else held


def is_sourcing(status: RegistrationStatus) -> bool:
    """Whether a registration in this status is its partner's sourcing touchpoint."""
    return status in SOURCING_STATUSES
