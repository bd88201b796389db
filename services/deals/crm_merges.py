"""A CRM merge (HubSpot `deal.merge`, or any change naming `merged_into`): the registrations
linked to the merged deal follow it into the survivor. A CRM deal is held by one registration,
so when the survivor ends up with several, one keeps the link (services/deals/domain/links.py
decides which) and every other live one loses it and goes to review with the reason; each
registration involved gets a history entry and is told (the partner what it may know, the
account's direct owners everything). Runs in the projection's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.deals import repository, review_repository
from services.deals.crm_projection import apply_crm_changes, deal_state
from services.deals.domain.crm import CLOSING_WITH_DEAL
from services.deals.domain.ledger import LedgerWhat, Principal
from services.deals.domain.links import links_after_merge
from services.deals.domain.rules import RulesOfEngagement
from services.deals.policy import PolicyStore
from services.deals.review_sla import start_review_clock
from services.deals.status_changes import (
    Circumstances,
    close_with_deal,
    entry_for,
    record_change,
    status_change_events,
)
from shared.clock import now
from shared.db import Connection
from shared.events import Envelope
from shared.events.crm import CrmDealChanged, DealStatus
from shared.events.registrations import RegistrationStatus
from shared.outbox import OutgoingEvent
from shared.topics import DEAL_OPPORTUNITIES


async def project_crm_changes(
    conn: Connection,
    changes: Sequence[Envelope[CrmDealChanged]],
    policies: PolicyStore | None = None,
) -> list[OutgoingEvent]:
    """The projection's whole work for a run of changes, whoever applies it (deals' consumer or
    a webhook's intake): merged into the opportunities, then each merged deal's registrations
    moved to its survivor. Returns what to announce."""
    outgoing = await apply_crm_changes(conn, changes)
    return outgoing + await follow_merges(conn, changes, policies)


async def follow_merges(
    conn: Connection,
    changes: Sequence[Envelope[CrmDealChanged]],
    policies: PolicyStore | None = None,
) -> list[OutgoingEvent]:
    """Move the registrations of each merged deal to its survivor and announce both deals'
    states again (the survivor's now lists them), each caused by the merge."""
    outgoing: list[OutgoingEvent] = []
    for event in changes:
        change = event.data
        if change.merged_into is None:
            continue
        merged, survivor = change.deal_key, f"{change.source.value}:{change.merged_into}"
        moved = await repository.move_linked_registrations(conn, merged, survivor, now())
        if not moved:
            continue
        policy = await policies.in_force(conn, now()) if policies else RulesOfEngagement()
        version = await repository.policy_version_in_force(conn) or policy.version
        outgoing += await _settle_links(conn, event, merged, survivor, moved, policy, version)
        for key in (merged, survivor):
            row = await repository.bump_revision(conn, key)
            if row is not None:
                linked = (await repository.linked_registrations(conn, [key])).get(key, [])
                outgoing.append(
                    OutgoingEvent(DEAL_OPPORTUNITIES, deal_state(row, linked), key, cause=event)
                )
    return outgoing


async def _settle_links(
    conn: Connection,
    cause: Envelope[CrmDealChanged],
    merged: str,
    survivor: str,
    moved: Sequence[str],
    policy: RulesOfEngagement,
    version: str,
) -> list[OutgoingEvent]:
    """One history entry (and message) per registration the merge concerns: each one moved,
    and, when several now hold the survivor, the one keeping it and those going to review."""
    linked = (await repository.linked_registrations(conn, [survivor])).get(survivor, [])
    verdict = links_after_merge(
        [(r["registration_id"], RegistrationStatus(r["status"]), r["submitted_at"]) for r in linked]
    )
    keeper_row = next((r for r in linked if r["registration_id"] == verdict.keeper), None)
    held_by = (
        f"registration {verdict.keeper} (partner {keeper_row['partner_id']})" if keeper_row else ""
    )
    evidence = {"merged": merged, "survivor": survivor, "event_id": str(cause.id)}
    outgoing: list[OutgoingEvent] = []
    kept = [verdict.keeper] if verdict.displaced and verdict.keeper else []
    concerned = sorted({*moved, *verdict.displaced, *kept})
    for registration_id in concerned:
        row = await repository.registration_for_update(conn, registration_id)
        if row is None:
            continue
        if registration_id in verdict.displaced:
            outgoing += await _displace(
                conn, row, cause, merged, survivor, held_by, keeper_row, policy, version, evidence
            )
            continue
        reason = f"CRM deal {merged} was merged into {survivor}: the registration follows it"
        if registration_id not in moved:
            reason = f"CRM deal {merged} was merged into {survivor}, which this registration holds"
        if verdict.displaced:
            reason += (
                "; it keeps the link (it holds the deal by precedence), and the other"
                " registrations linked to the merged deals go to review"
            )
        entry = entry_for(
            row,
            LedgerWhat.MERGED,
            RegistrationStatus(row["status"]),
            Principal.crm(merged),
            version,
            reason,
            evidence={**evidence, "held_by": verdict.keeper},
        )
        seq = await repository.append_ledger(conn, registration_id, entry)
        # A moved registration's link is announced (same status, the survivor's key): its
        # events are ordered per registration, so downstream moves what it holds by them.
        outgoing += await status_change_events(
            conn, row, entry, Circumstances(cause=cause), seq, relinked=registration_id in moved
        )
        if registration_id in moved:
            outgoing += await _close_with_survivor(conn, registration_id, survivor, cause)
    return outgoing


async def _close_with_survivor(
    conn: Connection, registration_id: str, survivor: str, cause: Envelope[CrmDealChanged]
) -> list[OutgoingEvent]:
    """A registration moved onto a survivor that has already closed takes its outcome, as a
    link to a closed deal does (found in review: it stayed approved on a won deal, expired at
    its window's end, and attribution took its credit back). Only one submitted before the
    close: one made after it sourced nothing, and keeps waiting as it was."""
    deal = await repository.crm_deal_seen(conn, survivor)
    if deal is None or deal.status is DealStatus.OPEN:
        return []
    row = await repository.registration_for_update(conn, registration_id)
    if row is None or RegistrationStatus(row["status"]) not in CLOSING_WITH_DEAL:
        return []
    if deal.closed_at is not None and row["submitted_at"] >= deal.closed_at:
        return []
    return await close_with_deal(conn, row, survivor, None, deal.status, cause)


async def _displace(
    conn: Connection,
    row: Any,
    cause: Envelope[CrmDealChanged],
    merged: str,
    survivor: str,
    held_by: str,
    keeper_row: Any,
    policy: RulesOfEngagement,
    version: str,
    evidence: dict[str, Any],
) -> list[OutgoingEvent]:
    """A live registration that loses the surviving deal to another: unlinked (the partner
    may link it to another deal), and to review, where a channel manager decides it."""
    registration_id: str = row["registration_id"]
    same_partner = keeper_row is not None and keeper_row["partner_id"] == row["partner_id"]
    what_happened = f"CRM deal {merged} was merged into {survivor}"
    if row["crm_deal_key"] == survivor and merged != survivor:
        what_happened = f"CRM deal {merged} was merged into {survivor}, this registration's deal"
    reason = (
        f"{what_happened}, which {held_by} holds by precedence: the link is removed and a"
        " channel manager reviews this registration"
    )
    other = (
        f"your registration {keeper_row['registration_id']}" if same_partner else "another partner"
    )
    told = (
        f"{what_happened}, which {other} holds: the link is removed and a channel manager"
        " reviews this registration"
    )
    unlinked = {**row, "crm_deal_key": None}
    await repository.unlink_registration(conn, registration_id)
    entry = entry_for(
        unlinked,
        LedgerWhat.MERGED,
        RegistrationStatus.PENDING_REVIEW,
        Principal.crm(merged),
        version,
        reason,
        told=told,
        evidence={**evidence, "held_by": keeper_row["registration_id"] if keeper_row else None},
    )
    if RegistrationStatus(row["status"]) is not RegistrationStatus.PENDING_REVIEW:
        deadline = await start_review_clock(conn, policy, now(), frozenset({"partner"}), None)
        await review_repository.store_review_deadline(
            conn, registration_id, deadline.due_at, deadline.acceptance_due_at
        )
    return await record_change(conn, unlinked, entry, Circumstances(cause=cause))
