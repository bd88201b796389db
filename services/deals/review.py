"""A channel manager's review of a registration pending review."""

from __future__ import annotations

from services.deals import repository
from services.deals.domain.ledger import LedgerWhat, Principal
from services.deals.domain.lifecycle import review_outcome, window_after_review
from services.deals.domain.rules import RulesOfEngagement
from services.deals.status_changes import change_status, entry_for
from shared.clock import now
from shared.db import Connection
from shared.errors import NotFound
from shared.events.registrations import RegistrationStatus
from shared.outbox import Outbox


async def review(
    conn: Connection,
    outbox: Outbox,
    policy: RulesOfEngagement,
    reviewer: Principal,
    registration_id: str,
    approve: bool,
    note: str,
) -> RegistrationStatus:
    """Approve or reject a registration pending review; returns its new status. 409 for a
    registration that is not pending review. The reviewer and the note go into the ledger; the
    partner and the account's direct owners are told."""
    row = await repository.registration_for_update(conn, registration_id)
    if row is None:
        raise NotFound(f"registration {registration_id} not found")
    deal_outcome = await repository.won_deal(conn, row["crm_deal_key"])
    outcome, reason = review_outcome(RegistrationStatus(row["status"]), approve, note, deal_outcome)
    entry = entry_for(
        row,
        LedgerWhat.REVIEWED,
        outcome,
        reviewer,
        policy.version,
        reason,
        evidence={"approve": approve, "note": note, "deal_outcome": deal_outcome},
    )
    restarted = (
        window_after_review(row["submitted_at"], row["expires_at"], now())
        if outcome is RegistrationStatus.APPROVED
        else None
    )
    await change_status(
        conn, outbox, row, entry, restarted, threshold=policy.name_similarity_threshold
    )
    return outcome
