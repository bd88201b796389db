"""MDF claims: a partner asks for funds with proof, a channel manager approves or rejects.

A claim is requested only if the fund covers it at that moment, and approved only if it still
does when it is decided (the use case holds the fund's lock while it asks). A proof reference
names one claim of its partner: the same claim asked again under it (a form sent twice, a
client's retry) is answered with the recorded one, so one proof is never paid twice.
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


@dataclass(frozen=True)
class RecordedClaim:
    """A claim as recorded under its partner's proof reference: what it asked for, in which
    currency, and the pre-approval it draws on (None: the fund's unreserved money)."""

    claim_id: str
    proof_reference: str
    amount: Decimal
    currency: str
    description: str
    preapproval_id: str | None


def check_repeat(
    recorded: RecordedClaim, ask: ClaimAsk, currency: str, preapproval_id: str | None
) -> None:
    """A claim asked under `recorded`'s proof reference is a repeat of it (answered with it)
    when it asks for the same money, in the same currency, for the same thing, from the same
    place (the fund, or the same pre-approval). Anything else is a ClaimConflict: the proof is
    claimed already, and a second claim on it would pay it twice."""
    first = (recorded.amount, recorded.currency, recorded.description, recorded.preapproval_id)
    again = (ask.amount, currency, ask.description, preapproval_id)
    if again == first:
        return
    raise ClaimConflict(
        f"proof reference {recorded.proof_reference} already names claim {recorded.claim_id}, "
        f"{_told(*first)}; this request is {_told(*again)}: a claim on other spending needs "
        "its own proof reference"
    )


def _told(amount: Decimal, currency: str, description: str, preapproval_id: str | None) -> str:
    source = f"pre-approval {preapproval_id}" if preapproval_id else "the fund"
    return f"{amount:.2f} {currency} for '{description}' from {source}"


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
