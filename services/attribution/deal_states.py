"""Deal snapshots (`deal.state_changed.v1`), a run at a time: the run's deals are locked in key
order, loaded with one query per table, each snapshot applied in order in memory as if alone
(after the ones before it), and everything written back with one set-based statement per table
and kind of change. A run of 40 snapshots costs about 15 statements instead of about 790."""

from __future__ import annotations

from collections.abc import Sequence
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
from shared.events.opportunities import DealStateChanged
from shared.outbox import OutgoingEvent


@dataclass(frozen=True)
class Snapshot:
    """A consumed deal snapshot: the event, when its change entered Pollinate, its envelope."""

    event: DealStateChanged
    ingested_at: datetime | None
    cause: Envelope[Any] | None = None

    @classmethod
    def of(cls, envelope: Envelope[DealStateChanged]) -> Snapshot:
        return cls(envelope.data, envelope.data.ingested_at or envelope.time, envelope)


class UnattributableSnapshot(Exception):
    """A won deal in a run of snapshots cannot be split as it is (the caller dead-letters)."""

    def __init__(self, snapshot: Snapshot, error: Exception) -> None:
        event = snapshot.event
        super().__init__(f"deal {event.deal_key} revision {event.revision}: {error}")
        self.snapshot = snapshot
        self.error = error


async def apply_deal_states(
    conn: Connection, config: AttributionConfig, snapshots: Sequence[Snapshot]
) -> list[OutgoingEvent]:
    """Apply deal snapshots in order (each one as if alone, after the ones before it) and write
    the results; returns the events to publish, in order, each with its cause.

    Raises UnattributableSnapshot (nothing written) when a won deal cannot be split."""
    # A link confirmed meanwhile either is seen here or settles these deals after this run.
    references = [s.event.partner_ref for s in snapshots if s.event.partner_ref]
    await repository.lock_references(conn, references)
    linked = [r.registration_id for s in snapshots for r in s.event.registrations]
    # A merged deal's survivor is settled with what follows it from the merged one; a deal a
    # listed registration's touchpoint may leave is settled again too.
    elsewhere = await repository.touchpoint_deals(
        conn, [registration_touchpoint_id(r) for r in linked]
    )
    book = await DealBook.load(
        conn,
        [s.event.deal_key for s in snapshots]
        + [s.event.merged_into for s in snapshots if s.event.merged_into]
        + elsewhere,
        linked,
        ((s.event.source.value, s.event.partner_ref) for s in snapshots if s.event.partner_ref),
        (r.partner_id for s in snapshots for r in s.event.registrations),
    )
    for snapshot in snapshots:
        try:
            book.apply_snapshot(config, snapshot.event, snapshot.ingested_at, snapshot.cause)
        except CannotAttribute as error:
            raise UnattributableSnapshot(snapshot, error) from error
    await book.save(conn)
    return book.events
