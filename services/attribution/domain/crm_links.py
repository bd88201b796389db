"""Which Pollinate partner a CRM's partner reference (Salesforce `Partner_Account__c`, an ACE or
Microsoft partner id) stands for. Only links a channel manager confirmed count: a reference
with no confirmed link is unmatched, and the deal credits no one for it until a manager confirms
one. The identity shortcut: a confirmed link whose external id IS the partner id stands for
that partner whatever the CRM."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from shared.errors import Conflict


class LinkStatus(StrEnum):
    PROPOSED = "proposed"
    CONFIRMED = "confirmed"


@dataclass(frozen=True)
class CrmLink:
    source: str
    external_id: str
    partner_id: str
    status: LinkStatus

    @property
    def is_identity(self) -> bool:
        return self.external_id == self.partner_id

    @property
    def label(self) -> str:
        """How the audit trail and a settlement's trigger name the link."""
        return f"{self.source}:{self.external_id} -> {self.partner_id}"


class LinkedToAnotherPartner(Conflict):
    def __init__(self, link: CrmLink) -> None:
        super().__init__(
            f"{link.source} reference {link.external_id!r} is already linked to another "
            "partner: remove that link first"
        )


def check_proposal(existing: CrmLink | None, partner_id: str) -> None:
    """A reference confirmed for one partner is not silently moved to another."""
    if (
        existing is not None
        and existing.status is LinkStatus.CONFIRMED
        and existing.partner_id != partner_id
    ):
        raise LinkedToAnotherPartner(existing)


def check_confirmation(link: CrmLink, partner_id: str) -> None:
    """A manager confirms the partner it approves: a proposal replaced since it was read (for
    another partner) is not confirmed in its place."""
    if link.partner_id != partner_id:
        raise Conflict(
            f"{link.source} reference {link.external_id!r} is proposed for partner "
            f"{link.partner_id}, not {partner_id}: read the proposal again before confirming"
        )


@dataclass(frozen=True)
class CrmLinks:
    """The confirmed links a settlement may use."""

    by_reference: dict[tuple[str, str], str]  # (source, external id) -> partner id
    identities: frozenset[str]  # partner ids confirmed as their own reference

    @classmethod
    def of(cls, links: Iterable[CrmLink]) -> CrmLinks:
        confirmed = [link for link in links if link.status is LinkStatus.CONFIRMED]
        return cls(
            {(link.source, link.external_id): link.partner_id for link in confirmed},
            frozenset(link.partner_id for link in confirmed if link.is_identity),
        )

    def partner_for(self, source: str, reference: str | None) -> str | None:
        """The partner the CRM's reference stands for; None: unmatched (or no reference)."""
        if not reference:
            return None
        found = self.by_reference.get((source, reference))
        if found is not None:
            return found
        return reference if reference in self.identities else None
