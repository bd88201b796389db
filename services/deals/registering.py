"""Registering a deal: serialise per customer, decide under the rules of engagement, store the
decision with its inputs and announce it (the decision, the notifications it earns, and the
linked CRM opportunity's new state), all in the caller's transaction."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from services.deals import repository, review_repository
from services.deals.backtest import opportunities_snapshot, partner_snapshot
from services.deals.crm_projection import deal_state_events
from services.deals.decision_facts import load_decision_facts
from services.deals.domain.cooldown import (
    cooldown_refusal,
    cooldown_start,
    cooling_down,
    live_repeat,
    repeat_refusal,
)
from services.deals.domain.ledger import LedgerEntry, LedgerWhat, Principal, PrincipalKind
from services.deals.domain.lifecycle import decision_notification_kind
from services.deals.domain.links import decided_with_link
from services.deals.domain.rules import (
    Decision,
    RegistrationRequest,
    RulesOfEngagement,
    check_registration,
)
from services.deals.linking import check_link
from services.deals.review_sla import start_review_clock
from shared.clock import now
from shared.db import Connection
from shared.errors import Conflict
from shared.events.crm import Customer as CustomerRef
from shared.events.notifications import NotificationKind
from shared.events.registrations import RegistrationDecided, RegistrationStatus
from shared.notify import notify
from shared.outbox import Outbox, OutgoingEvent
from shared.topics import DEAL_REGISTRATIONS


async def decide(
    conn: Connection, policy: RulesOfEngagement, request: RegistrationRequest
) -> Decision:
    """The decision the registration would get now (nothing is stored). A repeat of the
    partner's own live registration is refused with its id (409), and so is a registration
    inside the re-registration cooldown of the partner's own expired one (with the date)."""
    return (await _decide_with_facts(conn, policy, request))[0]


async def _decide_with_facts(
    conn: Connection, policy: RulesOfEngagement, request: RegistrationRequest
) -> tuple[Decision, dict[str, Any]]:
    """The decision, and the facts it was made on that a later replay needs (the partner as
    projected, the open direct opportunities looked at)."""
    since = request.submitted_at - timedelta(days=policy.protection_days)
    expired_since = cooldown_start(policy, request.submitted_at)
    found = await load_decision_facts(
        conn, request.partner_id, request.customer, since, expired_since, request.submitted_at
    )
    repeat = live_repeat(policy, request, found.own_live)
    if repeat is not None:
        raise Conflict(repeat_refusal(repeat))
    # Refused like a repeat (409, the dry run too, nothing stored): what the partner needs is
    # the date it may come back, and other partners are not held back by it.
    lapsed = cooling_down(policy, request, [*found.own_expired, *found.own_live])
    if lapsed is not None:
        raise Conflict(cooldown_refusal(policy, lapsed))
    decision = check_registration(
        policy, request, found.partner, found.registrations, found.opportunities, found.holder_types
    )
    facts = {
        "partner": partner_snapshot(found.partner),
        "opportunities": opportunities_snapshot(found.opportunities),
    }
    return decision, facts


