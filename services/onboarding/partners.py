"""Service layer of onboarding: applications, checklist, certifications, credits, requalification.

Each function loads what the rules need (locking the partner row, so concurrent changes to one
partner serialise in Postgres), calls the pure domain, then writes the new state, an audit row
and the events announcing it (outbox) in the caller's transaction.

Credits and reversals come in runs (`record_credits`, `record_reversals`): a `Reassessment`
locks the run's partners together, loads what they need once, re-evaluates a partner after
each of its events in memory, and writes the outcome in a few statements. `refresh` is the
same `Reassessment` for one partner.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
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
from shared.events import EventPayload, InvalidEvent
from shared.events.attribution import CreditIssued, CreditReversed
from shared.events.notifications import PartnerNotification
from shared.events.partners import PartnerStateChanged, PartnerStatus, PartnerType
from shared.outbox import Outbox, OutgoingEvent
from shared.topics import PARTNER_LIFECYCLE, PARTNER_NOTIFICATIONS, Topic

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


# A partner row as read from the database, or as it stands in memory during a run.
PartnerRow = Row | dict[str, Any]


@dataclass(frozen=True)
class Announcement:
    """An event to record in the outbox, and the index of the input (in the list a batch
    function was given) that caused it."""

    topic: Topic
    payload: EventPayload
    subject: str
    cause: int = 0

    def outgoing(self) -> OutgoingEvent:
        return OutgoingEvent(self.topic, self.payload, self.subject)


def snapshot(
    row: PartnerRow,
    change: str,
    before: PartnerRow | None,
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


def _check_columns(fields: dict[str, Any]) -> None:
    unknown = set(fields) - _COLUMNS
    if unknown:
        raise ValueError(f"not partner columns: {sorted(unknown)}")


def _announce(
    before: PartnerRow,
    row: PartnerRow,
    change: str,
    ingested_at: datetime | None,
    cause: int = 0,
) -> tuple[str, list[Announcement]]:
    """What a new version of a partner publishes: the change as the contract names it
    (`grace_cleared` is published as `updated`, the reason saying so), the snapshot and, for
    changes a partner is told about, a notification."""
    published_change = "updated" if change == "grace_cleared" else change
    partner_id = row["partner_id"]
    events = [
        Announcement(
            PARTNER_LIFECYCLE,
            snapshot(row, published_change, before, ingested_at),
            partner_id,
            cause,
        )
    ]
    kind = _NOTIFICATION_KINDS.get(
        change, "partner_status" if row["status"] != before["status"] else None
    )
    if kind is not None:
        note = PartnerNotification(
            notification_id=str(
                uuid.uuid5(uuid.NAMESPACE_URL, f"onboarding/{partner_id}/{row['version']}")
            ),
            partner_id=partner_id,
            recipient=partner_id,
            kind=kind,
            subject=_subject(change, before, row),
            body=row["reason"],
            created_at=row["updated_at"],
            ingested_at=ingested_at,
        )
        events.append(Announcement(PARTNER_NOTIFICATIONS, note, partner_id, cause))
    return published_change, events


def _history_row(row: PartnerRow, published_change: str) -> tuple[Any, ...]:
    return (
        row["partner_id"],
        row["version"],
        published_change,
        row["status"],
        row["tier"],
        row["reason"],
        row["updated_at"],
    )


async def _insert_history(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Audit rows (partner, version, change, status, tier, reason, changed_at), one statement."""
    if not rows:
        return
    columns = list(zip(*rows, strict=True))
    await conn.execute(
        """INSERT INTO partner_history (partner_id, version, change, status, tier, reason, changed_at)
           SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[],
                                $6::text[], $7::timestamptz[])""",
        *[list(column) for column in columns],
    )


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
    _check_columns(fields)
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
    published_change, events = _announce(before, row, change, ingested_at)
    await _insert_history(conn, [_history_row(row, published_change)])
    await outbox.publish_many(conn, [event.outgoing() for event in events])
    return row


