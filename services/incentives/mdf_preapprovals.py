"""MDF pre-approvals: a partner asks for a campaign's budget before spending it; a channel
manager approves (the amount is reserved in the partner's fund) or rejects it; claims with proof
draw on the reservation; past the campaign's end + the claim window the rest is released.

Everything happens under the partner's fund lock (mdf_repository.lock_fund) and every state
change is announced on incentives.ledger.v1 in the same transaction (the outbox)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from services.incentives import campaign_projection, mdf_repository, preapproval_repository
from services.incentives.domain import claims, preapprovals
from services.incentives.domain.campaigns import (
    check_approvable,
    check_campaign,
    check_claimable,
    check_within,
)
from services.incentives.domain.claims import ClaimAsk, RecordedClaim
from services.incentives.domain.preapprovals import (
    CampaignBudget,
    Preapproval,
    PreapprovalConflict,
)
from services.incentives.domain.programs import IncentivePrograms
from shared.clock import now
from shared.db import Connection, from_row
from shared.errors import NotFound, Unprocessable
from shared.events import Envelope
from shared.events.incentives import MdfPreapprovalChanged
from shared.events.notifications import NotificationKindV5
from shared.events.programme_service import CampaignChanged
from shared.notify import notify
from shared.outbox import Outbox, OutgoingEvent
from shared.topics import INCENTIVE_LEDGER


@dataclass(frozen=True)
class PreapprovalPolicy:
    """How long after its campaign ends a pre-approval still accepts claims."""

    claim_window_days: int = 60


@dataclass(frozen=True)
class PreapprovedClaimRequested:
    claim_id: str
    amount: Decimal  # as stored
    preapproval_left: Decimal  # what further claims against the pre-approval may still ask for
    status: str = claims.REQUESTED  # a repeat's: what the recorded claim became since
    new: bool = True  # False: a repeat, answered with the claim recorded under its reference


async def request(
    conn: Connection,
    outbox: Outbox,
    programs: IncentivePrograms,
    partner_id: str,
    budget: CampaignBudget,
) -> tuple[asyncpg.Record, bool]:
    """Record the request (announced as requested). A retry with the same reference and the same
    budget returns the recorded one; the same reference for another budget is a conflict.
    Returns the row and whether it is new."""
    if budget.currency != programs.currency:
        raise Unprocessable(
            f"currency {budget.currency} is not the MDF fund's currency {programs.currency}"
        )
    try:
        preapprovals.check_dates(budget.starts_on, budget.ends_on)
    except ValueError as refused:
        raise Unprocessable(str(refused)) from None
    fund = await mdf_repository.lock_fund(conn, partner_id)
    assert fund is not None
    known = await preapproval_repository.by_reference(conn, partner_id, budget.reference)
    if known is not None:
        if _same_budget(known, budget):
            return known, False
        raise PreapprovalConflict(
            f"reference {budget.reference} already names pre-approval "
            f"{known['preapproval_id']} with another budget"
        )
    at = now()
    named = await campaign_projection.campaign(conn, budget.campaign_id)
    check_within(
        check_campaign(budget.campaign_id, named, partner_id, at.date()),
        budget.starts_on,
        budget.ends_on,
    )
    preapproval_id = str(uuid.uuid4())
    await preapproval_repository.insert(conn, preapproval_id, partner_id, budget, at)
    written = await preapproval_repository.row(conn, preapproval_id)
    assert written is not None
    await outbox.publish_many(conn, [_announced(written, fund.available(at), at)])
    return written, True


def _same_budget(known: asyncpg.Record, budget: CampaignBudget) -> bool:
    return from_row(CampaignBudget, known) == budget


async def decide(
    conn: Connection,
    outbox: Outbox,
    policy: PreapprovalPolicy,
    preapproval_id: str,
    *,
    approve: bool,
    note: str,
) -> asyncpg.Record:
    """Approve (reserve the amount, 409 if the fund cannot cover it) or reject with a reason.
    Repeating the recorded decision returns it unchanged. Claims are taken until its campaign's
    end (as programme last announced it) + the claim window."""
    found = await preapproval_repository.row(conn, preapproval_id)
    if found is None:
        raise NotFound(f"pre-approval {preapproval_id} not found")
    campaign_id = found["campaign_id"]
    # The campaign before the fund (the lock order campaign, fund, pre-approval that
    # follow_campaigns takes too): a move of its end waits for this approval, and then moves
    # its deadline, or this approval waits and counts from the moved end.
    named = (
        await campaign_projection.campaign(conn, campaign_id, for_share=True) if approve else None
    )
    fund = await mdf_repository.lock_fund(conn, found["partner_id"])
    assert fund is not None
    locked = await preapproval_repository.row(conn, preapproval_id, for_update=True)
    assert locked is not None
    before = await preapproval_repository.load(conn, locked)
    deadline = None
    if approve and before.status == preapprovals.REQUESTED:
        campaign = check_approvable(campaign_id, named, before.partner_id)
        deadline = preapprovals.claim_deadline(campaign.ends_on, policy.claim_window_days)
    at = now()
    decided = preapprovals.decide(
        before,
        approve=approve,
        note=note,
        available_now=fund.available(at),
        at=at,
        expires_at=deadline,
    )
    if not decided.changed:
        return locked
    written = await preapproval_repository.save(
        conn, before, decided.preapproval, at=at, reason=decided.reason
    )
    available = fund.available(at) - (decided.preapproval.reserved - before.reserved)
    await outbox.publish_many(conn, [_announced(written, available, at), _told(written, at)])
    return written


async def request_claim(
    conn: Connection,
    programs: IncentivePrograms,
    preapproval_id: str,
    ask: ClaimAsk,
) -> PreapprovedClaimRequested:
    """A claim with proof against the partner's pre-approval: at most what is left of it
    (claims awaiting a decision count as taken), while it accepts claims. Decided like any
    claim (`mdf_claims.decide_claim`). Once per proof reference, as any claim: a repeat answers
    with the claim recorded under it, another claim under it is a ClaimConflict."""
    found = await preapproval_repository.row(conn, preapproval_id)
    if found is None or found["partner_id"] != ask.partner_id:
        raise NotFound(f"pre-approval {preapproval_id} not found")
    fund = await mdf_repository.lock_fund(conn, ask.partner_id)
    assert fund is not None
    locked = await preapproval_repository.row(conn, preapproval_id, for_update=True)
    assert locked is not None
    pre = await preapproval_repository.load(conn, locked)
    known = await mdf_repository.claim_by_reference(conn, ask.partner_id, ask.proof_reference)
    if known is not None:
        recorded = from_row(RecordedClaim, known)
        claims.check_repeat(recorded, ask, programs.currency, preapproval_id)
        return PreapprovedClaimRequested(
            known["claim_id"], known["amount"], pre.claimable, known["status"], new=False
        )
    at = now()
    preapprovals.check_claim(pre, ask.amount, at)
    campaign_id = locked["campaign_id"]
    check_claimable(
        campaign_id, await campaign_projection.campaign(conn, campaign_id), ask.partner_id
    )
    claim_id, amount = await mdf_repository.insert_claim(
        conn, programs, ask=ask, at=at, preapproval_id=preapproval_id
    )
    return PreapprovedClaimRequested(claim_id, amount, pre.claimable - amount)


@dataclass(frozen=True)
class ClaimOnPreapproval:
    """What a claim decision does to the pre-approval it draws on."""

    before: Preapproval
    row: asyncpg.Record

    def allowance(self) -> Decimal:
        """What the claim may take beyond the fund's unreserved money: this reservation."""
        return self.before.reserved


