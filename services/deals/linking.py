"""Linking a registration to a CRM opportunity, at creation or later: verified against the CRM
projection (services/deals/domain/links.py), serialised per opportunity, in the caller's
transaction."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from services.deals import repository, review_repository
from services.deals.crm_projection import deal_state_events
from services.deals.domain.crm import CLOSING_WITH_DEAL
from services.deals.domain.customers import Customer
from services.deals.domain.ledger import LedgerWhat, Principal
from services.deals.domain.lifecycle import close_with_opportunity
from services.deals.domain.links import LinkVerdict, linkable, verify_link
from services.deals.domain.rules import RulesOfEngagement
from services.deals.repository import Row
from services.deals.review_sla import start_review_clock
from services.deals.status_changes import change_status, close_with_deal, entry_for
from shared.clock import now
from shared.db import Connection
from shared.events.registrations import RegistrationStatus
from shared.http import partner_scope
from shared.identity import Caller
from shared.outbox import Outbox


async def check_link(
    conn: Connection,
    policy: RulesOfEngagement,
    deal_key: str,
    customer: Customer,
    amount: Decimal,
    currency: str,
    registration_id: str | None = None,
    submitted_at: datetime | None = None,
    *,
    for_partner: bool,
) -> LinkVerdict:
    """Lock the opportunity's links and verify this one (409 when it may not be made); the
    registration is `registration_id`, submitted at `submitted_at` (None: a new one);
    `for_partner`: a partner asks (one refusal for every link it may not make)."""
    await repository.lock_crm_link(conn, deal_key)
    deal = await repository.crm_deal_seen(conn, deal_key)
    holders = await repository.link_holders(conn, deal_key, registration_id)
    return verify_link(
        deal_key,
        customer,
        amount,
        currency,
        deal,
        holders,
        policy.name_similarity_threshold,
        policy.link_amount_tolerance,
        submitted_at,
        for_partner=for_partner,
    )


async def link_registration(
    conn: Connection,
    outbox: Outbox,
    policy: RulesOfEngagement,
    who: Caller,
    registration_id: str,
    deal_key: str,
) -> tuple[RegistrationStatus, str]:
    """Link the caller's registration to `deal_key`; returns its status and why. Another
    partner's registration is not found; a link that may not be made is a conflict saying why.
    An approved registration whose link disagrees with the CRM goes to review. A deal that
    closed after the registration was submitted closes it now, as it would have closed had it
    been linked before (the README's lifecycle): otherwise it would wait, approved, to expire."""
    row = await repository.registration_for_update(conn, registration_id)
    partner_scope(who, row["partner_id"] if row else None, f"registration {registration_id}")
    assert row is not None
    status = RegistrationStatus(row["status"])
    if not linkable(status, row["crm_deal_key"], deal_key):
        return status, f"already linked to CRM deal {deal_key}"
    customer = Customer.parse(row["customer_name"], row["customer_domain"])
    verdict = await check_link(
        conn,
        policy,
        deal_key,
        customer,
        row["amount"],
        row["currency"],
        registration_id,
        row["submitted_at"],
        for_partner=who.is_partner,
    )
    await repository.store_link(
        conn, registration_id, deal_key, verdict.reason, verdict.partner_reason
    )
    linked = {**row, "crm_deal_key": deal_key}
    if verdict.review and status is RegistrationStatus.APPROVED:
        status = RegistrationStatus.PENDING_REVIEW
    entry = entry_for(
        linked,
        LedgerWhat.LINKED,
        status,
        Principal.of(who),
        policy.version,
        verdict.reason,
        told=verdict.told,
        evidence={"crm_deal_key": deal_key},
    )
    if entry.status is not entry.previous_status:
        deadline = await start_review_clock(conn, policy, now(), frozenset(), deal_key)
        await review_repository.store_review_deadline(
            conn, registration_id, deadline.due_at, deadline.acceptance_due_at
        )
        threshold = policy.name_similarity_threshold
        await change_status(conn, outbox, linked, entry, threshold=threshold)
    else:  # not a status change, but the registration's reasons grew: an entry all the same
        await repository.append_ledger(conn, registration_id, entry)
        if status is RegistrationStatus.PENDING_REVIEW:
            await _deadline_of_a_referral(conn, policy, row, deal_key)
    reason = verdict.partner_reason if who.is_partner else verdict.reason
    if verdict.closed is not None and status in CLOSING_WITH_DEAL:
        current = {**linked, "status": status.value}
        closing = await close_with_deal(conn, current, deal_key, None, verdict.closed)
        await outbox.publish_many(conn, closing)
        status, closed = close_with_opportunity(status, deal_key, verdict.closed)
        reason = f"{reason}; {closed}"
    # Downstream learns the opportunity's linked registrations.
    await outbox.publish_many(conn, await deal_state_events(conn, deal_key))
    return status, reason


async def _deadline_of_a_referral(
    conn: Connection, policy: RulesOfEngagement, row: Row, deal_key: str
) -> None:
    """A registration already waiting for review, now linked to a hyperscaler referral: the
    review is due by the referral's acceptance deadline when that comes first (found in
    review: the deadline stayed as it was, and the referral could lapse unaccepted)."""
    deadline = await start_review_clock(conn, policy, now(), frozenset(), deal_key)
    accept_by = deadline.acceptance_due_at
    if accept_by is None:
        return
    current = row["review_due_at"]
    if current is not None and current <= accept_by:
        return  # its deadline comes first: it stands, reminded or escalated as it was
    await review_repository.store_review_deadline(
        conn, row["registration_id"], accept_by, accept_by
    )
