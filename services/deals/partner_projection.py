"""The partner projection: deals' own view of each partner (status, tier, type, authorised
products and regions) from partners.lifecycle.v1; deals never reads onboarding's database.

A partner whose partnership ended (expelled, rejected: domain/partner_standing.py) stops
protecting customers: its live registrations are closed as `expired`, each with its history
entry and the usual announcements, in the consumer's transaction."""

from __future__ import annotations

from typing import Any

from services.deals import repository
from services.deals.domain.ledger import LedgerWhat, Principal
from services.deals.domain.partner_standing import ended_reasons, holds_customers
from services.deals.status_changes import Circumstances, entry_for, record_change
from shared.clock import now
from shared.db import Connection
from shared.events import Envelope
from shared.events.partners import PartnerStateChanged, PartnerStatus
from shared.events.registrations import RegistrationStatus
from shared.outbox import OutgoingEvent

# The history's principal for a change the partner's lifecycle caused.
PRINCIPAL = Principal.system("partner-lifecycle")


async def apply_partner_state(
    conn: Connection, event: PartnerStateChanged, cause: Envelope[Any] | None = None
) -> list[OutgoingEvent]:
    """Take the partner's new state (an older version than the one held is ignored); when the
    partner as now projected has ended, close its live registrations. Returns what to announce.

    The projection as stored decides, not the event: a late, older event of an expelled partner
    closes nothing new, and a redelivered one finds nothing live left to close."""
    await repository.store_partner(conn, event)
    status = await repository.partner_status(conn, event.partner_id)
    if status is None or holds_customers(status):
        return []
    rows = await repository.live_registrations_of(conn, event.partner_id)
    if not rows:
        return []
    reason, told = ended_reasons(event.partner_id, PartnerStatus(status), event.reason)
    version = await repository.policy_version_in_force(conn)
    # Protection ends now: the stored end says so, to readers and to the cooldown alike.
    ended_at = now()
    events: list[OutgoingEvent] = []
    for row in rows:
        entry = entry_for(
            row,
            LedgerWhat.EXPIRED,
            RegistrationStatus.EXPIRED,
            PRINCIPAL,
            version or row["policy_version"],
            reason,
            told=told,
            evidence={
                "partner_status": status,
                "partner_change": event.change.value,
                "partner_version": event.version,
                "previous_expires_at": row["expires_at"],
                **({"event_id": str(cause.id)} if cause else {}),
            },
        )
        events += await record_change(
            conn, row, entry, Circumstances(expires_at=ended_at, cause=cause)
        )
    return events
