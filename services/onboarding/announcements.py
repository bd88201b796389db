"""What a new version of a partner publishes: its full snapshot on `partners.lifecycle.v1`
(the change named as the contract names it) and, for changes a partner is told about, a
notification; and the one way an HTTP use case writes a new version (row, audit, events),
a lifecycle step (a new status) being such a version, refused unless the lifecycle allows it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.onboarding import repository
from services.onboarding.domain.lifecycle import Change, check_transition, notification_kind
from services.onboarding.domain.verification import held_domain
from services.onboarding.repository import PartnerRow, Row
from shared.db import Connection, from_row
from shared.events import Envelope, EventPayload
from shared.events.notifications import AnyNotificationKind
from shared.events.partners import PartnerStateChanged, PartnerStatus
from shared.notify import notify
from shared.outbox import Outbox, OutgoingEvent
from shared.topics import PARTNER_LIFECYCLE, PARTNER_PROGRAMME


def snapshot(row: PartnerRow, change: Change, before: PartnerRow) -> PartnerStateChanged:
    """The partner as it stands after `change` (its `ingested_at` is stamped from the cause)."""
    # The application itself has no "before".
    previous = before if before["version"] > 0 else None
    return from_row(
        PartnerStateChanged,
        row,
        name=row["company_name"],
        status=PartnerStatus(row["status"]),
        regions=tuple(sorted(row["regions"])),
        products=tuple(sorted(row["products"])),
        changed_at=row["updated_at"],
        change=change.published,
        previous_status=PartnerStatus(previous["status"]) if previous is not None else None,
        previous_tier=previous["tier"] if previous is not None else None,
        # Only a held (verified) domain is the partner's to the other services.
        domain=held_domain(row["domain"], row["domain_verified_at"]),
        competencies=tuple(sorted(row["competencies"])),
        ingested_at=None,  # stamped when recorded (from the cause), never from a column
    )


def _subject(change: Change, before: PartnerRow, row: PartnerRow) -> str:
    name = row["company_name"]
    if change in (Change.TIER_CHANGED, Change.DEMOTED):
        return f"{name}: tier {before['tier']} -> {row['tier']}"
    if change is Change.GRACE_STARTED:
        return f"{name}: requalification grace period until {row['grace_until'].date().isoformat()}"
    if change is Change.GRACE_CLEARED:
        return f"{name}: requalification grace period ended, requirements met"
    return f"{name}: partner status {before['status']} -> {row['status']}"


def announce(
    before: PartnerRow, row: PartnerRow, change: Change, cause: Envelope[Any] | None = None
) -> list[OutgoingEvent]:
    """The events of a new version of a partner, caused by `cause` (a consumed event; None for
    a request or a job)."""
    partner_id = row["partner_id"]
    events = [
        OutgoingEvent(PARTNER_LIFECYCLE, snapshot(row, change, before), partner_id, cause=cause)
    ]
    kind = notification_kind(change, PartnerStatus(before["status"]), PartnerStatus(row["status"]))
    if kind is not None:
        events.append(
            notify(
                partner_id,
                kind,
                about=f"{partner_id}/v{row['version']}",
                subject=_subject(change, before, row),
                body=row["reason"],
                created_at=row["updated_at"],
                cause=cause,
            )
        )
    return events


async def record_version(
    conn: Connection,
    outbox: Outbox,
    before: Row,
    change: Change,
    *,
    by: str,
    reason: str,
    at: datetime,
    **fields: Any,
) -> Row:
    """Write the partner's next version and announce it: the row, its audit row (naming `by`,
    the acting principal) and its events, in the caller's transaction."""
    row = await repository.update_partner(
        conn, before["partner_id"], reason=reason, at=at, fields=fields
    )
    await repository.insert_history(conn, [repository.history_row(row, change.published.value, by)])
    await outbox.publish_many(conn, announce(before, row, change))
    return row


async def record_step(
    conn: Connection,
    outbox: Outbox,
    before: Row,
    target: PartnerStatus,
    change: Change,
    *,
    by: str,
    reason: str,
    at: datetime,
    **fields: Any,
) -> Row:
    """Move the partner to `target` as its next version (see `record_version`);
    IllegalTransition, and nothing written, unless the lifecycle allows the step."""
    check_transition(before["partner_id"], PartnerStatus(before["status"]), target)
    return await record_version(
        conn, outbox, before, change, by=by, reason=reason, at=at, status=target.value, **fields
    )


async def announce_programme_fact(
    conn: Connection,
    outbox: Outbox,
    fact: EventPayload,
    partner_id: str,
    kind: AnyNotificationKind,
    *,
    about: str,
    subject: str,
    told: str,
    at: datetime,
) -> None:
    """A fact of the partner's place in the programme (a review, an appeal, its account
    manager) on partners.programme.v1, and the partner told of it, in the caller's
    transaction (`about` names the occurrence)."""
    await outbox.publish_many(
        conn,
        [
            OutgoingEvent(PARTNER_PROGRAMME, fact, partner_id),
            notify(partner_id, kind, about=about, subject=subject, body=told, created_at=at),
        ],
    )
