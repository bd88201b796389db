"""MDF pre-approvals: a partner asks for a budget for a campaign before spending it; a channel
manager approves it, which reserves the amount in the partner's fund, or rejects it with a
reason. Claims against an approved pre-approval draw on its reservation, several partial ones
up to the approved amount; what is left unclaimed is released when the pre-approval expires
(the campaign's end + a claim window).

The reservation is money of the fund that nothing else may spend: a fund's available amount is
its live lots - deficit - reserved. A pre-approval's `reserved` is what it still holds; its
`pending` is the part of that which requested (undecided) claims already ask for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from shared.errors import Conflict

REQUESTED = "requested"
APPROVED = "approved"
REJECTED = "rejected"
EXPIRED = "expired"

ZERO = Decimal("0.00")


class PreapprovalConflict(Conflict):
    """The pre-approval cannot be requested, decided or claimed against as asked."""


@dataclass(frozen=True)
class CampaignBudget:
    """What a partner asks for: a budget for one campaign."""

    reference: str  # the partner's own: a retry with the same one is the same request
    campaign_id: str
    activity_kind: str
    description: str
    starts_on: date
    ends_on: date
    amount: Decimal
    currency: str


def check_dates(starts_on: date, ends_on: date) -> None:
    """A campaign ends on or after the day it starts."""
    if ends_on < starts_on:
        raise ValueError(f"ends_on {ends_on} is before starts_on {starts_on}")


def claim_deadline(campaign_ends_on: date, claim_window_days: int) -> datetime:
    """When claims against a pre-approval stop being accepted and its reservation is released:
    the end of its campaign's last day (as programme last announced it, never the activity
    dates the partner typed) plus the claim window."""
    return datetime.combine(campaign_ends_on + timedelta(days=1 + claim_window_days), time(), UTC)


@dataclass(frozen=True)
class Preapproval:
    preapproval_id: str
    partner_id: str
    status: str
    amount: Decimal  # asked for; once approved, the approved amount
    reserved: Decimal  # what it still holds in the fund
    claimed: Decimal  # approved claims against it
    pending: Decimal  # requested claims against it, not decided yet
    expires_at: datetime | None  # set at approval

    @property
    def claimable(self) -> Decimal:
        """What a new claim may still ask for."""
        return self.reserved - self.pending if self.status == APPROVED else ZERO

    def describe(self) -> str:
        return f"approved {self.amount}, claimed {self.claimed}, awaiting decision {self.pending}"


@dataclass(frozen=True)
class Decided:
    preapproval: Preapproval
    reason: str
    changed: bool  # False: a retry of the decision already recorded (nothing to write)


def decide(
    pre: Preapproval,
    *,
    approve: bool,
    note: str,
    available_now: Decimal,
    at: datetime,
    expires_at: datetime | None,
) -> Decided:
    """Approve (reserve the amount, if the fund covers it) or reject (a reason is required) a
    requested pre-approval. Repeating the decision already taken changes nothing; the other
    decision is a conflict. `expires_at` is the claim deadline from its campaign's end
    (claim_deadline), needed only to approve."""
    wanted = APPROVED if approve else REJECTED
    if pre.status != REQUESTED:
        if pre.status == wanted:
            return Decided(pre, note, changed=False)
        raise PreapprovalConflict(f"pre-approval {pre.preapproval_id} is already {pre.status}")
    if not approve:
        if not note.strip():
            raise PreapprovalConflict("a rejection needs a reason (note)")
        return Decided(replace(pre, status=REJECTED), note, changed=True)
    if expires_at is None:
        raise PreapprovalConflict(
            f"pre-approval {pre.preapproval_id} cannot be approved without its campaign's end"
        )
    if expires_at <= at:
        raise PreapprovalConflict(
            f"pre-approval {pre.preapproval_id} cannot be approved: its claim window "
            f"closed at {expires_at.isoformat()}"
        )
    if pre.amount > available_now:
        raise PreapprovalConflict(
            f"pre-approval of {pre.amount} exceeds the available fund of {available_now}"
        )
    approved = replace(pre, status=APPROVED, reserved=pre.amount, expires_at=expires_at)
    return Decided(approved, note or APPROVED, changed=True)


def check_claim(pre: Preapproval, amount: Decimal, at: datetime) -> None:
    """A claim against a pre-approval: only while it is approved and inside its claim window,
    and never for more than is left of it (claims awaiting a decision count as taken)."""
    if amount <= 0:
        raise PreapprovalConflict("a claim must be for a positive amount")
    closed = pre.expires_at is not None and pre.expires_at <= at
    if pre.status == EXPIRED or (pre.status == APPROVED and closed):
        # The same answer before and after the expiry job's run: the deadline is the reason.
        deadline = pre.expires_at.isoformat() if pre.expires_at else "its deadline"
        raise PreapprovalConflict(
            f"pre-approval {pre.preapproval_id} stopped accepting claims at {deadline}: its "
            "campaign's last day plus the claim window"
        )
    if pre.status != APPROVED:
        raise PreapprovalConflict(
            f"pre-approval {pre.preapproval_id} is {pre.status}: claims need an approved one"
        )
    if amount > pre.claimable:
        raise PreapprovalConflict(
            f"claim of {amount} exceeds what is left of pre-approval {pre.preapproval_id}: "
            f"{pre.claimable} ({pre.describe()})"
        )


def claim_approved(pre: Preapproval, amount: Decimal) -> Preapproval:
    """An approved claim moves its amount from reserved to claimed (and out of pending)."""
    if amount > pre.reserved:
        raise PreapprovalConflict(
            f"claim of {amount} exceeds what pre-approval {pre.preapproval_id} holds: "
            f"{pre.reserved}"
        )
    return replace(
        pre,
        reserved=pre.reserved - amount,
        claimed=pre.claimed + amount,
        pending=pre.pending - amount,
    )


def claim_rejected(pre: Preapproval, amount: Decimal) -> tuple[Preapproval, Decimal]:
    """A rejected claim gives its amount back to the pre-approval; once the pre-approval has
    expired nothing can use it any more, so it is released from the fund's reservation.
    Returns the pre-approval and what is released."""
    pending = pre.pending - amount
    if pre.status == EXPIRED:
        return replace(pre, reserved=pre.reserved - amount, pending=pending), amount
    return replace(pre, pending=pending), ZERO


def expire(pre: Preapproval, at: datetime) -> tuple[Preapproval, Decimal] | None:
    """An approved pre-approval past its deadline expires: what it holds that no claim awaiting
    a decision asks for is released (those claims are still decided against it). Returns the
    expired pre-approval and what is released, or None if it is not due."""
    if pre.status != APPROVED or pre.expires_at is None or pre.expires_at > at:
        return None
    released = pre.reserved - pre.pending
    return replace(pre, status=EXPIRED, reserved=pre.pending), released
