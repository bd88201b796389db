"""What a deals registration means to attribution: the status it holds when a deal snapshot and
a registration event disagree, and whether that status makes its partner the deal's source."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from shared.events.registrations import RegistrationStatus

# A registration makes its partner the deal's source once approved (and stays so when the deal
# closes: deals marks it won or lost then).
SOURCING_STATUSES = frozenset(
    {RegistrationStatus.APPROVED, RegistrationStatus.WON, RegistrationStatus.LOST}
)

# At one moment a snapshot and a registration event may both speak of a registration; the
# more advanced status wins then.
_STATUS_RANK = {
    RegistrationStatus.SUBMITTED: 0,
    RegistrationStatus.PENDING_REVIEW: 1,
    RegistrationStatus.APPROVED: 2,
    RegistrationStatus.REJECTED: 3,
    RegistrationStatus.EXPIRED: 3,
    RegistrationStatus.WON: 4,
    RegistrationStatus.LOST: 4,
}


def newest_status(
    held: RegistrationStatus | None,
    held_at: datetime | None,
    new: RegistrationStatus,
    new_at: datetime,
) -> RegistrationStatus:
    """The status to hold: the newer word's. A registration's status does not only move
    forward (deals sends an approved one back to review when a CRM merge displaces it or a
    link disagrees with the CRM), and its deal snapshots and events travel on two topics, read
    in any order. At the same moment, or when the held one's moment is unknown (kept before
    moments were), the more advanced one. None held: the new one."""
    if held is None:
        return new
    if held_at is None or new_at == held_at:
        return new if _STATUS_RANK[new] >= _STATUS_RANK[held] else held
    return new if new_at > held_at else held


def is_sourcing(status: RegistrationStatus) -> bool:
    """Whether a registration in this status is its partner's sourcing touchpoint."""
    return status in SOURCING_STATUSES


def lost_one_sources(others: Iterable[RegistrationStatus]) -> bool:
    """Whether a lost registration still sources its deal, given the statuses of the deal's
    other registrations. It does when none of them holds the deal: closed lost, reopened and
    won with nobody else registered on it, the partner that registered it sourced it. Once an
    approved or won one holds it, it does not (found in review: deals lets another partner link
    a reopened deal a lost registration no longer holds, and both were paid as its source)."""
    return not any(status in _HOLDING for status in others)


_HOLDING = frozenset({RegistrationStatus.APPROVED, RegistrationStatus.WON})