def _subject(change: str, before: PartnerRow, row: PartnerRow) -> str:
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


async def record_credits(
    conn: Connection,
    config: OnboardingConfig,
    credits: Sequence[tuple[CreditIssued, datetime | None]],
) -> list[Announcement]:
    """Record a run of credits (each with its ingestion time) and re-evaluate their partners
    after each one, in order, as if they came one at a time. A credit id already recorded
    (or earlier in the run) is kept once and moves nothing; credits for partners onboarding
    does not know are kept (audit) but move nothing. Returns the events to publish, each
    with the index of the credit that caused it."""
    for credit, _ in credits:
        if credit.currency != config.reporting_currency:
            raise InvalidEvent(
                f"credit {credit.credit_id} is in {credit.currency}; onboarding's tier "
                f"thresholds are in the reporting currency {config.reporting_currency}"
            )
    first = _first_of(credit.credit_id for credit, _ in credits)
    distinct = sorted((credits[i][0] for i in first.values()), key=lambda c: c.credit_id)
    # Partners first: another run recording a credit or reversal of theirs waits for these
    # locks before it commits, so what is loaded now and what the inserts see is one state.
    run = await Reassessment.start(conn, config, {c.partner_id for c in distinct}, now())
    inserted = await conn.fetch(
        """
        INSERT INTO credits (credit_id, partner_id, deal_key, kind, amount, currency,
            close_date, issued_at)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[],
                             $6::text[], $7::date[], $8::timestamptz[])
        ON CONFLICT (credit_id) DO NOTHING
        RETURNING credit_id, amount,
            COALESCE((SELECT sum(r.amount) FROM credit_reversals r
                      WHERE r.credit_id = credits.credit_id), 0) AS reversed
        """,
        [c.credit_id for c in distinct],
        [c.partner_id for c in distinct],
        [c.deal_key for c in distinct],
        [c.kind.value for c in distinct],
        [c.amount for c in distinct],
        [c.currency for c in distinct],
        [c.close_date for c in distinct],
        [c.issued_at for c in distinct],
    )
    # As stored (numeric(20, 4)), net of reversals recorded before the credit.
    nets = {r["credit_id"]: r["amount"] - r["reversed"] for r in inserted}
    for i in sorted(first[credit_id] for credit_id in nets):
        credit, ingested_at = credits[i]
        run.move_revenue(credit.partner_id, credit.close_date, nets[credit.credit_id])
        run.reassess(credit.partner_id, ingested_at=ingested_at, cause=i)
    return await run.write(conn)


async def record_reversals(
    conn: Connection,
    config: OnboardingConfig,
    reversals: Sequence[tuple[CreditReversed, datetime | None]],
) -> list[Announcement]:
    """Record a run of reversals and re-evaluate their partners after each one, in order (see
    `record_credits`). A reversal cancels its credit's amount from the credit's partner's
    revenue; one whose credit onboarding has not seen yet is kept and counts when it comes."""
    for reversal, _ in reversals:
        if reversal.currency != config.reporting_currency:
            raise InvalidEvent(
                f"reversal {reversal.reversal_id} is in {reversal.currency}; onboarding's tier "
                f"thresholds are in the reporting currency {config.reporting_currency}"
            )
    first = _first_of(reversal.reversal_id for reversal, _ in reversals)
    distinct = sorted((reversals[i][0] for i in first.values()), key=lambda r: r.reversal_id)
    run = await Reassessment.start(conn, config, {r.partner_id for r in distinct}, now())
    inserted = await conn.fetch(
        """
        WITH inserted AS (
            INSERT INTO credit_reversals (reversal_id, credit_id, partner_id, amount, reversed_at)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::numeric[],
                                 $5::timestamptz[])
            ON CONFLICT (reversal_id) DO NOTHING
            RETURNING reversal_id, credit_id, amount
        )
        SELECT i.reversal_id, i.amount, c.partner_id AS credit_partner_id, c.close_date
        FROM inserted i LEFT JOIN credits c ON c.credit_id = i.credit_id
        """,
        [r.reversal_id for r in distinct],
        [r.credit_id for r in distinct],
        [r.partner_id for r in distinct],
        [r.amount for r in distinct],
        [r.reversed_at for r in distinct],
    )
    recorded = {r["reversal_id"]: r for r in inserted}
    for i in sorted(first[reversal_id] for reversal_id in recorded):
        reversal, ingested_at = reversals[i]
        row = recorded[reversal.reversal_id]
        if row["credit_partner_id"] is not None:  # its credit is known: its revenue drops
            run.move_revenue(row["credit_partner_id"], row["close_date"], -row["amount"])
        run.reassess(reversal.partner_id, ingested_at=ingested_at, cause=i)
    return await run.write(conn)


