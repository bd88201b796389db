"""The CRM opportunity projection: canonical changes merged field by field (newest source time
wins) into one row per opportunity, whose whole state is published after every change that
altered it; linked registrations close with their opportunity.

A run of changes is applied set-based: its opportunities locked and loaded at once, merged in
order in memory, stored (a statement for the new, one for the held) and their states recorded
with one more.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any

from services.deals import repository
from services.deals.domain.crm import (
    CLOSING_WITH_DEAL,
    closed_outcome,
    merge_crm_change,
)
from services.deals.domain.customers import folded_name
from services.deals.repository import Row
from services.deals.status_changes import close_with_deal
from shared.clock import now
from shared.db import Connection, from_row
from shared.events import Envelope
from shared.events.crm import CrmDealChanged, CrmSource, Customer, DealStage, DealStatus
from shared.events.opportunities import DealStateChanged, LinkedRegistration
from shared.events.registrations import RegistrationStatus
from shared.outbox import OutgoingEvent, ingested_at_of
from shared.topics import DEAL_OPPORTUNITIES

# How the projection stores what a merge takes: numeric(20, 4) rounds half away from zero,
# timestamptz comes back in UTC. The in-memory state of a run holds values as stored, so a later
# change in the run compares with (and publishes) what one-at-a-time processing would re-read.
_AMOUNT_SCALE = Decimal("0.0001")
_WIDE = Context(prec=100)


def _as_stored(value: Any) -> Any:
    if isinstance(value, Decimal):
        try:
            return value.quantize(_AMOUNT_SCALE, rounding=ROUND_HALF_UP, context=_WIDE)
        except InvalidOperation:
            return value  # far out of range: the write refuses it, as it always did
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return value


def deal_state(row: Row, linked: Sequence[Row]) -> DealStateChanged:
    """The whole merged state of an opportunity (as stored) with its linked registrations."""
    # `ingested_at` is the stored one: when the change behind the stored state entered
    # Pollinate (not this event's cause).
    return from_row(
        DealStateChanged,
        row,
        source=CrmSource(row["source"]),
        customer=Customer(
            name=row["customer_name"],
            domain=row["customer_domain"],
            country=row["customer_country"],
            folded_name=folded_name(row["customer_name"] or "") or None,
        ),
        products=tuple(row["products"] or ()),
        stage=DealStage(row["stage"]) if row["stage"] else None,
        status=DealStatus(row["status"]),
        co_sell=bool(row["co_sell"]),
        registrations=tuple(
            from_row(LinkedRegistration, r, status=RegistrationStatus(r["status"])) for r in linked
        ),
        changed_at=now(),
    )


async def deal_state_events(conn: Connection, deal_key: str) -> list[OutgoingEvent]:
    """Bump the opportunity's revision and announce its whole state (nothing if unknown): a
    registration linked to it changes what downstream knows of it."""
    row = await repository.bump_revision(conn, deal_key)
    if row is None:
        return []
    linked = (await repository.linked_registrations(conn, [deal_key])).get(deal_key, [])
    return [OutgoingEvent(DEAL_OPPORTUNITIES, deal_state(row, linked), deal_key)]


_Merged = tuple[Envelope[CrmDealChanged], dict[str, Any], DealStatus | None]


async def apply_crm_changes(
    conn: Connection, changes: Sequence[Envelope[CrmDealChanged]]
) -> list[OutgoingEvent]:
    """Merge canonical changes, in order, into the projection, field by field, newest source
    time wins. Returns what to record: the merged state after each change that changed
    anything (and the linked registrations it closed), each caused by its change.

    Closing an opportunity that has registrations awaiting the outcome updates those per
    opportunity. A merge's registrations follow it afterwards (services/deals/crm_merges.py)."""
    if not changes:
        return []
    new: dict[str, tuple[str, str]] = {}
    for event in changes:
        new.setdefault(event.data.deal_key, (event.data.source.value, event.data.source_id))
        if event.data.merged_into is not None:  # the survivor of a merge exists from now on
            survivor = (event.data.source.value, event.data.merged_into)
            new.setdefault(f"{survivor[0]}:{survivor[1]}", survivor)
    keys = sorted(new)
    rows, created = await repository.lock_deals(conn, keys, new)
    stamps: dict[str, dict[str, str]] = {
        key: json.loads(row["field_timestamps"]) for key, row in rows.items()
    }
    merged = _merge_in_order(rows, stamps, changes)
    outgoing = await _announce(conn, keys, merged)
    for key, row in rows.items():
        row["field_timestamps"] = json.dumps(stamps[key])
        if row["products"] is not None:
            row["products"] = json.dumps(row["products"])
    await repository.store_deals(conn, list(rows.values()), created)
    return outgoing


def _merge_in_order(
    rows: dict[str, dict[str, Any]],
    stamps: dict[str, dict[str, str]],
    changes: Sequence[Envelope[CrmDealChanged]],
) -> list[_Merged]:
    """Merge each change into its row in memory; each one that changed anything leaves the
    state to publish (and the outcome, when it closed the opportunity)."""
    merged: list[_Merged] = []
    for event in changes:
        row = rows[event.data.deal_key]
        updates = merge_crm_change(row, stamps[event.data.deal_key], event.data)
        if not updates:
            continue  # newer source times are still remembered
        row.update({column: _as_stored(value) for column, value in updates.items()})
        row["revision"] += 1
        row["ingested_at"] = _as_stored(ingested_at_of(event))
        merged.append((event, dict(row), closed_outcome(updates)))
    return merged


async def _announce(
    conn: Connection, keys: Sequence[str], merged: Sequence[_Merged]
) -> list[OutgoingEvent]:
    outgoing: list[OutgoingEvent] = []
    linked = await repository.linked_registrations(conn, keys) if merged else {}
    for cause, state, outcome in merged:
        key = state["deal_key"]
        if outcome is not None and any(
            RegistrationStatus(r["status"]) in (*CLOSING_WITH_DEAL, RegistrationStatus.EXPIRED)
            for r in linked.get(key, ())
        ):
            outgoing += await _close_linked_registrations(conn, state, outcome, cause)
            linked[key] = (await repository.linked_registrations(conn, [key])).get(key, [])
        outgoing.append(
            OutgoingEvent(
                DEAL_OPPORTUNITIES, deal_state(state, linked.get(key, ())), key, cause=cause
            )
        )
    return outgoing


async def _close_linked_registrations(
    conn: Connection, state: Row, outcome: DealStatus, cause: Envelope[CrmDealChanged]
) -> list[OutgoingEvent]:
    """Close the registrations awaiting the outcome of the opportunity in its merged `state`
    (its owner is told); returns what to announce."""
    events: list[OutgoingEvent] = []
    deal_key: str = state["deal_key"]
    for registration in await repository.awaiting_outcome(conn, deal_key, state["closed_at"]):
        events += await close_with_deal(
            conn, registration, deal_key, state["owner"], outcome, cause
        )
    return events
