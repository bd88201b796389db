"""The decision ledger of a registration: who decided or changed what, and what each reader may
see of it.

Principals are of four kinds: the partner (its id), a channel manager (the token's subject), a
system job (its name) and a CRM event (the opportunity's key). A partner reads its own
registration's history with the need-to-know rules of its decisions: what it was told, the
kinds of conflicts considered, and no identity but its own (a manager is "channel manager", a
CRM close names only the opportunity the partner linked).

No I/O: the use cases write entries with what they decided; the views ask these rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.deals.domain.disclosure import inputs_seen
from shared.events.registrations import RegistrationStatus
from shared.identity import Caller


class PrincipalKind(StrEnum):
    PARTNER = "partner"
    MANAGER = "manager"
    SYSTEM = "system"
    CRM = "crm"


class LedgerWhat(StrEnum):
    """What an entry records."""

    DECIDED = "decided"  # the first decision, at registration
    REVIEWED = "reviewed"  # a channel manager's review
    LINKED = "linked"  # linked to a CRM opportunity (to review when the CRM disagrees)
    EXTENDED = "extended"  # the protection window extended under policy
    EXPIRED = "expired"  # the protection window ended
    CLOSED = "closed"  # the linked CRM opportunity closed won or lost
    ESCALATED = "escalated"  # a review past its deadline, escalated
    AUTO_DECIDED = "auto_decided"  # a review past its deadline, decided by policy
    MERGED = "merged"  # its linked CRM deal was merged into another (the link follows, or
    # another registration holds the survivor and this one goes to review)


@dataclass(frozen=True)
class Principal:
    kind: PrincipalKind
    id: str

    @staticmethod
    def of(who: Caller) -> Principal:
        """The principal behind an API call: a partner's people act as their partner; a channel
        manager as itself."""
        if who.partner_id is not None:
            return Principal(PrincipalKind.PARTNER, who.partner_id)
        return Principal(PrincipalKind.MANAGER, who.subject)

    @staticmethod
    def system(job: str) -> Principal:
        return Principal(PrincipalKind.SYSTEM, job)

    @staticmethod
    def crm(deal_key: str) -> Principal:
        return Principal(PrincipalKind.CRM, deal_key)


@dataclass(frozen=True)
class LedgerEntry:
    """One decision or status change, as written (the store adds its sequence and time)."""

    what: LedgerWhat
    previous_status: RegistrationStatus | None
    status: RegistrationStatus
    principal: Principal
    policy_version: str
    reasons: tuple[str, ...]
    partner_reasons: tuple[str, ...] | None = None  # None: the partner is told the same reasons
    evidence: Mapping[str, Any] = field(default_factory=dict)

    @property
    def told(self) -> tuple[str, ...]:
        return self.reasons if self.partner_reasons is None else self.partner_reasons


@dataclass(frozen=True)
class EntrySeen:
    """An entry as a reader may see it."""

    seq: int
    at: datetime
    what: str
    previous_status: str | None
    status: str
    principal_kind: str
    principal: str | None
    policy_version: str
    reasons: list[str]
    evidence: dict[str, Any]


def principal_seen(kind: str, principal: str, *, partner: bool) -> str | None:
    """Who acted, as the reader may know it: a partner sees its own id, the job's name and the
    opportunity it linked, never a manager's identity."""
    if partner and kind == PrincipalKind.MANAGER:
        return None
    return principal


def evidence_seen(evidence: Mapping[str, Any], *, partner: bool) -> dict[str, Any]:
    """The evidence considered: a partner sees its own request and only the kinds of the
    conflicts (the decision's need-to-know rules)."""
    return inputs_seen(dict(evidence), partner=partner)


def entry_seen(row: Mapping[str, Any], evidence: Mapping[str, Any], *, partner: bool) -> EntrySeen:
    return EntrySeen(
        seq=row["seq"],
        at=row["at"],
        what=row["what"],
        previous_status=row["previous_status"],
        status=row["status"],
        principal_kind=row["principal_kind"],
        principal=principal_seen(row["principal_kind"], row["principal"], partner=partner),
        policy_version=row["policy_version"],
        reasons=list(row["partner_reasons"] if partner else row["reasons"]),
        evidence=evidence_seen(evidence, partner=partner),
    )


def current_decision(entries: Sequence[EntrySeen]) -> EntrySeen | None:
    """The entry that decided the registration's current state: the newest."""
    return entries[-1] if entries else None
