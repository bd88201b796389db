"""The re-registration cooldown: after a partner's registration expires, that partner may not
register the same customer again until the policy's `reregistration_cooldown_days` have passed
since its protection ended.

Why: without it a partner re-registered the moment its registration expired and got a fresh
window and a fresh extension, holding the customer for ever, while the partners it had turned
away never got the head start the end of a window is meant to give them (found from outside,
probe p9).

What counts, and why:
- only `expired` registrations: the window ran out without the deal closing (not one the
  partner's own expulsion or rejection ended: it did not let it run out, and a partner
  reinstated on appeal registers its customers again at once, as others may). A rejected one
  never protected anything; a won or lost one closed with its CRM opportunity (the deal, not
  the calendar, ended it, and a new opportunity on the customer is a new deal);
- the same partner only: other partners are not held back (the cooldown is their turn);
- the customer as the conflict check matches it (registrable domain, or names alike) and a
  shared product (or none named): another product of the customer is another deal, as for a
  repeat of a live registration;
- the cooldown counts from the protection's end (`expires_at`), not from when the expiry job
  noticed it, so it does not depend on how often the job runs.

A repeat of a live registration (its own, still holding the customer) is refused the same
way: it would earn a fresh window around the extension limit.

No I/O: the service loads the partner's registrations that expired within the cooldown.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from services.deals.domain.rules import (
    HOLDING,
    ExistingRegistration,
    RegistrationRequest,
    RulesOfEngagement,
)
from shared.events.registrations import RegistrationStatus


def cooldown_start(policy: RulesOfEngagement, at: datetime) -> datetime:
    """Registrations that expired after this moment may still cool down a request at `at`."""
    return at - timedelta(days=policy.reregistration_cooldown_days)


def cooling_down(
    policy: RulesOfEngagement,
    request: RegistrationRequest,
    expired: Sequence[ExistingRegistration],
) -> ExistingRegistration | None:
    """The partner's own ended registration on the request's customer whose cooldown is not
    over at submission (the latest to end, so the answer names when the partner may register
    again); None when the partner may register. `expired` may hold the partner's approved
    registrations too: one whose window has passed has ended, whether or not the expiry job
    has marked it yet (found in review: registering again in that gap got a fresh window)."""
    days = policy.reregistration_cooldown_days
    if days <= 0:
        return None
    latest: ExistingRegistration | None = None
    for other in expired:
        if other.partner_id != request.partner_id or not _ended(other, request.submitted_at):
            continue
        if (
            other.expires_at is None
            or other.expires_at + timedelta(days=days) <= request.submitted_at
        ):
            continue
        if other.products and request.products and not (other.products & request.products):
            continue
        if request.customer.matches(other.customer, policy.name_similarity_threshold) is None:
            continue
        if latest is None or (latest.expires_at or other.expires_at) < other.expires_at:
            latest = other
    return latest


def _ended(registration: ExistingRegistration, at: datetime) -> bool:
    if registration.status is RegistrationStatus.EXPIRED:
        return True
    return (
        registration.status is RegistrationStatus.APPROVED
        and registration.expires_at is not None
        and registration.expires_at <= at
    )


def cooldown_refusal(policy: RulesOfEngagement, expired: ExistingRegistration) -> str:
    """Why the partner may not register the customer yet, and from when it may."""
    assert expired.expires_at is not None  # cooling_down answers only registrations that ended
    days = policy.reregistration_cooldown_days
    again = expired.expires_at + timedelta(days=days)
    return (
        f"this partner's registration {expired.registration_id} on this customer expired at"
        f" {expired.expires_at.isoformat()}: under the re-registration cooldown ({days} days,"
        f" policy {policy.version}) this partner may register this customer again from"
        f" {again.isoformat()}"
    )


def live_repeat(
    policy: RulesOfEngagement, request: RegistrationRequest, own: list[ExistingRegistration]
) -> ExistingRegistration | None:
    """The partner's own live registration that the request repeats: same customer, a shared
    product (or none named), still inside its window. A repeat would otherwise earn a fresh
    protection window, around the extension limit."""
    for other in sorted(own, key=lambda r: (r.registered_at, r.registration_id)):
        if other.partner_id != request.partner_id or other.status not in HOLDING:
            continue
        if other.expires_at is not None and other.expires_at <= request.submitted_at:
            continue
        if other.products and request.products and not (other.products & request.products):
            continue
        if request.customer.matches(other.customer, policy.name_similarity_threshold):
            return other
    return None


def repeat_refusal(repeat: ExistingRegistration) -> str:
    """Why a repeat is refused, naming the partner's own registration."""
    until = f", protected until {repeat.expires_at.isoformat()}" if repeat.expires_at else ""
    return (
        f"this partner already holds live registration {repeat.registration_id} on this"
        f" customer ({repeat.status.value}{until}): a repeat gets no new protection window;"
        " request an extension of it instead"
    )