async def register(
    conn: Connection,
    outbox: Outbox,
    policy: RulesOfEngagement,
    request: RegistrationRequest,
    crm_deal_key: str | None,
    principal: Principal,
) -> tuple[str, Decision]:
    """Decide and store a registration, with its first ledger entry (`principal` registered
    it); returns its id and the decision. A CRM link is verified first (409 when it may not be
    made; an approval whose link disagrees with the CRM goes to review)."""
    await repository.lock_customer(conn, request.customer)
    await repository.hold_partner(conn, request.partner_id)
    verdict = None
    if crm_deal_key is not None:
        verdict = await check_link(
            conn,
            policy,
            crm_deal_key,
            request.customer,
            request.amount,
            request.currency,
            for_partner=principal.kind is PrincipalKind.PARTNER,
        )
    first, facts = await _decide_with_facts(conn, policy, request)
    decision = decided_with_link(first, verdict)
    registration_id = f"reg_{uuid.uuid4().hex[:16]}"
    decided_at = now()
    inputs = {
        "request": request.as_asked(),
        "conflicts_considered": [c.model_dump(mode="json") for c in decision.conflicts],
        **facts,
    }
    await repository.insert_registration(
        conn, registration_id, request, decision, decided_at, crm_deal_key, inputs
    )
    evidence: dict[str, Any] = {**inputs, "crm_deal_key": crm_deal_key}
    if decision.status is RegistrationStatus.PENDING_REVIEW:
        kinds = frozenset(c.kind for c in decision.conflicts)
        deadline = await start_review_clock(conn, policy, decided_at, kinds, crm_deal_key)
        await review_repository.store_review_deadline(
            conn, registration_id, deadline.due_at, deadline.acceptance_due_at
        )
        evidence["review"] = deadline.why
    entry = LedgerEntry(
        what=LedgerWhat.DECIDED,
        previous_status=None,
        status=decision.status,
        principal=principal,
        policy_version=decision.policy_version,
        reasons=decision.reasons,
        partner_reasons=decision.partner_reasons,
        evidence=evidence,
    )
    await repository.append_ledger(conn, registration_id, entry)
    customer = request.customer
    decided = RegistrationDecided(
        registration_id=registration_id,
        partner_id=request.partner_id,
        customer=CustomerRef(name=customer.name, domain=customer.domain, country=customer.country),
        products=tuple(sorted(request.products)),
        amount=request.amount,
        currency=request.currency,
        status=decision.status,
        reasons=decision.reasons,
        conflicts=decision.conflicts,
        policy_version=decision.policy_version,
        decided_at=decided_at,
        expires_at=decision.expires_at,
        crm_deal_key=crm_deal_key,
    )
    events = [OutgoingEvent(DEAL_REGISTRATIONS, decided, registration_id)]
    events += await _decision_notifications(conn, policy, registration_id, request, decision)
    if crm_deal_key is not None:
        # Downstream learns the sourcing partner of an opportunity it may already know.
        events += await deal_state_events(conn, crm_deal_key)
    await outbox.publish_many(conn, events)
    return registration_id, decision


async def _decision_notifications(
    conn: Connection,
    policy: RulesOfEngagement,
    registration_id: str,
    request: RegistrationRequest,
    decision: Decision,
) -> list[OutgoingEvent]:
    """The partner hears its decision (what a partner may know of it); a direct owner in
    conflict hears of the registration; on an approval, the account's direct owners hear of the
    co-sell and (under policy) other active partners on the account of the overlap, never who
    or which registration."""
    partner_id, customer = request.partner_id, request.customer
    summary = "; ".join(decision.reasons)
    about = f"{registration_id}/decided"
    kind = decision_notification_kind(decision.status, bool(decision.conflicts))
    notes = [
        notify(
            partner_id,
            kind,
            about=about,
            subject=f"Registration {registration_id} for {customer.name}: {decision.status.value}",
            body="; ".join(decision.partner_reasons),
            registration_id=registration_id,
        )
    ]
    direct = decision.direct_conflict
    if direct is not None:
        notes.append(
            notify(
                partner_id,
                NotificationKind.DIRECT_SALES_CONFLICT,
                about=about,
                recipient=direct.party,
                subject=f"Partner {partner_id} registered {customer.name}, "
                f"your open opportunity {direct.reference}",
                body=summary,
                registration_id=registration_id,
            )
        )
    if decision.status is not RegistrationStatus.APPROVED:
        return notes
    threshold = policy.name_similarity_threshold
    for owner in await repository.direct_owners(conn, customer, None, threshold):
        notes.append(
            notify(
                partner_id,
                NotificationKind.CO_SELL,
                about=about,
                recipient=owner,
                subject=f"Co-sell: {partner_id} is approved on {customer.name}",
                body=summary,
                registration_id=registration_id,
            )
        )
    if policy.overlap_hints:
        others = await repository.overlapping_partners(conn, partner_id, customer, threshold)
        for other in others:
            notes.append(
                notify(
                    other,
                    NotificationKind.OVERLAP_HINT,
                    about=about,
                    subject=f"Another partner is working {customer.name}",
                    body="A partner registered a different product on an account you are working.",
                )
            )
    return notes
