"""Registration events from deals (`registration.decided.v1`, `registration.status_changed.v1`):
the signals the health score counts and, for a registration linked to a CRM deal, its sourcing
touchpoint (an approval after the close is a late touchpoint that settles the deal again)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.attribution import repository
from services.attribution.crediting import DealBook
from services.attribution.domain.config import AttributionConfig
from services.attribution.domain.models import CannotAttribute
from services.attribution.domain.touchpoints import registration_touchpoint_id
from shared.db import Connection
from shared.events import Envelope
from shared.events.registrations import (
    RegistrationDecided,
    RegistrationStatus,
    RegistrationStatusChanged,
)
from shared.outbox import OutgoingEvent


class UnattributableRegistration(Exception):
    """The registration's deal is won but cannot be split as it is (the caller dead-letters)."""

    def __init__(self, registration_id: str, error: CannotAttribute) -> None:
        super().__init__(f"registration {registration_id}: {error}")


@dataclass(frozen=True)
class RegistrationChange:
    """A registration event as attribution reads it, with the event that told it."""

    registration_id: str
    partner_id: str
    status: RegistrationStatus
    conflicts: int | None  # None: the event does not say (status changes)
    crm_deal_key: str | None
    changed_at: datetime
    cause: Envelope[Any]

    @classmethod
    def decided(cls, envelope: Envelope[RegistrationDecided]) -> RegistrationChange:
        r = envelope.data
        return cls(
            r.registration_id,
            r.partner_id,
            r.status,
            len(r.conflicts),
            r.crm_deal_key,
            r.decided_at,
            envelope,
        )

    @classmethod
    def status_changed(cls, envelope: Envelope[RegistrationStatusChanged]) -> RegistrationChange:
        r = envelope.data
        return cls(
            r.registration_id, r.partner_id, r.status, None, r.crm_deal_key, r.changed_at, envelope
        )


async def apply_registration(
    conn: Connection, config: AttributionConfig, change: RegistrationChange
) -> list[OutgoingEvent]:
    """Remember the registration's signals and, when it is linked to a CRM deal, its sourcing
    touchpoint; a change to a won deal's touchpoints settles its credits again. Returns the
    events to publish (their ingestion time is the registration event's).

    Raises UnattributableRegistration (nothing written) when the deal cannot be split."""
    await repository.record_registration(
        conn,
        registration_id=change.registration_id,
        partner_id=change.partner_id,
        status=change.status,
        conflicts=change.conflicts,
        crm_deal_key=change.crm_deal_key,
        changed_at=change.changed_at,
    )
    # The deal its touchpoint is on now too: a CRM merge may move it, or unlink it (an event
    # naming no deal), and that deal is settled again below.
    where = await repository.touchpoint_deals(
        conn, [registration_touchpoint_id(change.registration_id)]
    )
    if not change.crm_deal_key and not where:
        return []
    keys = [*([change.crm_deal_key] if change.crm_deal_key else []), *where]
    book = await DealBook.load(conn, keys, [change.registration_id], (), [change.partner_id])
    changed = book.merge_registration(
        registration_id=change.registration_id,
        partner_id=change.partner_id,
        deal_key=change.crm_deal_key,
        status=change.status,
        occurred_at=change.changed_at,
        authoritative_time=False,
        linked_at=change.changed_at,
    )
    if changed:
        trigger = (
            f"registration {change.registration_id} of {change.partner_id} is {change.status.value}"
        )
        try:
            book.settle_moved(
                config,
                {change.crm_deal_key},
                at=change.changed_at,
                trigger=f"{trigger}, linked to {change.crm_deal_key or 'no deal'} now",
                ingested_at=None,
                cause=change.cause,
            )
            if change.crm_deal_key:
                book.recalculate(
                    config,
                    change.crm_deal_key,
                    at=change.changed_at,
                    trigger=trigger,
                    ingested_at=None,
                    cause=change.cause,
                )
        except CannotAttribute as error:
            raise UnattributableRegistration(change.registration_id, error) from error
    await book.save(conn)
    return book.events
