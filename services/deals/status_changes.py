"""What a registration's status change stores and announces (review, link, extension, expiry,
review deadlines, and closing with its CRM opportunity all go through here): the new state, its
entry in the decision ledger, the status event, and the notifications to the partner and the
direct owners of the account, all in the caller's transaction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.deals import repository
from services.deals.domain.customers import Customer
from services.deals.domain.ledger import LedgerEntry, LedgerWhat, Principal
from services.deals.domain.lifecycle import (
    close_with_opportunity,
    merge_is_told,
    status_notification,
)
from services.deals.domain.rules import RulesOfEngagement
from services.deals.repository import Row
from shared.clock import now
from shared.db import Connection
from shared.events import Envelope
from shared.events.crm import DealStatus
from shared.events.registrations import RegistrationStatus, RegistrationStatusChanged
from shared.notify import notify
from shared.outbox import Outbox, OutgoingEvent
from shared.topics import DEAL_REGISTRATIONS

# A CRM close applies no policy: its owners are matched at the default name threshold.
NAME_THRESHOLD = RulesOfEngagement().name_similarity_threshold


@dataclass(frozen=True)
class Circumstances:
    """What a change's announcements depend on beyond its row and entry: the protection's new
    end (an extension), the consumed event behind the change, how alike names must be for an
    opportunity's owner to be told, and the linked opportunity's owner as a CRM run just merged
    it (the stored row may not hold it yet)."""

    expires_at: datetime | None = None
    cause: Envelope[Any] | None = None
    threshold: float = NAME_THRESHOLD
    deal_owner: str | None = None


PLAIN = Circumstances()


def entry_for(
    row: Row,
    what: LedgerWhat,
    status: RegistrationStatus,
    principal: Principal,
    policy_version: str,
    reason: str,
    *,
    told: str | None = None,
    evidence: Mapping[str, Any] | None = None,
) -> LedgerEntry:
    """The ledger entry of a change to `row` (`told`: what the partner hears, if not `reason`)."""
    return LedgerEntry(
        what=what,
        previous_status=RegistrationStatus(row["status"]),
        status=status,
        principal=principal,
        policy_version=policy_version,
        reasons=(reason,),
        partner_reasons=None if told is None else (told,),
        evidence=evidence or {},
    )


def _occurrence(row: Row, entry: LedgerEntry, expires_at: datetime | None, seq: int) -> str:
    """Names the change a notification announces (telling it again is the same notification):
    its ledger entry, so a registration reviewed or escalated again is told again."""
    registration_id = row["registration_id"]
    if entry.what is LedgerWhat.EXPIRED:
        return f"{registration_id}/expired"
    if entry.what is LedgerWhat.EXTENDED:
        return f"{registration_id}/extended/{expires_at.isoformat() if expires_at else ''}"
    return f"{registration_id}/{entry.what.value}/{entry.status.value}/{seq}"


async def status_change_events(
    conn: Connection,
    row: Row,
    entry: LedgerEntry,
    circumstances: Circumstances = PLAIN,
    seq: int = 0,
    relinked: bool = False,
) -> list[OutgoingEvent]:
    """What a change announces: the status event when the status changed (or the link did:
    `relinked`, a CRM merge moved it), and what the partner (what it may know) and the
    account's direct owners (the full reason) are told; `seq` is its ledger entry."""
    expires_at, cause = circumstances.expires_at, circumstances.cause
    registration_id: str = row["registration_id"]
    partner_id: str = row["partner_id"]
    events: list[OutgoingEvent] = []
    reason = "; ".join(entry.reasons)
    if entry.status.value != row["status"] or expires_at is not None or relinked:
        changed = RegistrationStatusChanged(
            registration_id=registration_id,
            partner_id=partner_id,
            previous_status=RegistrationStatus(row["status"]),
            status=entry.status,
            reason=reason,
            changed_at=now(),
            expires_at=expires_at or row["expires_at"],
            crm_deal_key=row["crm_deal_key"],
            amount=Decimal(row["amount"]),
            currency=row["currency"],
        )
        events.append(OutgoingEvent(DEAL_REGISTRATIONS, changed, registration_id, cause=cause))
    if not merge_is_told(entry.what, entry.status):
        return events
    kind = status_notification(entry.what, entry.status)
    about = _occurrence(row, entry, expires_at, seq)
    subject = f"Registration {registration_id} for {row['customer_name']}: {entry.status.value}"
    if entry.what is LedgerWhat.EXTENDED and expires_at is not None:
        subject = f"Registration {registration_id} for {row['customer_name']}: protected until {expires_at.isoformat()}"
    events.append(
        notify(
            partner_id,
            kind,
            about=about,
            subject=subject,
            body="; ".join(entry.told),
            registration_id=registration_id,
            cause=cause,
        )
    )
    customer = Customer.parse(row["customer_name"], row["customer_domain"])
    owners = await repository.direct_owners(
        conn, customer, row["crm_deal_key"], circumstances.threshold
    )
    if circumstances.deal_owner is not None:
        owners = sorted({*owners, circumstances.deal_owner})
    for owner in owners:
        events.append(
            notify(
                partner_id,
                kind,
                about=about,
                recipient=owner,
                subject=f"{subject} (partner {partner_id})",
                body=reason,
                registration_id=registration_id,
                cause=cause,
            )
        )
    return events


async def record_change(
    conn: Connection,
    row: Row,
    entry: LedgerEntry,
    circumstances: Circumstances = PLAIN,
) -> list[OutgoingEvent]:
    """Store the registration's new state and its ledger entry; returns what to announce."""
    await repository.store_status(conn, row, entry, circumstances.expires_at)
    seq = await repository.append_ledger(conn, row["registration_id"], entry)
    return await status_change_events(conn, row, entry, circumstances, seq)


async def change_status(
    conn: Connection,
    outbox: Outbox,
    row: Row,
    entry: LedgerEntry,
    expires_at: datetime | None = None,
    threshold: float = NAME_THRESHOLD,
) -> None:
    """Store the registration's new state and its ledger entry, and announce it."""
    events = await record_change(conn, row, entry, Circumstances(expires_at, threshold=threshold))
    await outbox.publish_many(conn, events)


async def close_with_deal(
    conn: Connection,
    row: Row,
    deal_key: str,
    owner: str | None,
    outcome: DealStatus,
    cause: Envelope[Any] | None = None,
) -> list[OutgoingEvent]:
    """A linked registration when its CRM opportunity closes (the CRM event is the principal);
    returns what to announce. One awaiting review stays for the review when the deal was won,
    remembering the outcome. `owner` is the opportunity's owner as the run merged it (the
    stored row may not hold it yet). The entry carries the policy version in force (the one the
    registration was decided under when none was ever activated). No `cause`: the deal had
    already closed when the registration was linked to it (the link applies the outcome)."""
    status, reason = close_with_opportunity(RegistrationStatus(row["status"]), deal_key, outcome)
    if status is RegistrationStatus.PENDING_REVIEW:
        await repository.store_deal_outcome(conn, row["registration_id"], outcome.value)
    entry = entry_for(
        row,
        LedgerWhat.CLOSED,
        status,
        Principal.crm(deal_key),
        await repository.policy_version_in_force(conn) or row["policy_version"],
        reason,
        evidence={
            "deal_key": deal_key,
            "outcome": outcome.value,
            **({"event_id": str(cause.id)} if cause else {"closed_before_link": True}),
        },
    )
    return await record_change(conn, row, entry, Circumstances(cause=cause, deal_owner=owner))
