"""Backtesting a proposed policy: the registrations of a period replayed, in their original
order and with the facts known when each was decided, through the proposed rules; what would
have been decided differently, with the reasons both ways.

The replay keeps its own state: a registration the proposed rules decide differently holds (or
does not hold) the customer for the later ones as the proposed decision says. Registrations
before the period are context with their original decisions. Like the live check, a candidate
holds a customer from its submission for `protection_days`.

No I/O: the use case loads the period and this module replays it.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.deals.domain.cooldown import live_repeat, repeat_refusal
from services.deals.domain.rules import (
    ExistingRegistration,
    OpenOpportunity,
    PartnerView,
    RegistrationRequest,
    RulesOfEngagement,
    check_registration,
)
from shared.events.registrations import RegistrationStatus

REFUSED = "refused_repeat"  # a repeat of the partner's own live registration: not stored
_HOLDING = frozenset(
    {RegistrationStatus.SUBMITTED, RegistrationStatus.APPROVED, RegistrationStatus.PENDING_REVIEW}
)


@dataclass(frozen=True)
class Past:
    """A registration as it was decided: the request, the partner and the open direct
    opportunities known then, and the original decision."""

    registration_id: str
    request: RegistrationRequest
    partner: PartnerView | None
    opportunities: tuple[OpenOpportunity, ...]
    status: str
    reasons: tuple[str, ...]
    expires_at: datetime | None
    in_period: bool = True


@dataclass(frozen=True)
class Change:
    registration_id: str
    partner_id: str
    submitted_at: datetime
    before: str
    after: str
    reasons_before: tuple[str, ...]
    reasons_after: tuple[str, ...]


@dataclass
class KindCount:
    before: int = 0
    after: int = 0
    changed: int = 0  # decided this way before and otherwise now


@dataclass
class Backtest:
    replayed: int = 0
    kinds: dict[str, KindCount] = field(default_factory=lambda: defaultdict(KindCount))
    changes: list[Change] = field(default_factory=list)


class _Holders:
    """Registrations holding customers, by domain and by name block, oldest first; those whose
    window has passed are dropped as the replay moves on in time."""

    def __init__(self, protection: timedelta) -> None:
        self.protection = protection
        self.by_domain: dict[str, deque[ExistingRegistration]] = defaultdict(deque)
        self.by_key: dict[str, deque[ExistingRegistration]] = defaultdict(deque)

    def add(self, domain: str | None, key: str, held: ExistingRegistration) -> None:
        if domain:
            self.by_domain[domain].append(held)
        self.by_key[key].append(held)

    def _live(
        self, queue: deque[ExistingRegistration], at: datetime
    ) -> Iterable[ExistingRegistration]:
        while queue and queue[0].registered_at < at - self.protection:
            queue.popleft()
        return queue

    def near(self, domain: str | None, key: str, at: datetime) -> list[ExistingRegistration]:
        found = {r.registration_id: r for r in self._live(self.by_key[key], at)}
        if domain:
            found.update((r.registration_id, r) for r in self._live(self.by_domain[domain], at))
        return list(found.values())


def _decide(
    policy: RulesOfEngagement, past: Past, candidates: list[ExistingRegistration]
) -> tuple[str, tuple[str, ...], datetime | None]:
    request = past.request
    own = [c for c in candidates if c.partner_id == request.partner_id]
    repeat = live_repeat(policy, request, own) if own else None
    if repeat is not None:
        return REFUSED, (repeat_refusal(repeat),), None
    others = [c for c in candidates if c.partner_id != request.partner_id]
    decision = check_registration(policy, request, past.partner, others, list(past.opportunities))
    return decision.status.value, decision.reasons, decision.expires_at


def replay(policy: RulesOfEngagement, history: Sequence[Past]) -> Backtest:
    """Replay `history` (in submission order) under `policy`."""
    result = Backtest()
    holders = _Holders(timedelta(days=policy.protection_days))
    for past in history:
        request = past.request
        customer = request.customer
        if past.in_period:
            candidates = holders.near(customer.domain, customer.name_key, request.submitted_at)
            status, reasons, expires_at = _decide(policy, past, candidates)
            result.replayed += 1
            result.kinds[past.status].before += 1
            result.kinds[status].after += 1
            if status != past.status:
                result.kinds[past.status].changed += 1
                result.changes.append(
                    Change(
                        past.registration_id,
                        request.partner_id,
                        request.submitted_at,
                        past.status,
                        status,
                        past.reasons,
                        reasons,
                    )
                )
        else:
            status, expires_at = past.status, past.expires_at
        if status in _HOLDING:
            held = ExistingRegistration(
                past.registration_id,
                request.partner_id,
                request.customer_name,
                request.customer_domain,
                request.products,
                RegistrationStatus(status),
                request.submitted_at,
                expires_at,
            )
            holders.add(customer.domain, customer.name_key, held)
    return result
