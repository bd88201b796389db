"""A channel manager's review of a registration pending review, and what any approval of one
(the manager's, or the overdue-review job's) must check first."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from services.deals import repository, review_repository
from services.deals.decision_facts import load_decision_facts
from services.deals.domain.ledger import LedgerWhat, Principal
from services.deals.domain.lifecycle import review_outcome, window_after_review
from services.deals.domain.partner_standing import approval_refusal
from services.deals.domain.rules import (
    RegistrationRequest,
    RulesOfEngagement,
    conflicts_at_approval,
    partner_refusal,
)
from services.deals.repository import Row
from services.deals.status_changes import change_status, entry_for
from shared.clock import now
from shared.db import Connection
from shared.errors import Conflict, NotFound
from shared.events.partners import PartnerStatus
from shared.events.registrations import RegistrationStatus
from shared.outbox import Outbox


def stored_request(row: Row, inputs: Mapping[str, Any]) -> RegistrationRequest:
    """A stored registration's request as its partner sent it (the customer's domain as given
    in its decision's `inputs`, which the stored key normalised)."""
    asked = inputs.get("request", {})
    return RegistrationRequest(
        partner_id=row["partner_id"],
        customer_name=row["customer_name"],
        customer_domain=asked.get("customer_domain", row["customer_domain"]),
        customer_country=row["customer_country"],
        products=frozenset(row["products"]),
        amount=row["amount"],
        currency=row["currency"],
        submitted_at=row["submitted_at"],
    )


async def approval_problem(
    conn: Connection, policy: RulesOfEngagement, row: Row, at: datetime
) -> str | None:
    """Why the registration pending review in `row` may not be approved at `at` (None: it may):
    its partner may not register now, or another partner's registration its decision did not
    weigh holds the customer now (its window ran out while it waited, and the other came in
    then). The customer is locked first, as a registration's decision locks it."""
    status = await repository.partner_status(conn, row["partner_id"])
    refusal = approval_refusal(
        None if status is None else PartnerStatus(status), policy.statuses_allowed_to_register
    )
    if refusal is not None:
        return refusal
    inputs = json.loads(row["inputs"])
    request = stored_request(row, inputs)
    await repository.lock_customer(conn, request.customer)
    since = at - timedelta(days=policy.protection_days)
    found = await load_decision_facts(conn, row["partner_id"], request.customer, since, at, at)
    unauthorised = partner_refusal(policy, request, found.partner)
    if unauthorised is not None:
        return f"{unauthorised} now: its authorisations changed while this one waited for review"
    considered = {c.get("reference") for c in inputs.get("conflicts_considered", [])}
    own_type = found.partner.partner_type if found.partner is not None else None
    fresh = conflicts_at_approval(
        policy,
        request,
        at,
        found.registrations,
        (own_type, found.holder_types),
        considered,
        row["expires_at"],
    )
    if not fresh:
        return None
    held = ", ".join(f"{c.reference} by {c.party}" for c in fresh)
    return (
        f"another partner's registration holds the customer now ({held}), which this one's"
        " decision did not weigh: it came in while this one waited for review. Reject this"
        " registration, or end the other first"
    )


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
    registration that is not pending review, and for an approval `approval_problem` refuses.
    The reviewer and the note go into the ledger; the
    partner and the account's direct owners are told."""
    row = await repository.registration_for_update(conn, registration_id)
    if row is None:
        raise NotFound(f"registration {registration_id} not found")
    deal_outcome = await repository.won_deal(conn, row["crm_deal_key"])
    outcome, reason = review_outcome(RegistrationStatus(row["status"]), approve, note, deal_outcome)
    if approve:
        problem = await approval_problem(conn, policy, row, now())
        if problem is not None:
            raise Conflict(problem)
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
        window_after_review(
            await review_repository.review_began_at(
                conn, row["registration_id"], row["submitted_at"]
            ),
            row["expires_at"],
            now(),
        )
        if outcome is RegistrationStatus.APPROVED
        else None
    )
    await change_status(
        conn, outbox, row, entry, restarted, threshold=policy.name_similarity_threshold
    )
    return outcome
