"""The partner status machine: which status may follow which, and why not when it may not.

    applied -> qualified | rejected
    qualified -> onboarding -> active
    active <-> grace (requalification; a cured grace returns to active, possibly demoted)
    active | grace -> suspended -> active (reinstated)
    onboarding | active | grace | suspended -> expelled -> onboarding (reinstated: re-onboard)

`rejected` is final for that application (a new application from the same domain is a
duplicate of it); a reinstated expelled partner goes through the checklist again.
"""

from __future__ import annotations

from types import MappingProxyType

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


class IllegalTransition(ValueError):
    """A status change the partner lifecycle does not allow (the message says which are)."""


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
