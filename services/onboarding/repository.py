"""Write-side SQL of onboarding: partner rows locked, inserted and updated, the audit trail,
certifications and credits recorded, and what evaluating partners loads (their
certifications, their revenue per close date).

A partner row travels as a mapping of its columns: `Row` as read, a dict while a run changes
it in memory. The JSON columns (checklist, qualification, application) are encoded here.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.qualification import Application, Qualification
from services.onboarding.domain.tiers import Certification, CertificationRole
from shared.db import Connection, Pool, columns
from shared.errors import NotFound
from shared.events.attribution import CreditIssued, CreditReversed
from shared.events.partners import PartnerStatus, PartnerType

Row = asyncpg.Record
# Whom the audit trail names for changes no caller made (consumed events, scheduled jobs).
SERVICE = "onboarding"
# A partner row as read from the database, or as it stands in memory during a run.
PartnerRow = Row | dict[str, Any]


def new_id(kind: str) -> str:
    """A new random id of onboarding's records: the kind's prefix (`ptn`, `cert`, ...), then
    16 hex digits."""
    return f"{kind}_{uuid.uuid4().hex[:16]}"


# Columns a new version of a partner may set (besides version, reason and updated_at).
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
        "checklist_evidence",
        "agreement_valid_until",
        "revenue",
        "grace_until",
        "suspended_at",
        "suspended_by_requalification",
        "policy_version",
        "domain_verified_at",
        "domain_verified_by",
    }
)
_JSON_COLUMNS = frozenset({"checklist", "checklist_evidence", "qualification"})


def qualification_json(q: Qualification) -> dict[str, Any]:
    """A qualification as stored (and answered): scores as decimal strings."""
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


def application_of(row: PartnerRow) -> Application:
    """The application a partner row was created from."""
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


def checklist_of(row: PartnerRow) -> dict[str, str]:
    """Checklist item -> when it was completed (ISO)."""
    completed: dict[str, str] = json.loads(row["checklist"])
    return completed


def evidence_of(row: PartnerRow) -> dict[str, dict[str, str]]:
    """Evidence item -> its evidence (reference, who submitted and who confirmed it, when)."""
    evidence: dict[str, dict[str, str]] = json.loads(row["checklist_evidence"])
    return evidence


async def lock_partner(conn: Connection, partner_id: str) -> Row:
    row = await conn.fetchrow("SELECT * FROM partners WHERE partner_id = $1 FOR UPDATE", partner_id)
    if row is None:
        raise NotFound(f"partner {partner_id} not found")
    return row


async def lock_partners(conn: Connection, partner_ids: Collection[str]) -> list[Row]:
    """The partners that exist among `partner_ids`, locked together in id order (so runs
    locking overlapping sets cannot deadlock)."""
    return await conn.fetch(
        """SELECT * FROM partners WHERE partner_id = ANY($1::text[])
           ORDER BY partner_id FOR UPDATE""",
        sorted(partner_ids),
    )


async def insert_application(
    conn: Connection,
    config: OnboardingConfig,
    application: Application,
    declared: Mapping[str, Any],
    qualification: Qualification,
    products: frozenset[str],
    at: datetime,
) -> Row | None:
    """A new partner (version 0, status applied) for the application, its domain claimed with
    a fresh verification token; None when another partner already holds (has verified) the
    domain. A claim blocks no one: other applications for the domain are taken too."""
    return await conn.fetchrow(
        """
        INSERT INTO partners (partner_id, company_name, domain, partner_type, status, tier,
            application, regions, products_applied, products, qualification,
            qualification_outcome, policy_version, reason, applied_at, updated_at, domain_token)
        SELECT $1, $2, $3, $4, 'applied', $5, $6::jsonb, $7, $8, $9, $10::jsonb, $11, $12, '',
            $13, $13, $14
        WHERE NOT EXISTS (
            SELECT 1 FROM partners WHERE domain = $3 AND domain_verified_at IS NOT NULL)
        RETURNING *
        """,
        new_id("ptn"),
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
        secrets.token_urlsafe(24),
    )


async def domain_held_by_another(conn: Connection, domain: str | None, partner_id: str) -> bool:
    """Whether another partner holds (has verified) `domain`."""
    if domain is None:
        return False
    held: bool = await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM partners
                          WHERE domain = $1 AND domain_verified_at IS NOT NULL
                            AND partner_id <> $2)""",
        domain,
        partner_id,
    )
    return held


