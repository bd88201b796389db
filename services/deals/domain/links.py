"""Verified CRM links: a registration becomes linked to a CRM opportunity (and so, downstream,
its sourcing partner) only when the opportunity exists in the CRM projection, is the
registration's customer (its domain, or its name by the conflict check's matching), is held by
no other registration, had not closed before the registration was submitted, and its amount
agrees with the declared one; an amount that disagrees, or a customer alike by name on another
domain, sends the link to review instead of being trusted. A partner hears neither the CRM's
figures nor which of the refusals it met. A deal that closed after the registration was submitted closes it at once.

No I/O: the use case loads the opportunity and its holders and stores what this answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from services.deals.domain.customers import Customer
from services.deals.domain.rules import Decision
from shared.errors import Conflict
from shared.events.crm import DealStatus
from shared.events.registrations import RegistrationStatus

# A registration in these statuses holds its linked opportunity (nobody else may link it).
HOLDING_LINK = frozenset(
    {
        RegistrationStatus.SUBMITTED,
        RegistrationStatus.APPROVED,
        RegistrationStatus.PENDING_REVIEW,
        RegistrationStatus.WON,
    }
)
# Only a live registration can be linked later.
LINKABLE = frozenset(
    {RegistrationStatus.SUBMITTED, RegistrationStatus.APPROVED, RegistrationStatus.PENDING_REVIEW}
)


@dataclass(frozen=True)
class CrmDealSeen:
    """What the CRM projection knows of an opportunity, as the link check compares it."""

    deal_key: str
    customer: Customer
    amount: Decimal | None
    currency: str | None
    deleted: bool = False
    status: DealStatus = DealStatus.OPEN
    closed_at: datetime | None = None  # by the CRM's clock; None while open (or never known)


@dataclass(frozen=True)
class LinkVerdict:
    """A link that may be made: trusted, or (with the reason) sent to review. `closed`: the
    deal's outcome when it has already closed (after the registration was submitted), which
    the registration takes at once, as it would have had it been linked before the close.
    `told`: what the partner hears instead of `reason` (None: the same), never the CRM's
    figures or customer."""

    review: bool
    reason: str
    closed: DealStatus | None = None
    told: str | None = None

    @property
    def partner_reason(self) -> str:
        return self.reason if self.told is None else self.told


# What a partner hears of a review the CRM's deal sends its registration to: that it differs,
# never how (the CRM's amount, currency or customer are the vendor's, not the partner's).
DIFFERS_FROM_CRM = "the registration differs from the CRM deal it names: review"


def _refusal_for_partner(deal_key: str) -> Conflict:
    """One refusal for every link a partner may not make (found in review: distinct answers for
    an opportunity another partner's registration holds, or one a rep closed, with its outcome
    and time, let a partner probe the vendor's opportunities by guessing keys)."""
    return Conflict(
        f"no CRM deal {deal_key} this registration may link to (it is unknown, another"
        " customer's, linked to another registration, or closed before this registration was"
        " submitted)"
    )


def _closed_before(deal: CrmDealSeen, submitted_at: datetime | None) -> bool:
    """Whether the deal closed before a registration submitted at `submitted_at` (None: being
    submitted now, so any close the projection holds came first). A closed deal whose close
    time is unknown counts as closed before: nothing shows the registration preceded it."""
    if deal.status is DealStatus.OPEN:
        return False
    return submitted_at is None or deal.closed_at is None or deal.closed_at <= submitted_at


def verify_link(
    deal_key: str,
    customer: Customer,
    amount: Decimal,
    currency: str,
    deal: CrmDealSeen | None,
    other_holders: Sequence[RegistrationStatus],
    threshold: float,
    tolerance: Decimal,
    submitted_at: datetime | None = None,
    *,
    for_partner: bool = False,
) -> LinkVerdict:
    """May a registration on `customer` declaring `amount`, submitted at `submitted_at` (None:
    being submitted now), link to `deal_key`? Refused (409) when the deal is unknown, another
    customer's (one answer for both, so a partner cannot probe which deal keys exist), held by
    another registration, or closed before the registration was submitted (a registration
    made after the outcome sourced nothing, whoever owned the deal); a partner (`for_partner`)
    gets one answer for all four. To review when the amounts disagree beyond `tolerance` (a
    share of the CRM's amount), and when the customers match by name alone while their domains
    differ (Deutsche Bank, Deutsche Bahn: the conflict check reviews the same pair)."""
    match = None if deal is None or deal.deleted else customer.matches(deal.customer, threshold)
    if deal is None or match is None:
        if for_partner:
            raise _refusal_for_partner(deal_key)
        raise Conflict(f"no CRM deal {deal_key} for this registration's customer")
    if any(status in HOLDING_LINK for status in other_holders):
        if for_partner:
            raise _refusal_for_partner(deal_key)
        raise Conflict(f"CRM deal {deal_key} is already linked to another registration")
    if _closed_before(deal, submitted_at):
        if for_partner:
            raise _refusal_for_partner(deal_key)
        when = f" at {deal.closed_at.isoformat()}" if deal.closed_at else ""
        raise Conflict(
            f"CRM deal {deal_key} closed {deal.status.value}{when}, before this registration"
            " was submitted: a registration submitted after its deal closed cannot source it"
        )
    closed = None if deal.status is DealStatus.OPEN else deal.status
    mine, theirs = customer.domain, deal.customer.domain
    if match[0] == "name" and mine is not None and theirs is not None and mine != theirs:
        return LinkVerdict(
            True,
            f"CRM deal {deal_key}'s customer matches by name only and its domain ({theirs})"
            f" is not the registration's ({mine}): review",
            closed,
            DIFFERS_FROM_CRM,
        )
    if deal.amount is None or deal.currency is None:
        return LinkVerdict(True, f"CRM deal {deal_key} has no amount to reconcile: review", closed)
    if deal.currency != currency:
        return LinkVerdict(
            True,
            f"declared currency {currency} differs from CRM deal {deal_key}'s {deal.currency}:"
            " review",
            closed,
            DIFFERS_FROM_CRM,
        )
    if abs(amount - deal.amount) > tolerance * deal.amount:
        return LinkVerdict(
            True,
            f"declared amount {amount} {currency} differs from CRM deal {deal_key}'s"
            f" {deal.amount} by more than {tolerance:%}: review",
            closed,
            DIFFERS_FROM_CRM,
        )
    return LinkVerdict(False, f"linked to CRM deal {deal_key}", closed)


def linkable(status: RegistrationStatus, current_key: str | None, deal_key: str) -> bool:
    """Whether a registration may be linked now: live, and not linked to another deal. True
    means there is something to do; False that it is already linked to this deal."""
    if status not in LINKABLE:
        raise Conflict(f"registration is {status.value}; only a live registration is linked")
    if current_key is not None and current_key != deal_key:
        raise Conflict(f"registration is already linked to CRM deal {current_key}")
    return current_key is None


def decided_with_link(decision: Decision, verdict: LinkVerdict | None) -> Decision:
    """A new registration's decision with its CRM link: an approval whose link goes to review
    is pending review instead (every other decision stands), with the link's reason."""
    if verdict is None:
        return decision
    status = decision.status
    if verdict.review and status is RegistrationStatus.APPROVED:
        status = RegistrationStatus.PENDING_REVIEW
    return replace(
        decision,
        status=status,
        reasons=(*decision.reasons, verdict.reason),
        partner_reasons=(*decision.partner_reasons, verdict.partner_reason),
    )


@dataclass(frozen=True)
class MergedLinks:
    """Who holds a surviving CRM deal after a merge moved other deals' links onto it."""

    keeper: str | None  # the registration that keeps the link (None: nobody holds it)
    displaced: tuple[str, ...]  # live registrations that lose it and go to review


def links_after_merge(
    linked: Sequence[tuple[str, RegistrationStatus, datetime]],
) -> MergedLinks:
    """A CRM deal is held by one registration (`HOLDING_LINK`); a merge can bring several onto
    the survivor. `linked` is every registration now linked to it: (id, status, submitted).

    One keeps the link: a won one if any (its deal already closed with it; a won registration
    cannot be reviewed again), else the first submitted, as the rules of engagement rank
    competing registrations. Every other live one (submitted, approved, pending review) loses
    the link and goes to review; closed ones (lost, expired, rejected, another won) keep theirs
    as history, since they hold nothing now or cannot be decided again."""
    holding = sorted(
        (submitted, registration_id, status)
        for registration_id, status, submitted in linked
        if status in HOLDING_LINK
    )
    if len(holding) <= 1:
        return MergedLinks(holding[0][1] if holding else None, ())
    won = [h for h in holding if h[2] is RegistrationStatus.WON]
    keeper = (won or holding)[0][1]
    displaced = tuple(
        registration_id
        for _, registration_id, status in holding
        if registration_id != keeper and status in LINKABLE
    )
    return MergedLinks(keeper, displaced)
