"""The onboarding checklist: a partner (or a channel manager) ticks items; the last one
activates the partner in the tier its revenue and competencies earn. Evidence items (the
agreement, the enablement) the partner only submits evidence for; a channel manager or the
enablement system completes them (`domain.checklist`). Signing the agreement again while in the
program renews it, which may end an agreement grace or a requalification suspension at once."""

from __future__ import annotations

from datetime import datetime

from services.onboarding import repository
from services.onboarding.announcements import record_step, record_version
from services.onboarding.domain.checklist import submit_evidence, tick
from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.lifecycle import Change
from services.onboarding.domain.tiers import (
    authorised_products,
    compute_tier,
    derive_competencies,
    not_before_departure,
    revenue_in_window,
)
from services.onboarding.reassessment import refresh
from services.onboarding.repository import Row
from shared.db import Connection
from shared.events.partners import PartnerStatus
from shared.outbox import Outbox


async def complete_item(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    partner_id: str,
    item: str,
    at: datetime,
    *,
    by: str,
    confirms: bool,
    reference: str | None = None,
) -> Row:
    """Complete `item` (one of `config.checklist`, see `domain.checklist.checklist_item`) as
    `by`; `confirms`: `by` is a channel manager or a system client, who alone complete
    evidence items (with the partner's evidence, or `reference`)."""
    row = await repository.lock_partner(conn, partner_id)
    status = PartnerStatus(row["status"])
    ticked = tick(
        config,
        partner_id,
        status,
        repository.checklist_of(row),
        item,
        at,
        by=by,
        confirms=confirms,
        evidence=repository.evidence_of(row),
        reference=reference,
    )
    if not ticked.fields:  # completed before: nothing changes
        return row
    if ticked.activates:
        return await _activate(conn, outbox, config, row, ticked.fields, at, by)
    row = await record_version(
        conn,
        outbox,
        row,
        Change.UPDATED,
        by=by,
        reason=f"checklist: {item} completed ({ticked.done} of {len(config.checklist)})",
        at=at,
        **ticked.fields,
    )
    if ticked.renewal:
        await refresh(conn, outbox, config, partner_id, as_of=at, acted_by=by)
        row = await repository.lock_partner(conn, partner_id)
    return row


async def submit_item_evidence(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    partner_id: str,
    item: str,
    reference: str,
    at: datetime,
    *,
    by: str,
) -> Row:
    """The partner's evidence for an evidence item, recorded for a channel manager or the
    enablement system to confirm; the item stays open (`domain.checklist.submit_evidence`)."""
    row = await repository.lock_partner(conn, partner_id)
    evidence = submit_evidence(
        config,
        partner_id,
        PartnerStatus(row["status"]),
        repository.checklist_of(row),
        repository.evidence_of(row),
        item,
        reference=reference,
        by=by,
        at=at,
    )
    if evidence is None:  # the evidence the item was completed with: nothing changes
        return row
    return await record_version(
        conn,
        outbox,
        row,
        Change.UPDATED,
        by=by,
        reason=f"checklist: evidence for {item} submitted, awaiting confirmation",
        at=at,
        checklist_evidence=evidence,
    )


async def _activate(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    row: Row,
    fields: dict[str, object],
    at: datetime,
    by: str,
) -> Row:
    partner_id = row["partner_id"]
    certifications, departed = await repository.certifications_of(conn, [partner_id])
    competencies = derive_competencies(
        config, certifications[partner_id], not_before_departure(at, departed)
    )
    days = await repository.revenue_days(conn, config, [partner_id], at)
    revenue = revenue_in_window(config, days[partner_id], at)
    assessment = compute_tier(config, revenue, competencies, row["partner_type"])
    return await record_step(
        conn,
        outbox,
        row,
        PartnerStatus.ACTIVE,
        Change.ACTIVATED,
        by=by,
        reason=f"onboarding checklist complete; tier {assessment.tier}: "
        + "; ".join(assessment.reasons),
        at=at,
        tier=assessment.tier,
        revenue=revenue,
        competencies=sorted(competencies),
        products=sorted(authorised_products(config, row["products_applied"], competencies)),
        policy_version=config.version,
        **fields,
    )