async def update_partner(
    conn: Connection, partner_id: str, *, reason: str, at: datetime, fields: Mapping[str, Any]
) -> Row:
    """The partner's next version with `fields` set; returns the new row."""
    unknown = set(fields) - _COLUMNS
    if unknown:
        raise ValueError(f"not partner columns: {sorted(unknown)}")
    names = list(fields)
    assignments = "".join(f", {name} = ${i + 4}" for i, name in enumerate(names))
    values = [json.dumps(fields[n]) if n in _JSON_COLUMNS else fields[n] for n in names]
    row = await conn.fetchrow(
        f"""UPDATE partners SET version = version + 1, reason = $2, updated_at = $3{assignments}
            WHERE partner_id = $1 RETURNING *""",
        partner_id,
        reason,
        at,
        *values,
    )
    assert row is not None
    return row


# What a reassessment may change (besides version, reason and updated_at): the scalar
# columns, then the text arrays (sent as JSON so that unnest keeps one array per row).
_REASSESSED_SCALARS = (
    "status",
    "tier",
    "revenue",
    "grace_until",
    "suspended_at",
    "suspended_by_requalification",
    "policy_version",
)
_REASSESSED_ARRAYS = ("competencies", "products")
REASSESSED_COLUMNS = _REASSESSED_SCALARS + _REASSESSED_ARRAYS


