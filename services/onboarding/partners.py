"""Service layer of onboarding: applications, checklist, certifications, credits, requalification.

Each function loads what the rules need (locking the partner row, so concurrent changes to one
partner serialise in Postgres), calls the pure domain, then writes the new state, an audit row
and the events announcing it (outbox) in the caller's transaction.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.lifecycle import IN_PROGRAM, check_transition
from services.onboarding.domain.qualification import Application, Outcome, Qualification, qualify
from services.onboarding.domain.requalification import Action, Standing, Verdict, evaluate
from services.onboarding.domain.tiers import (
    Certification,
    CertificationRole,
    authorised_products,
    compute_tier,
    derive_competencies,
)
from shared.db import Connection, Pool
from shared.events import InvalidEvent
from shared.events.attribution import CreditIssued, CreditReversed
from shared.events.notifications import PartnerNotification
from shared.events.partners import PartnerStateChanged, PartnerStatus, PartnerType
from shared.outbox import Outbox
from shared.topics import PARTNER_LIFECYCLE, PARTNER_NOTIFICATIONS

log = logging.getLogger(__name__)
Row = asyncpg.Record

# Agreements without a term never lapse: stored as a far-future validity.
NEVER = datetime(9999, 1, 1, tzinfo=UTC)


class NotFound(LookupError):
    """No such partner (or one the caller may not see)."""


class Conflict(ValueError):
    """The request is well-formed but the partner's state does not allow it."""


def now() -> datetime:
    return datetime.now(UTC)


def qualification_json(q: Qualification) -> dict[str, Any]:
    return {
        "total": str(q.total),
        "outcome": q.outcome.value,
        "explanation": q.explanation,
        "policy_version": q.policy_version,
        "criteria": [
            {
                "criterion": c.criterion.value,
                "score": str(c.score),
                "weight": str(c.weight),
                "explanation": c.explanation,
            }
            for c in q.criteria
        ],
    }


def application_from_row(row: Row) -> Application:
    data = json.loads(row["application"])
    return Application(
        company_name=row["company_name"],
        domain=row["domain"],
        partner_type=PartnerType(row["partner_type"]),
        regions=frozenset(data["regions"]),
        products=frozenset(data["products"]),
        competencies_claimed=frozenset(data["competencies_claimed"]),
        industries=frozenset(data["industries"]),
        segments=frozenset(data["segments"]),
        annual_revenue=Decimal(data["annual_revenue"]),
        years_in_business=int(data["years_in_business"]),
        certified_staff=int(data["certified_staff"]),
    )


async def lock_partner(conn: Connection, partner_id: str) -> Row:
    row = await conn.fetchrow("SELECT * FROM partners WHERE partner_id = $1 FOR UPDATE", partner_id)
    if row is None:
        raise NotFound(f"partner {partner_id} not found")
    return row


def snapshot(
    row: Row,
    change: str,
    before: Row | None,
    ingested_at: datetime | None,
) -> PartnerStateChanged:
    # The application itself has no "before".
    previous = before if before is not None and before["version"] > 0 else None
    return PartnerStateChanged(
        partner_id=row["partner_id"],
        name=row["company_name"],
        partner_type=row["partner_type"],
        status=PartnerStatus(row["status"]),
        tier=row["tier"],
        regions=tuple(sorted(row["regions"])),
        products=tuple(sorted(row["products"])),
        changed_at=row["updated_at"],
        reason=row["reason"],
        version=row["version"],
        change=change,
        previous_status=PartnerStatus(previous["status"]) if previous is not None else None,
        previous_tier=previous["tier"] if previous is not None else None,
        domain=row["domain"],
        competencies=tuple(sorted(row["competencies"])),
        grace_until=row["grace_until"],
        ingested_at=ingested_at,
        policy_version=row["policy_version"],
    )


_COLUMNS = frozenset(
    {
        "status",
        "tier",
        "regions",
        "products",
        "competencies",
        "qualification",
        "qualification_outcome",
        "decision_note",
        "checklist",
        "agreement_valid_until",
        "revenue",
        "grace_until",
        "suspended_at",
        "suspended_by_requalification",
        "policy_version",
    }
)

_NOTIFICATION_KINDS = {
    "tier_changed": "tier_changed",
    "grace_started": "requalification",
    "grace_cleared": "requalification",
    "demoted": "requalification",
}


