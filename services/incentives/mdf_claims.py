"""MDF claims: a partner requests funds against its fund; a channel manager approves (the fund
is debited, soonest-expiring lots first) or rejects. Both happen under the fund's lock, so
concurrent approvals can never overdraw it. Once per proof reference: a repeat (the same
reference asking for the same money) answers with the claim recorded under it, whatever it
became since; the same reference asking for other money is a conflict."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

from services.incentives import mdf_preapprovals, mdf_repository, repository
from services.incentives.domain import claims
from services.incentives.domain.claims import REQUESTED, ClaimAsk, RecordedClaim
from services.incentives.domain.ledger import check_payable, entry_id
from services.incentives.domain.mdf import Fund, consume
from services.incentives.domain.programs import IncentivePrograms
from shared.clock import now
from shared.db import Connection, from_row
from shared.errors import NotFound
from shared.events.incentives import MdfClaimDecided
from shared.events.notifications import NotificationKind
from shared.notify import notify
from shared.outbox import Outbox, OutgoingEvent
from shared.topics import INCENTIVE_LEDGER


@dataclass(frozen=True)
class ClaimRequested:
    claim_id: str
    amount: Decimal  # as stored
    fund_available: Decimal  # what the fund has available, as the claim is requested (or repeated)
    status: str = REQUESTED  # a repeat's: what the recorded claim became since
    new: bool = True  # False: a repeat, answered with the claim recorded under its reference


async def request_claim(
    conn: Connection,
    programs: IncentivePrograms,
    ask: ClaimAsk,
) -> ClaimRequested:
    """Record a claim if the fund covers it now (approval checks again under the lock);
    ClaimConflict if it does not. A repeat of the claim recorded under the ask's proof
    reference answers with it (nothing recorded again); another claim under that reference
    is a ClaimConflict."""
    # The fund's lock serialises the partner's claims: a concurrent repeat waits here, then
    # finds the first under its reference.
    fund = await mdf_repository.lock_fund(conn, ask.partner_id)
    assert fund is not None
    at = now()
    available_now = fund.available(at)
    known = await mdf_repository.claim_by_reference(conn, ask.partner_id, ask.proof_reference)
    if known is not None:
        claims.check_repeat(from_row(RecordedClaim, known), ask, programs.currency, None)
        return ClaimRequested(
            known["claim_id"], known["amount"], available_now, known["status"], new=False
        )
    claims.check_request(available_now, ask.amount)
    claim_id, amount = await mdf_repository.insert_claim(conn, programs, ask=ask, at=at)
    return ClaimRequested(claim_id, amount, available_now)


async def decide_claim(
    conn: Connection,
    outbox: Outbox,
    programs: IncentivePrograms,
    claim_id: str,
    *,
    approve: bool,
    note: str,
) -> MdfClaimDecided:
    """Approve (debit the fund) or reject a requested claim; NotFound if there is no such
    claim, ClaimConflict if it cannot be decided so."""
    claim = await mdf_repository.claim(conn, claim_id)
    if claim is None:
        raise NotFound(f"claim {claim_id} not found")
    partner_id = claim["partner_id"]
    # Lock order everywhere: the fund first, then what belongs to it.
    fund = await mdf_repository.lock_fund(conn, partner_id)
    assert fund is not None
    claim = await mdf_repository.claim(conn, claim_id, for_update=True)
    assert claim is not None
    if approve:  # a partner that lost access is not paid out of its fund either
        check_payable(await repository.partner_status(conn, partner_id))
    at = now()
    amount: Decimal = claim["amount"]
    available_now = fund.available(at)
    # A claim against a pre-approval may also spend that pre-approval's reservation.
    on = None
    if claim["preapproval_id"] is not None:
        on = await mdf_preapprovals.lock_for_claim(conn, claim["preapproval_id"])
    decision = claims.decide(
        claim_id,
        claim["status"],
        approve=approve,
        amount=amount,
        available_now=available_now + (on.allowance() if on else 0),
        note=note,
    )
    debit_id: str | None = None
    if decision.debits:
        debit_id = await _debit(conn, programs, claim, fund, note=note, at=at)
        # Out of the reservation, the unreserved money is untouched; otherwise out of it.
        available_now -= 0 if on else amount
    await mdf_repository.record_decision(
        conn, claim_id, status=decision.status, reason=decision.reason, at=at
    )
    events: list[OutgoingEvent] = []
    if on is not None:
        moved, released = await mdf_preapprovals.claim_decided(
            conn, on, approved=decision.debits, amount=amount, fund_available=available_now, at=at
        )
        events.append(moved)
        available_now += released  # a rejection after the pre-approval expired frees its amount
    decided = MdfClaimDecided(
        claim_id=claim_id,
        partner_id=partner_id,
        status=decision.status,
        amount=amount,
        currency=claim["currency"],
        description=claim["description"],
        proof_reference=claim["proof_reference"],
        reason=decision.reason,
        entry_id=debit_id,
        fund_available=available_now,
        decided_at=at,
        ingested_at=at,
        preapproval_id=claim["preapproval_id"],
        campaign_id=on.row["campaign_id"] if on else None,
    )
    await outbox.publish_many(conn, [_announced(decided), _told(decided), *events])
    return decided


async def _debit(
    conn: Connection,
    programs: IncentivePrograms,
    claim: asyncpg.Record,
    fund: Fund,
    *,
    note: str,
    at: datetime,
) -> str:
    """Take an approved claim out of the fund (soonest-expiring lots first) and record the
    debit on the MDF ledger. Returns the debit's entry id."""
    claim_id, amount = claim["claim_id"], claim["amount"]
    takes, shortfall = consume(fund.lots, amount, at)
    assert shortfall == 0  # the decision checked the fund covers it, under its lock
    await mdf_repository.take_from_lots(conn, takes)
    debit_id = entry_id(claim_id, "claim")
    await mdf_repository.insert_mdf_entry(
        conn,
        entry_id=debit_id,
        partner_id=claim["partner_id"],
        entry_type="claim",
        rule="mdf:claim",
        period=programs.period_of(at.date()),
        claim_id=claim_id,
        amount=-amount,
        currency=claim["currency"],
        note=f"claim approved: {note}" if note else "claim approved",
        programs_version=programs.version,
        created_at=at,
        ingested_at=at,
    )
    return debit_id


def _announced(decided: MdfClaimDecided) -> OutgoingEvent:
    return OutgoingEvent(INCENTIVE_LEDGER, decided, decided.partner_id)


def _told(decided: MdfClaimDecided) -> OutgoingEvent:
    """The partner's notification of the decision."""
    return notify(
        decided.partner_id,
        NotificationKind.MDF_CLAIM,
        about=decided.claim_id,
        subject=f"MDF claim {decided.status}: {decided.amount} {decided.currency}",
        body=f"Your MDF claim '{decided.description}' was {decided.status}: {decided.reason}. "
        f"Available MDF: {decided.fund_available} {decided.currency}.",
        created_at=decided.decided_at,
        ingested_at=decided.ingested_at,
    )