async def write_reassessed(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Store partners a reassessment changed, in one statement."""
    if not rows:
        return
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
            for column in ("partner_id", "version", "reason", "updated_at", *_REASSESSED_SCALARS)
        ],
        *[[json.dumps(list(row[column])) for row in rows] for column in _REASSESSED_ARRAYS],
    )


def history_row(row: PartnerRow, published_change: str, acted_by: str) -> tuple[Any, ...]:
    """An audit row: the version `acted_by` (the acting principal, or the service) made."""
    return (
        row["partner_id"],
        row["version"],
        published_change,
        row["status"],
        row["tier"],
        row["reason"],
        row["updated_at"],
        acted_by,
    )


async def insert_history(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Audit rows (partner, version, change, status, tier, reason, changed_at, acted_by), one
    statement."""
    if not rows:
        return
    await conn.execute(
        """INSERT INTO partner_history (partner_id, version, change, status, tier, reason,
               changed_at, acted_by)
           SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[],
                                $6::text[], $7::timestamptz[], $8::text[])""",
        *columns(rows),
    )


async def insert_certification(
    conn: Connection,
    partner_id: str,
    certification: Certification,
    person_name: str | None,
    at: datetime,
    *,
    recorded_by: str,
    person_id: str | None = None,
    statement_id: str | None = None,
) -> tuple[str, bool]:
    """Record a certification (`recorded_by`: the acting principal) once per person, role,
    track and issue date. Returns its id and whether it is new. It belongs to `person_id`'s
    membership, or (recorded by hand) to the person's membership at the partner, the current
    one or else the latest, so a person who left counts only until they left (found in review:
    recorded by hand after they left, it belonged to no membership and counted in full)."""
    certification_id = await conn.fetchval(
        """
        INSERT INTO certifications (certification_id, partner_id, person, person_name, role,
            track, issued_at, expires_at, recorded_at, recorded_by, person_id, statement_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
            COALESCE($11, (SELECT person_id FROM people WHERE partner_id = $2 AND email = $3
                           ORDER BY left_at IS NULL DESC, joined_at DESC LIMIT 1)), $12)
        ON CONFLICT (partner_id, person, role, track, issued_at) DO UPDATE
            SET voided_at = NULL, statement_id = EXCLUDED.statement_id,
                recorded_at = EXCLUDED.recorded_at, recorded_by = EXCLUDED.recorded_by
            WHERE certifications.voided_at IS NOT NULL  -- a voided one is given again
        RETURNING certification_id
        """,
        new_id("cert"),
        partner_id,
        certification.person,
        person_name,
        certification.role.value,
        certification.track,
        certification.issued_at,
        certification.expires_at,
        at,
        recorded_by,
        person_id,
        statement_id,
    )
    if certification_id is not None:
        return str(certification_id), True
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


async def certifications_of(
    conn: Connection, partner_ids: Collection[str]
) -> tuple[dict[str, list[Certification]], datetime | None]:
    """The partners' certifications, and the latest moment one of their holders left (None:
    none has). A person who left no longer counts: their certifications end when they left."""
    rows = await conn.fetch(
        """SELECT c.partner_id, c.person, c.role, c.track, c.issued_at,
                  LEAST(c.expires_at, p.left_at) AS expires_at, p.left_at
           FROM certifications c LEFT JOIN people p ON p.person_id = c.person_id
           WHERE c.partner_id = ANY($1::text[]) AND c.voided_at IS NULL""",
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
    departures = [r["left_at"] for r in rows if r["left_at"] is not None]
    return held, max(departures, default=None)


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


async def insert_credits(conn: Connection, credits: Sequence[CreditIssued]) -> dict[str, Decimal]:
    """Record credits not recorded before, one statement. Returns credit id -> amount as
    stored (numeric(20, 4)) net of the reversals recorded before it, for those new."""
    if not credits:
        return {}
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
        *columns(
            [
                (
                    c.credit_id,
                    c.partner_id,
                    c.deal_key,
                    c.kind.value,
                    c.amount,
                    c.currency,
                    c.close_date,
                    c.issued_at,
                )
                for c in credits
            ]
        ),
    )
    return {r["credit_id"]: r["amount"] - r["reversed"] for r in inserted}


async def insert_reversals(conn: Connection, reversals: Sequence[CreditReversed]) -> dict[str, Row]:
    """Record reversals not recorded before, one statement. Returns reversal id -> (amount,
    and its credit's partner and close date when the credit is known) for those new."""
    if not reversals:
        return {}
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
        *columns(
            [(r.reversal_id, r.credit_id, r.partner_id, r.amount, r.reversed_at) for r in reversals]
        ),
    )
    return {r["reversal_id"]: r for r in inserted}


async def partners_to_requalify(
    pool: Pool, not_evaluated: Collection[PartnerStatus], partner_ids: list[str] | None
) -> list[str]:
    """Partners requalification evaluates (all of them, or those of `partner_ids`), by id."""
    rows = await pool.fetch(
        """SELECT partner_id FROM partners
           WHERE status <> ALL($1::text[])
             AND ($2::text[] IS NULL OR partner_id = ANY($2))
           ORDER BY partner_id""",
        sorted(status.value for status in not_evaluated),
        partner_ids,
    )
    return [row["partner_id"] for row in rows]


async def insert_token_grant(
    pool: Pool,
    *,
    token_id: str,
    partner_id: str,
    subject: str,
    role: str,
    issued_by: str,
    issued_at: datetime,
    expires_at: datetime,
) -> None:
    """Record a platform token issued to a partner's person or app, and who had it issued."""
    await pool.execute(
        """INSERT INTO token_grants (token_id, partner_id, subject, role, issued_by, issued_at,
               expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        token_id,
        partner_id,
        subject,
        role,
        issued_by,
        issued_at,
        expires_at,
    )