async def change_partner(
    conn: Connection,
    outbox: Outbox,
    before: Row,
    *,
    change: str,
    reason: str,
    ingested_at: datetime | None,
    at: datetime | None = None,
    **fields: Any,
) -> Row:
    """Write a new version of the partner and announce it: snapshot + audit row + notification.

    `change` names what happened for consumers; `grace_cleared` is published as `updated`
    (the contract's vocabulary) with the reason saying so.
    """
    unknown = set(fields) - _COLUMNS
    if unknown:
        raise ValueError(f"not partner columns: {sorted(unknown)}")
    names = list(fields)
    assignments = "".join(f", {name} = ${i + 4}" for i, name in enumerate(names))
    row = await conn.fetchrow(
        f"""UPDATE partners SET version = version + 1, reason = $2, updated_at = $3{assignments}
            WHERE partner_id = $1 RETURNING *""",
        before["partner_id"],
        reason,
        at or now(),
        *[fields[name] for name in names],
    )
    assert row is not None
    published_change = "updated" if change == "grace_cleared" else change
    await conn.execute(
        """INSERT INTO partner_history (partner_id, version, change, status, tier, reason, changed_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        row["partner_id"],
        row["version"],
        published_change,
        row["status"],
        row["tier"],
        reason,
        row["updated_at"],
    )
    event = snapshot(row, published_change, before, ingested_at)
    await outbox.publish(conn, PARTNER_LIFECYCLE, event, subject=row["partner_id"])
    kind = _NOTIFICATION_KINDS.get(
        change, "partner_status" if row["status"] != before["status"] else None
    )
    if kind is not None:
        note = PartnerNotification(
            notification_id=str(
                uuid.uuid5(uuid.NAMESPACE_URL, f"onboarding/{row['partner_id']}/{row['version']}")
            ),
            partner_id=row["partner_id"],
            recipient=row["partner_id"],
            kind=kind,
            subject=_subject(change, before, row),
            body=reason,
            created_at=row["updated_at"],
            ingested_at=ingested_at,
        )
        await outbox.publish(conn, PARTNER_NOTIFICATIONS, note, subject=row["partner_id"])
    return row


def _subject(change: str, before: Row, row: Row) -> str:
    name = row["company_name"]
    if change in ("tier_changed", "demoted"):
        return f"{name}: tier {before['tier']} -> {row['tier']}"
    if change == "grace_started":
        return f"{name}: requalification grace period until {row['grace_until'].date().isoformat()}"
    if change == "grace_cleared":
        return f"{name}: requalification grace period ended, requirements met"
    return f"{name}: partner status {before['status']} -> {row['status']}"


# ---- applications and review


async def apply_for(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    application: Application,
    declared: dict[str, Any],
    at: datetime,
) -> tuple[Row, bool]:
    """Take an application. Returns (partner row, duplicate?): an application from a domain
    already known returns the existing partner untouched."""
    qualification = qualify(config.qualification, application, config.version)
    partner_id = f"ptn_{uuid.uuid4().hex[:16]}"
    products = authorised_products(config, application.products, frozenset())
    inserted = await conn.fetchrow(
        """
        INSERT INTO partners (partner_id, company_name, domain, partner_type, status, tier,
            application, regions, products_applied, products, qualification,
            qualification_outcome, policy_version, reason, applied_at, updated_at)
        VALUES ($1, $2, $3, $4, 'applied', $5, $6::jsonb, $7, $8, $9, $10::jsonb, $11, $12, '',
            $13, $13)
        ON CONFLICT (domain) DO NOTHING
        RETURNING *
        """,
        partner_id,
        application.company_name,
        application.domain,
        application.partner_type.value,
        config.base_tier,
        json.dumps(declared, default=str),
        sorted(application.regions),
        sorted(application.products),
        sorted(products),
        json.dumps(qualification_json(qualification)),
        qualification.outcome.value,
        config.version,
        at,
    )
    if inserted is None:
        existing = await conn.fetchrow(
            "SELECT * FROM partners WHERE domain = $1", application.domain
        )
        assert existing is not None
        return existing, True
    row = await change_partner(
        conn,
        outbox,
        inserted,
        change="applied",
        reason=f"application received; {qualification.explanation}",
        ingested_at=at,
        at=at,
    )
    if qualification.outcome is Outcome.APPROVE:
        row = await _approve(conn, outbox, config, row, qualification.explanation, at)
    elif qualification.outcome is Outcome.REJECT:
        row = await change_partner(
            conn,
            outbox,
            row,
            change="rejected",
            reason=qualification.explanation,
            ingested_at=at,
            at=at,
            status=PartnerStatus.REJECTED.value,
        )
    return row, False


async def _approve(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    row: Row,
    why: str,
    at: datetime,
) -> Row:
    check_transition(row["partner_id"], PartnerStatus(row["status"]), PartnerStatus.QUALIFIED)
    row = await change_partner(
        conn,
        outbox,
        row,
        change="qualified",
        reason=why,
        ingested_at=at,
        at=at,
        status=PartnerStatus.QUALIFIED.value,
    )
    return await change_partner(
        conn,
        outbox,
        row,
        change="onboarding",
        reason=f"onboarding started: complete {', '.join(config.checklist)}",
        ingested_at=at,
        at=at,
        status=PartnerStatus.ONBOARDING.value,
    )


async def decide_review(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    partner_id: str,
    *,
    approve: bool,
    note: str,
    cultural_fit: Decimal | None,
    at: datetime,
) -> Row:
    row = await lock_partner(conn, partner_id)
    if row["status"] != PartnerStatus.APPLIED.value or row["qualification_outcome"] != "review":
        raise Conflict(
            f"partner {partner_id} is not waiting for review (status {row['status']}, "
            f"qualification {row['qualification_outcome']})"
        )
    qualification = qualify(
        config.qualification, application_from_row(row), config.version, cultural_fit
    )
    verdict = "approved" if approve else "rejected"
    why = f"manual review {verdict}: {note or 'no note'} (score {qualification.total})"
    # Keep the outcome 'review' so the history shows a manager decided; the score is re-explained.
    row = await change_partner(
        conn,
        outbox,
        row,
        change="updated",
        reason=f"manager input recorded; {qualification.explanation}",
        ingested_at=at,
        at=at,
        qualification=json.dumps(qualification_json(qualification)),
        decision_note=note,
    )
    if approve:
        return await _approve(conn, outbox, config, row, why, at)
    return await change_partner(
        conn,
        outbox,
        row,
        change="rejected",
        reason=why,
        ingested_at=at,
        at=at,
        status=PartnerStatus.REJECTED.value,
    )


# ---- checklist, certifications, credits


async def complete_item(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    partner_id: str,
    item: str,
    at: datetime,
) -> Row:
    """Tick a checklist item; the last one activates the partner. Signing the agreement again
    later renews it (and may end a grace period or a requalification suspension)."""
    if item not in config.checklist:
        raise ValueError(
            f"unknown checklist item {item!r}; items are {', '.join(config.checklist)}"
        )
    row = await lock_partner(conn, partner_id)
    status = PartnerStatus(row["status"])
    renewal = item == config.agreement_item and status in IN_PROGRAM
    if status is not PartnerStatus.ONBOARDING and not renewal:
        raise Conflict(
            f"partner {partner_id} is {status.value}: checklist items are completed while "
            f"onboarding (the {config.agreement_item} item can be renewed while in the program)"
        )
    checklist = dict(json.loads(row["checklist"]))
    checklist[item] = at.isoformat()
    fields: dict[str, Any] = {"checklist": json.dumps(checklist)}
    if item == config.agreement_item:
        fields["agreement_valid_until"] = (
            at + timedelta(days=config.agreement_term_days) if config.agreement_term_days else NEVER
        )
    done = [i for i in config.checklist if i in checklist]
    if status is PartnerStatus.ONBOARDING and len(done) == len(config.checklist):
        check_transition(partner_id, status, PartnerStatus.ACTIVE)
        competencies = await competencies_as_of(conn, config, partner_id, at)
        revenue = await revenue_as_of(conn, config, partner_id, at)
        assessment = compute_tier(config, revenue, competencies)
        return await change_partner(
            conn,
            outbox,
            row,
            change="activated",
            reason=f"onboarding checklist complete; tier {assessment.tier}: "
            + "; ".join(assessment.reasons),
            ingested_at=at,
            at=at,
            status=PartnerStatus.ACTIVE.value,
            tier=assessment.tier,
            revenue=revenue,
            competencies=sorted(competencies),
            products=sorted(authorised_products(config, row["products_applied"], competencies)),
            policy_version=config.version,
            **fields,
        )
    row = await change_partner(
        conn,
        outbox,
        row,
        change="updated",
        reason=f"checklist: {item} completed ({len(done)} of {len(config.checklist)})",
        ingested_at=at,
        at=at,
        **fields,
    )
    if renewal:
        await refresh(conn, outbox, config, partner_id, as_of=at, ingested_at=at)
        row = await lock_partner(conn, partner_id)
    return row


async def add_certification(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    partner_id: str,
    certification: Certification,
    person_name: str | None,
    at: datetime,
) -> tuple[str, bool]:
    """Record a certification (the same person, role, track and issue date once) and
    re-derive competencies, authorisations and the tier."""
    row = await lock_partner(conn, partner_id)
    if row["status"] in (PartnerStatus.REJECTED.value, PartnerStatus.EXPELLED.value):
        raise Conflict(f"partner {partner_id} is {row['status']}: no certifications recorded")
    certification_id = await conn.fetchval(
        """
        INSERT INTO certifications (certification_id, partner_id, person, person_name, role,
            track, issued_at, expires_at, recorded_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (partner_id, person, role, track, issued_at) DO NOTHING
        RETURNING certification_id
        """,
        f"cert_{uuid.uuid4().hex[:16]}",
        partner_id,
        certification.person,
        person_name,
        certification.role.value,
        certification.track,
        certification.issued_at,
        certification.expires_at,
        at,
    )
    if certification_id is None:
        existing = await conn.fetchval(
            """SELECT certification_id FROM certifications WHERE partner_id = $1 AND person = $2
               AND role = $3 AND track = $4 AND issued_at = $5""",
            partner_id,
            certification.person,
            certification.role.value,
            certification.track,
            certification.issued_at,
        )
        return str(existing), False
    await refresh(conn, outbox, config, partner_id, as_of=at, ingested_at=at)
    return str(certification_id), True


async def record_credit(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    credit: CreditIssued,
    ingested_at: datetime,
) -> None:
    if credit.currency != config.reporting_currency:
        raise InvalidEvent(
            f"credit {credit.credit_id} is in {credit.currency}; onboarding's tier thresholds "
            f"are in the reporting currency {config.reporting_currency}"
        )
    inserted = await conn.fetchval(
        """INSERT INTO credits (credit_id, partner_id, deal_key, kind, amount, currency,
               close_date, issued_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (credit_id) DO NOTHING RETURNING true""",
        credit.credit_id,
        credit.partner_id,
        credit.deal_key,
        credit.kind.value,
        credit.amount,
        credit.currency,
        credit.close_date,
        credit.issued_at,
    )
    if inserted:
        await refresh_if_known(conn, outbox, config, credit.partner_id, ingested_at)


async def record_reversal(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    reversal: CreditReversed,
    ingested_at: datetime,
) -> None:
    if reversal.currency != config.reporting_currency:
        raise InvalidEvent(
            f"reversal {reversal.reversal_id} is in {reversal.currency}; onboarding's tier "
            f"thresholds are in the reporting currency {config.reporting_currency}"
        )
    inserted = await conn.fetchval(
        """INSERT INTO credit_reversals (reversal_id, credit_id, partner_id, amount, reversed_at)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (reversal_id) DO NOTHING RETURNING true""",
        reversal.reversal_id,
        reversal.credit_id,
        reversal.partner_id,
        reversal.amount,
        reversal.reversed_at,
    )
    if inserted:
        await refresh_if_known(conn, outbox, config, reversal.partner_id, ingested_at)


async def refresh_if_known(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    partner_id: str,
    ingested_at: datetime,
) -> None:
    # Credits for ids onboarding never issued are kept (audit) but move nothing.
    if await conn.fetchval("SELECT true FROM partners WHERE partner_id = $1", partner_id):
        await refresh(conn, outbox, config, partner_id, as_of=now(), ingested_at=ingested_at)


# ---- derived state and requalification


async def revenue_as_of(
    conn: Connection, config: OnboardingConfig, partner_id: str, as_of: datetime
) -> Decimal:
    """Attributed revenue (issued - reversed) of credits closed in the trailing window."""
    until: date = as_of.date()
    value = await conn.fetchval(
        """
        SELECT COALESCE(sum(c.amount - COALESCE(
                   (SELECT sum(r.amount) FROM credit_reversals r WHERE r.credit_id = c.credit_id),
                   0)), 0)
        FROM credits c
        WHERE c.partner_id = $1 AND c.close_date > $2::date - $3::int AND c.close_date <= $2::date
        """,
        partner_id,
        until,
        config.revenue_window_days,
    )
    return Decimal(value)


async def load_certifications(conn: Connection, partner_id: str) -> list[Certification]:
    rows = await conn.fetch(
        "SELECT person, role, track, issued_at, expires_at FROM certifications WHERE partner_id = $1",
        partner_id,
    )
    return [
        Certification(
            r["person"], CertificationRole(r["role"]), r["track"], r["issued_at"], r["expires_at"]
        )
        for r in rows
    ]


async def competencies_as_of(
    conn: Connection, config: OnboardingConfig, partner_id: str, as_of: datetime
) -> frozenset[str]:
    return derive_competencies(config, await load_certifications(conn, partner_id), as_of)


_VERDICT_CHANGES = {
    Action.PROMOTE: "tier_changed",
    Action.START_GRACE: "grace_started",
    Action.CLEAR_GRACE: "grace_cleared",
    Action.DEMOTE: "demoted",
    Action.SUSPEND: "suspended",
    Action.REINSTATE: "reinstated",
    Action.EXPEL: "expelled",
}

_NOT_EVALUATED = frozenset({PartnerStatus.APPLIED, PartnerStatus.REJECTED, PartnerStatus.EXPELLED})


async def refresh(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    partner_id: str,
    *,
    as_of: datetime,
    ingested_at: datetime | None,
) -> list[str]:
    """Re-derive competencies and authorisations, then requalify, as of `as_of`.

    Returns the changes published (empty when the partner's standing did not move)."""
    row = await lock_partner(conn, partner_id)
    status = PartnerStatus(row["status"])
    if status in _NOT_EVALUATED:
        return []
    changes: list[str] = []
    competencies = await competencies_as_of(conn, config, partner_id, as_of)
    products = authorised_products(config, row["products_applied"], competencies)
    if competencies != frozenset(row["competencies"]) or products != frozenset(row["products"]):
        change = "authorisations_changed" if products != frozenset(row["products"]) else "updated"
        row = await change_partner(
            conn,
            outbox,
            row,
            change=change,
            reason=(
                f"competencies now {', '.join(sorted(competencies)) or 'none'} (were "
                f"{', '.join(sorted(row['competencies'])) or 'none'}); authorised products "
                f"{', '.join(sorted(products)) or 'none'}"
            ),
            ingested_at=ingested_at,
            competencies=sorted(competencies),
            products=sorted(products),
        )
        changes.append(change)
    if status not in IN_PROGRAM:
        return changes
    revenue = await revenue_as_of(conn, config, partner_id, as_of)
    verdict = evaluate(config, standing_of(row, revenue, competencies), as_of)
    if verdict.action is Action.NONE:
        if Decimal(row["revenue"]) != revenue:
            await conn.execute(
                "UPDATE partners SET revenue = $2 WHERE partner_id = $1", partner_id, revenue
            )
        return changes
    await apply_verdict(conn, outbox, config, row, verdict, revenue, as_of, ingested_at)
    changes.append(_VERDICT_CHANGES[verdict.action])
    return changes


def standing_of(row: Row, revenue: Decimal, competencies: frozenset[str]) -> Standing:
    return Standing(
        status=PartnerStatus(row["status"]),
        tier=row["tier"],
        revenue=revenue,
        competencies=competencies,
        agreement_valid_until=row["agreement_valid_until"],
        grace_until=row["grace_until"],
        suspended_at=row["suspended_at"],
        suspended_by_requalification=row["suspended_by_requalification"],
    )


async def apply_verdict(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    row: Row,
    verdict: Verdict,
    revenue: Decimal,
    as_of: datetime,
    ingested_at: datetime | None,
) -> Row:
    check = verdict.status != PartnerStatus(row["status"])
    if check:
        check_transition(row["partner_id"], PartnerStatus(row["status"]), verdict.status)
    fields: dict[str, Any] = {
        "status": verdict.status.value,
        "tier": verdict.tier,
        "revenue": revenue,
        "grace_until": verdict.grace_until,
        "policy_version": config.version,
    }
    if verdict.action is Action.SUSPEND:
        fields.update(suspended_at=as_of, suspended_by_requalification=True)
    elif verdict.action is Action.REINSTATE:
        fields.update(suspended_at=None, suspended_by_requalification=False)
    change = _VERDICT_CHANGES[verdict.action]
    if change == "grace_cleared" and verdict.tier != row["tier"]:
        change = "tier_changed"  # cured by growing past the tier: the promotion is the news
    return await change_partner(
        conn,
        outbox,
        row,
        change=change,
        reason=verdict.reason,
        ingested_at=ingested_at,
        **fields,
    )


async def set_status(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    partner_id: str,
    target: PartnerStatus,
    reason: str,
    at: datetime,
) -> Row:
    """A channel manager's decision: suspend, expel or reinstate (any lifecycle-legal step)."""
    row = await lock_partner(conn, partner_id)
    current = PartnerStatus(row["status"])
    check_transition(partner_id, current, target)
    fields: dict[str, Any] = {"status": target.value}
    if target is PartnerStatus.SUSPENDED:
        change = "suspended"
        fields.update(suspended_at=at, suspended_by_requalification=False, grace_until=None)
    elif target is PartnerStatus.EXPELLED:
        change = "expelled"
        fields.update(grace_until=None)
    elif target is PartnerStatus.ACTIVE and current is PartnerStatus.ONBOARDING:
        missing = [i for i in config.checklist if i not in json.loads(row["checklist"])]
        raise Conflict(
            f"partner {partner_id} becomes active when its checklist is complete; missing: "
            + ", ".join(missing)
        )
    elif target is PartnerStatus.ACTIVE:
        change = "reinstated" if current is PartnerStatus.SUSPENDED else "updated"
        fields.update(suspended_at=None, suspended_by_requalification=False, grace_until=None)
    elif target is PartnerStatus.ONBOARDING:
        # Back from expulsion: the checklist (and the agreement) start over.
        change = "reinstated"
        fields.update(
            checklist="{}", agreement_valid_until=None, suspended_at=None, grace_until=None
        )
    else:
        raise Conflict(
            f"{target.value} is decided by qualification (POST /applications/{{id}}/decision), "
            "not set by hand"
        )
    return await change_partner(
        conn,
        outbox,
        row,
        change=change,
        reason=f"channel manager: {reason}",
        ingested_at=at,
        at=at,
        **fields,
    )


async def run_requalification(
    pool: Pool,
    outbox: Outbox,
    config: OnboardingConfig,
    as_of: datetime,
    partner_ids: list[str] | None = None,
) -> dict[str, list[str]]:
    """Requalify every partner in the program (or the given ones), one transaction each, so one
    partner's failure neither blocks nor undoes the others. Returns the changes per partner."""
    ids = await pool.fetch(
        """SELECT partner_id FROM partners
           WHERE status NOT IN ('applied', 'rejected', 'expelled')
             AND ($1::text[] IS NULL OR partner_id = ANY($1))
           ORDER BY partner_id""",
        partner_ids,
    )
    ran_at = now()
    results: dict[str, list[str]] = {}
    for record in ids:
        partner_id = record["partner_id"]
        try:
            async with pool.acquire() as conn, conn.transaction():
                changes = await refresh(
                    conn, outbox, config, partner_id, as_of=as_of, ingested_at=ran_at
                )
        except Exception:
            log.exception("requalification failed", extra={"partner_id": partner_id})
            changes = ["error"]
        if changes:
            results[partner_id] = changes
    return results


def certification_out(row: Row) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dict(row).items()}


def partner_out(row: Row, *, full: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "partner_id": row["partner_id"],
        "company_name": row["company_name"],
        "domain": row["domain"],
        "partner_type": row["partner_type"],
        "status": row["status"],
        "tier": row["tier"],
        "version": row["version"],
        "regions": sorted(row["regions"]),
        "products": sorted(row["products"]),
        "competencies": sorted(row["competencies"]),
        "checklist": json.loads(row["checklist"]),
        "agreement_valid_until": _iso(row["agreement_valid_until"]),
        "attributed_revenue": str(row["revenue"]),
        "grace_until": _iso(row["grace_until"]),
        "reason": row["reason"],
        "policy_version": row["policy_version"],
        "applied_at": _iso(row["applied_at"]),
        "updated_at": _iso(row["updated_at"]),
    }
    if full:
        out["application"] = json.loads(row["application"])
        out["qualification"] = json.loads(row["qualification"])
        out["decision_note"] = row["decision_note"]
        out["suspended_at"] = _iso(row["suspended_at"])
    return out


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
