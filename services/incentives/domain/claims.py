"""MDF claims: a partner asks for funds with proof, a channel manager approves or rejects.

A claim is requested only if the fund covers it at that moment, and approved only if it still
does when it is decided (the use case holds the fund's lock while it asks).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from services.incentives.domain.mdf import claim_decision
from shared.errors import Conflict

REQUESTED = "requested"
APPROVED = "approved"
REJECTED = "rejected"


class ClaimConflict(Conflict):
    """The claim cannot be requested or decided as asked (already decided, or the fund does
    not cover it)."""


@dataclass(frozen=True)
class ClaimAsk:
    """What a partner's claim asks for: money from its fund, with proof of the spending."""

    partner_id: str
    amount: Decimal
    description: str
    proof_reference: str


def check_request(available_now: Decimal, amount: Decimal) -> None:
    """A claim may be requested only for what the fund has available now."""
    ok, reason = claim_decision(available_now, amount)
    if not ok:
        raise ClaimConflict(reason)


@dataclass(frozen=True)
class Decision:
    status: str  # approved | rejected
    reason: str

    @property
    def debits(self) -> bool:
        """An approval takes the claimed amount out of the fund."""
        return self.status == APPROVED


def decide(
    claim_id: str,
    status: str,
    *,
    approve: bool,
    amount: Decimal,
    available_now: Decimal,
    note: str,
) -> Decision:
    """Decide a claim in `status`: only a requested claim may be decided, and approving it must
    not overdraw the fund (a refused approval leaves the claim requested)."""
    if status != REQUESTED:
        raise ClaimConflict(f"claim {claim_id} is already {status}")
    if not approve:
        return Decision(REJECTED, note or REJECTED)
    check_request(available_now, amount)
    return Decision(APPROVED, note or APPROVED)