def _first_of(keys: Iterable[str]) -> dict[str, int]:
    """Key -> index of its first occurrence."""
    first: dict[str, int] = {}
    for index, key in enumerate(keys):
        first.setdefault(key, index)
    return first


# ---- derived state and requalification


async def revenue_days(
    conn: Connection,
    config: OnboardingConfig,
    partner_ids: Collection[str],
    as_of: datetime,
) -> dict[str, dict[date, Decimal]]:
    """Attributed revenue (issued - reversed) per partner and close date, over the trailing
    window ending `as_of`."""
    # revenue_days is kept by triggers on credits and credit_reversals (migration 0003).
    rows = await conn.fetch(
        """
        SELECT partner_id, close_date, net FROM revenue_days
        WHERE partner_id = ANY($1::text[])
          AND close_date > $2::date - $3::int AND close_date <= $2::date
        """,
        list(partner_ids),
        as_of.date(),
        config.revenue_window_days,
    )
    days: dict[str, dict[date, Decimal]] = {partner_id: {} for partner_id in partner_ids}
    for row in rows:
        days[row["partner_id"]][row["close_date"]] = row["net"]
    return days


def revenue_in_window(
    config: OnboardingConfig, days: dict[date, Decimal], as_of: datetime
) -> Decimal:
    """The sum of the days in the trailing window ending `as_of` (0 when no credit is)."""
    until = as_of.date()
    since = until - timedelta(days=config.revenue_window_days)
    return sum((net for day, net in days.items() if since < day <= until), Decimal(0))


async def revenue_as_of(
    conn: Connection, config: OnboardingConfig, partner_id: str, as_of: datetime
) -> Decimal:
    """Attributed revenue (issued - reversed) of credits closed in the trailing window."""
    days = await revenue_days(conn, config, [partner_id], as_of)
    return revenue_in_window(config, days[partner_id], as_of)


async def certifications_of(
    conn: Connection, partner_ids: Collection[str]
) -> dict[str, list[Certification]]:
    rows = await conn.fetch(
        """SELECT partner_id, person, role, track, issued_at, expires_at FROM certifications
           WHERE partner_id = ANY($1::text[])""",
        list(partner_ids),
    )
    held: dict[str, list[Certification]] = {partner_id: [] for partner_id in partner_ids}
    for r in rows:
        held[r["partner_id"]].append(
            Certification(
                r["person"],
                CertificationRole(r["role"]),
                r["track"],
                r["issued_at"],
                r["expires_at"],
            )
        )
    return held


async def competencies_as_of(
    conn: Connection, config: OnboardingConfig, partner_id: str, as_of: datetime
) -> frozenset[str]:
    certifications = await certifications_of(conn, [partner_id])
    return derive_competencies(config, certifications[partner_id], as_of)


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

# What a reassessment may change (besides version, reason and updated_at).
_REASSESSED_COLUMNS = (
    "status",
    "tier",
    "revenue",
    "grace_until",
    "suspended_at",
    "suspended_by_requalification",
    "policy_version",
    "competencies",
    "products",
)