async def lock_for_claim(conn: Connection, preapproval_id: str) -> ClaimOnPreapproval:
    """The pre-approval a claim being decided draws on (the fund is locked already)."""
    locked = await preapproval_repository.row(conn, preapproval_id, for_update=True)
    assert locked is not None
    return ClaimOnPreapproval(await preapproval_repository.load(conn, locked), locked)


async def claim_decided(
    conn: Connection,
    on: ClaimOnPreapproval,
    *,
    approved: bool,
    amount: Decimal,
    fund_available: Decimal,
    at: datetime,
) -> tuple[OutgoingEvent, Decimal]:
    """Move the reservation by the claim's decision; returns the pre-approval's announcement
    and what the decision released to the fund."""
    released = Decimal("0.00")
    if approved:
        after = preapprovals.claim_approved(on.before, amount)
    else:
        after, released = preapprovals.claim_rejected(on.before, amount)
    written = await preapproval_repository.save(conn, on.before, after, at=at)
    return _announced(written, fund_available + released, at, released=released), released


async def expire_due(
    conn: Connection, outbox: Outbox, at: datetime | None = None, limit: int = 200
) -> int:
    """Expire approved pre-approvals past their claim window, releasing what no claim awaiting
    a decision asks for; a transaction per pre-approval. Returns how many expired."""
    at = at or now()
    count = 0
    for due in await preapproval_repository.due(conn, at, limit):
        async with conn.transaction():
            fund = await mdf_repository.lock_fund(conn, due["partner_id"], create=False)
            assert fund is not None
            locked = await preapproval_repository.row(conn, due["preapproval_id"], for_update=True)
            assert locked is not None
            before = await preapproval_repository.load(conn, locked)
            expired = preapprovals.expire(before, at)
            if expired is None:
                continue  # decided otherwise since it was listed
            after, released = expired
            written = await preapproval_repository.save(conn, before, after, at=at)
            announced = _announced(written, fund.available(at) + released, at, released=released)
            told = _told(written, at, released=released)
            await outbox.publish_many(conn, [announced, told])
            count += 1
    return count


