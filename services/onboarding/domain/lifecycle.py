"""The partner status machine: which status may follow which, and why not when it may not.

    applied -> qualified | rejected
    qualified -> onboarding -> active
    active <-> grace (requalification; a cured grace returns to active, possibly demoted)
    active | grace -> suspended -> active (reinstated)
    onboarding | active | grace | suspended -> expelled -> onboarding (reinstated: re-onboard)

An upheld appeal of a programme-year expulsion undoes it (`check_appeal_reversal`): the
partner returns to active as if it had not been expelled. No other path takes that step (not
requalification, not a manual change), so it is not one of the TRANSITIONS.

`rejected` is final for that application (a new application from the same domain is a
duplicate of it); a reinstated expelled partner goes through the checklist again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from shared.errors import Conflict
from shared.events.notifications import NotificationKind
from shared.events.partners import PartnerChange
from shared.events.partners import PartnerStatus as S

TRANSITIONS: MappingProxyType[S, frozenset[S]] = MappingProxyType(
    {
        S.APPLIED: frozenset({S.QUALIFIED, S.REJECTED}),
        S.QUALIFIED: frozenset({S.ONBOARDING, S.EXPELLED}),
        S.REJECTED: frozenset(),
        S.ONBOARDING: frozenset({S.ACTIVE, S.EXPELLED}),
        S.ACTIVE: frozenset({S.GRACE, S.SUSPENDED, S.EXPELLED}),
        S.GRACE: frozenset({S.ACTIVE, S.SUSPENDED, S.EXPELLED}),
        S.SUSPENDED: frozenset({S.ACTIVE, S.EXPELLED}),
        S.EXPELLED: frozenset({S.ONBOARDING}),
    }
)


class IllegalTransition(Conflict):
    """A status change the partner lifecycle does not allow (the message says which are)."""


# What an upheld appeal of an annual review restores: the status the review left -> the one
# before it (a demotion or a probation leaves the status; an expulsion is undone).
APPEAL_REVERSALS: MappingProxyType[S, frozenset[S]] = MappingProxyType(
    {S.EXPELLED: frozenset({S.ACTIVE, S.GRACE, S.SUSPENDED})}
)


def appeal_restores(
    before: S, grace_until_before: datetime | None, decided_at: datetime, at: datetime
) -> tuple[S, datetime | None]:
    """What an upheld appeal of an expulsion restores at `at`: the status before the review
    (active, in grace, or suspended: a channel manager's suspension stays until one lifts it),
    and in grace what was left of it when the review decided (found in review: the grace came
    back without an end, so the next run demoted or suspended the partner at once, and a
    manual suspension came back as active, lifting it with no one deciding so). A grace whose
    end the review did not record (reviews before it was kept) comes back as active: the next
    run judges the partner and starts a grace of its own if it still falls short."""
    if before is S.SUSPENDED:
        return S.SUSPENDED, None
    if before is S.GRACE and grace_until_before is not None:
        return S.GRACE, at + max(grace_until_before - decided_at, timedelta(0))
    return S.ACTIVE, None


def check_appeal_reversal(partner_id: str, current: S, target: S) -> None:
    """An upheld appeal moves `current` back to `target` only where it undoes the review."""
    if current == target or target in APPEAL_REVERSALS.get(current, frozenset()):
        return
    raise IllegalTransition(
        f"partner {partner_id} cannot go back from {current.value} to {target.value} on appeal"
    )


def allowed_next(current: S) -> frozenset[S]:
    return TRANSITIONS[current]


def check_transition(partner_id: str, current: S, target: S) -> None:
    """Raise IllegalTransition unless `current -> target` is a lifecycle step."""
    allowed = TRANSITIONS[current]
    if target in allowed:
        return
    if target == current:
        raise IllegalTransition(f"partner {partner_id} is already {current.value}")
    options = ", ".join(sorted(s.value for s in allowed)) or "none (final)"
    raise IllegalTransition(
        f"partner {partner_id} cannot go from {current.value} to {target.value}; "
        f"allowed next: {options}"
    )


# Statuses in which a partner is part of the program and is requalified.
IN_PROGRAM = frozenset({S.ACTIVE, S.GRACE, S.SUSPENDED})

# Statuses in which a partner's competencies, authorisations and standing are re-evaluated.
NOT_EVALUATED = frozenset({S.APPLIED, S.REJECTED, S.EXPELLED})


class Change(StrEnum):
    """What happened to a partner, as onboarding names it: the contract's `PartnerChange`
    vocabulary, plus `grace_cleared` (a grace period cured), which the contract does not have."""

    APPLIED = "applied"
    QUALIFIED = "qualified"
    REJECTED = "rejected"
    ONBOARDING = "onboarding"
    ACTIVATED = "activated"
    TIER_CHANGED = "tier_changed"
    AUTHORISATIONS_CHANGED = "authorisations_changed"
    GRACE_STARTED = "grace_started"
    GRACE_CLEARED = "grace_cleared"
    DEMOTED = "demoted"
    SUSPENDED = "suspended"
    EXPELLED = "expelled"
    REINSTATED = "reinstated"
    UPDATED = "updated"

    @property
    def published(self) -> PartnerChange:
        """The change as the contract names it: `grace_cleared` is published as `updated` (the
        snapshot's reason says what happened)."""
        if self is Change.GRACE_CLEARED:
            return PartnerChange.UPDATED
        return PartnerChange(self.value)


# Changes a partner is told about whatever its status did.
_NOTIFICATION_KINDS = MappingProxyType(
    {
        Change.TIER_CHANGED: NotificationKind.TIER_CHANGED,
        Change.GRACE_STARTED: NotificationKind.REQUALIFICATION,
        Change.GRACE_CLEARED: NotificationKind.REQUALIFICATION,
        Change.DEMOTED: NotificationKind.REQUALIFICATION,
    }
)


def notification_kind(change: Change, before: S, after: S) -> NotificationKind | None:
    """What a partner is told about a new version of itself: tier and requalification news
    by their kind, any other status change as a status notification, nothing otherwise."""
    kind = _NOTIFICATION_KINDS.get(change)
    if kind is None and after != before:
        return NotificationKind.PARTNER_STATUS
    return kind


def manual_status_change(
    partner_id: str,
    current: S,
    target: S,
    *,
    checklist: tuple[str, ...],
    completed: Mapping[str, str],
    at: datetime,
) -> tuple[Change, dict[str, object]]:
    """A channel manager's decision (suspend, expel, reinstate): the change it makes and the
    partner fields it sets. Any lifecycle-legal step, except activating an incomplete
    onboarding and the statuses qualification decides."""
    check_transition(partner_id, current, target)
    if target is S.SUSPENDED:
        return Change.SUSPENDED, {
            "status": target.value,
            "suspended_at": at,
            "suspended_by_requalification": False,
            "grace_until": None,
        }
    if target is S.EXPELLED:
        return Change.EXPELLED, {"status": target.value, "grace_until": None}
    if target is S.ACTIVE and current is S.ONBOARDING:
        missing = [item for item in checklist if item not in completed]
        raise Conflict(
            f"partner {partner_id} becomes active when its checklist is complete; missing: "
            + ", ".join(missing)
        )
    if target is S.ACTIVE:
        change = Change.REINSTATED if current is S.SUSPENDED else Change.UPDATED
        return change, {
            "status": target.value,
            "suspended_at": None,
            "suspended_by_requalification": False,
            "grace_until": None,
        }
    if target is S.ONBOARDING:
        # Back from expulsion: the checklist (its evidence too) and the agreement start over.
        return Change.REINSTATED, {
            "status": target.value,
            "checklist": {},
            "checklist_evidence": {},
            "agreement_valid_until": None,
            "suspended_at": None,
            "grace_until": None,
        }
    raise Conflict(
        f"{target.value} is decided by qualification (POST /applications/{{id}}/decision), "
        "not set by hand"
    )


def check_awaiting_review(partner_id: str, status: S, outcome: str) -> None:
    """An application still applied that the scoring did not reject waits for a channel
    manager: one it sent to review, and one it recommends (self-declared figures approve no
    one by themselves)."""
    if status is not S.APPLIED or outcome not in ("review", "approve"):
        raise Conflict(
            f"partner {partner_id} is not waiting for review (status {status.value}, "
            f"qualification {outcome})"
        )


# Partners no certification is recorded for (nor people registered with).
NOT_CERTIFIED = frozenset({S.REJECTED, S.EXPELLED})


def check_may_be_certified(partner_id: str, status: S) -> None:
    """Certifications are recorded for any partner but a rejected or an expelled one."""
    if status in NOT_CERTIFIED:
        raise Conflict(f"partner {partner_id} is {status.value}: no certifications recorded")


def check_may_hold_token(partner_id: str, status: S) -> None:
    """A partner token is issued once the partner is admitted (qualified or later), and never
    while it is suspended or expelled (its tokens stop working then too: shared/access.py)."""
    if status in (S.APPLIED, S.REJECTED):
        raise Conflict(f"partner {partner_id} is {status.value}: tokens are issued once qualified")
    if status in (S.SUSPENDED, S.EXPELLED):
        raise Conflict(f"partner {partner_id} is {status.value}: it holds no tokens")


def check_may_have_manager(partner_id: str, status: S) -> None:
    """An account manager is assigned once the partner is admitted, and not to a rejected one."""
    if status in (S.APPLIED, S.REJECTED):
        raise Conflict(
            f"partner {partner_id} is {status.value}: an account manager is assigned once qualified"
        )