class Reassessment:
    """Partners locked together (in id order) and re-evaluated in memory as of one moment, any
    number of times, each time with what earlier steps left (revenue moved, versions written);
    `write` then stores the final rows and the audit trail in a few statements and returns the
    events.

    Loaded once: the partner rows, their certifications (partners that are evaluated) and
    their revenue per close date over the window (partners in the program)."""

    def __init__(
        self,
        config: OnboardingConfig,
        as_of: datetime,
        rows: dict[str, dict[str, Any]],
        certifications: dict[str, list[Certification]],
        revenue: dict[str, dict[date, Decimal]],
    ) -> None:
        self.config = config
        self.as_of = as_of
        self.rows = rows
        self.certifications = certifications
        self.revenue = revenue
        self.changed: set[str] = set()
        self.history: list[tuple[Any, ...]] = []
        self.announcements: list[Announcement] = []

    @classmethod
    async def start(
        cls,
        conn: Connection,
        config: OnboardingConfig,
        partner_ids: Collection[str],
        as_of: datetime,
    ) -> Reassessment:
        """Lock the partners (those that exist) and load what evaluating them needs, as of
        `as_of`. Credits and reversals recorded afterwards are the caller's to add, in order
        (`move_revenue`)."""
        locked = await conn.fetch(
            """SELECT * FROM partners WHERE partner_id = ANY($1::text[])
               ORDER BY partner_id FOR UPDATE""",
            sorted(partner_ids),
        )
        rows = {r["partner_id"]: dict(r) for r in locked}
        statuses = {p: PartnerStatus(r["status"]) for p, r in rows.items()}
        evaluated = [p for p, status in statuses.items() if status not in _NOT_EVALUATED]
        in_program = [p for p, status in statuses.items() if status in IN_PROGRAM]
        certifications = await certifications_of(conn, evaluated) if evaluated else {}
        revenue = await revenue_days(conn, config, in_program, as_of) if in_program else {}
        return cls(config, as_of, rows, certifications, revenue)

    def knows(self, partner_id: str) -> bool:
        return partner_id in self.rows

    def move_revenue(self, partner_id: str, close_date: date, net: Decimal) -> None:
        """A credit (net of its reversals) or a reversal (negative) of `partner_id` recorded."""
        days = self.revenue.get(partner_id)
        if days is not None:
            days[close_date] = days.get(close_date, Decimal(0)) + net

    def reassess(
        self,
        partner_id: str,
        *,
        ingested_at: datetime | None,
        cause: int = 0,
    ) -> list[str]:
        """Re-derive competencies and authorisations, then requalify, as of `self.as_of`.

        Returns the changes made (empty when the partner's standing did not move, or when
        onboarding does not know the partner)."""
        row = self.rows.get(partner_id)
        if row is None:
            return []
        as_of = self.as_of
        status = PartnerStatus(row["status"])
        if status in _NOT_EVALUATED:
            return []
        changes: list[str] = []
        competencies = derive_competencies(self.config, self.certifications[partner_id], as_of)
        products = authorised_products(self.config, row["products_applied"], competencies)
        if competencies != frozenset(row["competencies"]) or products != frozenset(row["products"]):
            change = (
                "authorisations_changed" if products != frozenset(row["products"]) else "updated"
            )
            row = self._change(
                row,
                change=change,
                reason=(
                    f"competencies now {', '.join(sorted(competencies)) or 'none'} (were "
                    f"{', '.join(sorted(row['competencies'])) or 'none'}); authorised products "
                    f"{', '.join(sorted(products)) or 'none'}"
                ),
                ingested_at=ingested_at,
                cause=cause,
                competencies=sorted(competencies),
                products=sorted(products),
            )
            changes.append(change)
        if status not in IN_PROGRAM:
            return changes
        revenue = revenue_in_window(self.config, self.revenue[partner_id], as_of)
        verdict = evaluate(self.config, standing_of(row, revenue, competencies), as_of)
        if verdict.action is Action.NONE:
            if Decimal(row["revenue"]) != revenue:
                row["revenue"] = revenue
                self.changed.add(partner_id)
            return changes
        change, fields = verdict_change(self.config, row, verdict, revenue, as_of)
        self._change(
            row,
            change=change,
            reason=verdict.reason,
            ingested_at=ingested_at,
            cause=cause,
            **fields,
        )
        changes.append(_VERDICT_CHANGES[verdict.action])
        return changes

    def _change(
        self,
        before: dict[str, Any],
        *,
        change: str,
        reason: str,
        ingested_at: datetime | None,
        cause: int,
        **fields: Any,
    ) -> dict[str, Any]:
        """A new version of the partner, in memory (see `change_partner`)."""
        unwritten = set(fields) - set(_REASSESSED_COLUMNS)
        if unwritten:
            raise ValueError(f"not columns a reassessment writes: {sorted(unwritten)}")
        row = {
            **before,
            **fields,
            "version": before["version"] + 1,
            "reason": reason,
            "updated_at": now(),
        }
        published_change, events = _announce(before, row, change, ingested_at, cause)
        self.rows[row["partner_id"]] = row
        self.changed.add(row["partner_id"])
        self.history.append(_history_row(row, published_change))
        self.announcements.extend(events)
        return row

    async def write(self, conn: Connection) -> list[Announcement]:
        """Store the partners that changed and the audit rows (one statement each); returns
        the events to publish, in the order they happened."""
        rows = [self.rows[partner_id] for partner_id in sorted(self.changed)]
        if rows:
            await conn.execute(
                """
                UPDATE partners p SET version = e.version, reason = e.reason,
                    updated_at = e.updated_at, status = e.status, tier = e.tier,
                    revenue = e.revenue, grace_until = e.grace_until,
                    suspended_at = e.suspended_at,
                    suspended_by_requalification = e.suspended_by_requalification,
                    policy_version = e.policy_version,
                    competencies = ARRAY(
                        SELECT x FROM jsonb_array_elements_text(e.competencies::jsonb)
                            WITH ORDINALITY AS a(x, n) ORDER BY n),
                    products = ARRAY(
                        SELECT x FROM jsonb_array_elements_text(e.products::jsonb)
                            WITH ORDINALITY AS a(x, n) ORDER BY n)
                FROM unnest($1::text[], $2::int[], $3::text[], $4::timestamptz[], $5::text[],
                            $6::text[], $7::numeric[], $8::timestamptz[], $9::timestamptz[],
                            $10::bool[], $11::text[], $12::text[], $13::text[])
                    AS e(partner_id, version, reason, updated_at, status, tier, revenue,
                         grace_until, suspended_at, suspended_by_requalification,
                         policy_version, competencies, products)
                WHERE p.partner_id = e.partner_id
                """,
                *[
                    [row[column] for row in rows]
                    for column in (
                        "partner_id",
                        "version",
                        "reason",
                        "updated_at",
                        "status",
                        "tier",
                        "revenue",
                        "grace_until",
                        "suspended_at",
                        "suspended_by_requalification",
                        "policy_version",
                    )
                ],
                [json.dumps(list(row["competencies"])) for row in rows],
                [json.dumps(list(row["products"])) for row in rows],
            )
        await _insert_history(conn, self.history)
        return self.announcements


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
    run = await Reassessment.start(conn, config, [partner_id], as_of)
    if not run.knows(partner_id):
        raise NotFound(f"partner {partner_id} not found")
    changes = run.reassess(partner_id, ingested_at=ingested_at)
    await outbox.publish_many(conn, [event.outgoing() for event in await run.write(conn)])
    return changes


def standing_of(row: PartnerRow, revenue: Decimal, competencies: frozenset[str]) -> Standing:
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


def verdict_change(
    config: OnboardingConfig,
    row: PartnerRow,
    verdict: Verdict,
    revenue: Decimal,
    as_of: datetime,
) -> tuple[str, dict[str, Any]]:
    """The change a requalification verdict makes to a partner: its name and the columns."""
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
    return change, fields


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