async def follow_campaigns(
    conn: Connection, events: Sequence[Envelope[CampaignChanged]]
) -> list[OutgoingEvent]:
    """Programme's word on campaigns into the projection; where a campaign's last day moved,
    the claim deadline of each of its approved pre-approvals moves by as many days (announced,
    each caused by the campaign's change). Returns the announcements.

    Locks in the order campaigns (record), funds, pre-approvals, as an approval does: a
    deadline is never computed from an end being replaced."""
    moved = await campaign_projection.record(conn, [event.data for event in events])
    if not moved:
        return []
    partners = await preapproval_repository.approved_partners(conn, list(moved))
    funds = await mdf_repository.lock_funds(conn, partners, create=False)
    causes = {event.data.campaign_id: event for event in events}
    at = now()
    return [
        _announced(
            row, funds[row["partner_id"]].available(at), at, cause=causes[row["campaign_id"]]
        )
        for row in await preapproval_repository.move_deadlines(conn, moved)
    ]


def _announced(
    row: asyncpg.Record,
    fund_available: Decimal,
    at: datetime,
    *,
    released: Decimal | None = None,
    cause: Envelope[Any] | None = None,
) -> OutgoingEvent:
    changed = from_row(
        MdfPreapprovalChanged,
        row,
        released=released if released is not None else Decimal("0.00"),
        fund_available=fund_available,
        changed_at=at,
        ingested_at=at,
    )
    return OutgoingEvent(INCENTIVE_LEDGER, changed, changed.partner_id, cause=cause)


def _told(row: asyncpg.Record, at: datetime, *, released: Decimal | None = None) -> OutgoingEvent:
    """The partner told of its pre-approval's decision or expiry (a `notification.partner.v5`:
    these kinds are newer than the enum versions). One message per pre-approval and outcome."""
    ask = f"pre-approval {row['preapproval_id']} (your reference {row['reference']})"
    campaign = row["campaign_id"]

    def money(amount: Decimal) -> str:
        return f"{amount} {row['currency']}"

    if row["status"] == preapprovals.APPROVED:
        kind = NotificationKindV5.MDF_PREAPPROVAL_APPROVED
        subject = f"MDF approved for campaign {campaign}: {money(row['reserved'])} reserved"
        deadline = row["expires_at"].date().isoformat() if row["expires_at"] else "its end"
        body = (
            f"{ask} is approved: {money(row['reserved'])} is reserved in your MDF fund for "
            f"campaign {campaign}. Claim against it with proof before {deadline}."
        )
    elif row["status"] == preapprovals.REJECTED:
        kind = NotificationKindV5.MDF_PREAPPROVAL_REJECTED
        subject = f"MDF not approved for campaign {campaign}"
        body = f"{ask} for {money(row['amount'])} is rejected: {row['reason']}"
    else:
        kind = NotificationKindV5.MDF_PREAPPROVAL_EXPIRED
        subject = f"MDF pre-approval for campaign {campaign} expired"
        body = (
            f"{ask} stopped accepting claims: {money(row['claimed'])} was claimed, "
            f"{money(released or Decimal('0.00'))} unclaimed went back to your MDF fund."
        )
    return notify(
        row["partner_id"],
        kind,
        about=f"mdf_preapproval/{row['preapproval_id']}",
        subject=subject,
        body=body,
        created_at=at,
    )
