"""Read side of onboarding: partners, the review queue, a partner's history and certifications,
shaped into the HTTP responses (`schemas.py`)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from services.onboarding import repository
from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.enablement import scores_as_numbers
from services.onboarding.domain.next_tier import next_tier as domain_next_tier
from services.onboarding.domain.verification import (
    WELL_KNOWN_PATH,
    domain_state,
    expected_record,
)
from services.onboarding.enablement_schemas import (
    PersonOut,
)
from services.onboarding.repository import Row
from services.onboarding.schemas import (
    ApplicationOut,
    CertificationOut,
    CertificationRecordedOut,
    CompetencyGapOut,
    CompetencyLapseOut,
    DomainVerificationOut,
    NextTierOut,
    PartnerOut,
    RevenueLeavingOut,
    VersionOut,
)
from shared.db import Pool
from shared.errors import NotFound, Unprocessable
from shared.events.partners import PartnerStatus


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _isos(row: Row) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dict(row).items()}


def _evidence(row: Row, *, full: bool) -> dict[str, dict[str, str]]:
    """The checklist's evidence; a partner is not told who on the vendor's side confirmed it."""
    evidence: dict[str, dict[str, str]] = json.loads(row["checklist_evidence"])
    if full:
        return evidence
    return {
        item: {k: v for k, v in record.items() if k != "confirmed_by"}
        for item, record in evidence.items()
    }


def domain_verification_out(row: Row) -> DomainVerificationOut:
    return DomainVerificationOut(
        domain=row["domain"],
        state=domain_state(row["domain_verified_at"]),
        record=expected_record(row["domain_token"]),
        well_known_path=WELL_KNOWN_PATH,
    )


def partner_out(row: Row, *, full: bool) -> PartnerOut:
    """A partner as a caller sees it: channel managers (`full`) also see the application, its
    scoring, the manager's note, the suspension time and who confirmed evidence."""
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
        "domain_verification": domain_verification_out(row),
        "checklist": json.loads(row["checklist"]),
        "checklist_evidence": _evidence(row, full=full),
        "agreement_valid_until": _iso(row["agreement_valid_until"]),
        "attributed_revenue": str(row["revenue"]),
        "grace_until": _iso(row["grace_until"]),
        "reason": row["reason"],
        "policy_version": row["policy_version"],
        "applied_at": _iso(row["applied_at"]),
        "updated_at": _iso(row["updated_at"]),
        "account_manager": row["account_manager"],
    }
    if full:
        out["application"] = json.loads(row["application"])
        out["qualification"] = json.loads(row["qualification"])
        out["decision_note"] = row["decision_note"]
        out["suspended_at"] = _iso(row["suspended_at"])
    return PartnerOut.model_validate(out)


def application_out(row: Row) -> ApplicationOut:
    return ApplicationOut(
        partner_id=row["partner_id"],
        status=row["status"],
        duplicate=False,
        qualification=json.loads(row["qualification"]),
        domain_verification=domain_verification_out(row),
    )


async def partner_row(pool: Pool, partner_id: str) -> Row:
    row = await pool.fetchrow("SELECT * FROM partners WHERE partner_id = $1", partner_id)
    if row is None:
        raise NotFound(f"partner {partner_id} not found")
    return row


# The waiting queues soonest due first; the scoring's rejections latest first. A page starts
# after the application a caller names (its place in the order, read by its id).
_AFTER = "(SELECT applied_at, partner_id FROM partners WHERE partner_id = $2)"
WAITING_SQL = f"""
SELECT * FROM partners
WHERE qualification_outcome = $1 AND status = 'applied'
  AND ($2::text IS NULL OR (applied_at, partner_id) > {_AFTER})
ORDER BY applied_at, partner_id LIMIT $3
"""
REJECTED_SQL = f"""
SELECT * FROM partners
WHERE qualification_outcome = $1
  AND ($2::text IS NULL OR (applied_at, partner_id) < {_AFTER})
ORDER BY applied_at DESC, partner_id DESC LIMIT $3
"""


async def review_queue(
    pool: Pool,
    outcome: Literal["review", "approve", "reject"],
    config: OnboardingConfig | None = None,
    *,
    after: str | None = None,
    limit: int = 100,
) -> list[PartnerOut]:
    """Applications by qualification outcome; `review` and `approve` (recommended): those still
    waiting for a manager's decision."""
    async with pool.acquire() as conn:
        if after is not None and not await conn.fetchval(
            "SELECT true FROM partners WHERE partner_id = $1", after
        ):
            raise Unprocessable(f"after names no application: {after!r}")
        query = REJECTED_SQL if outcome == "reject" else WAITING_SQL
        rows = await conn.fetch(query, outcome, after, limit)
    if config is None or outcome == "reject":
        return [partner_out(r, full=True) for r in rows]
    # Oldest first is soonest due: each waiting application shows its review deadline.
    return [
        partner_out(r, full=True).model_copy(
            update={"review_due_at": _iso(config.review_due_at(r["applied_at"]))}
        )
        for r in rows
    ]


async def partners(
    pool: Pool, *, only: str | None, status: PartnerStatus | None, limit: int, full: bool
) -> list[PartnerOut]:
    """Partners, newest first (`only`: just that one, for a partner caller)."""
    rows = await pool.fetch(
        """SELECT * FROM partners WHERE ($1::text IS NULL OR partner_id = $1)
             AND ($2::text IS NULL OR status = $2)
           ORDER BY applied_at DESC, partner_id LIMIT $3""",
        only,
        status.value if status else None,
        limit,
    )
    return [partner_out(r, full=full) for r in rows]


async def partner_with_history(pool: Pool, partner_id: str, *, full: bool) -> PartnerOut:
    """A partner and its audit trail; channel managers (`full`) also see who made each change."""
    out = partner_out(await partner_row(pool, partner_id), full=full)
    history = await pool.fetch(
        """SELECT version, change, status, tier, reason, changed_at, acted_by
           FROM partner_history WHERE partner_id = $1 ORDER BY version""",
        partner_id,
    )
    out.history = [
        VersionOut.model_validate({k: v for k, v in _isos(h).items() if full or k != "acted_by"})
        for h in history
    ]
    return out


async def certifications(pool: Pool, partner_id: str, *, full: bool) -> list[CertificationOut]:
    """A partner's certifications; channel managers (`full`) also see who recorded each."""
    await partner_row(pool, partner_id)
    rows = await pool.fetch(
        "SELECT * FROM certifications WHERE partner_id = $1 ORDER BY issued_at", partner_id
    )
    return [
        CertificationOut.model_validate(
            {k: v for k, v in _isos(r).items() if full or k != "recorded_by"}
        )
        for r in rows
    ]


async def certification_recorded(
    pool: Pool, partner_id: str, certification_id: str, created: bool
) -> CertificationRecordedOut:
    """What recording a certification left: the partner's competencies, tier and status."""
    row = await partner_row(pool, partner_id)
    return CertificationRecordedOut(
        certification_id=certification_id,
        created=created,
        competencies=sorted(row["competencies"]),
        tier=row["tier"],
        status=row["status"],
    )


def person_out(row: Row, *, full: bool) -> PersonOut:
    """A partner's person; channel managers (`full`) also see who added and removed them."""
    hidden = set() if full else {"added_by", "left_by"}
    return PersonOut.model_validate(
        {k: v for k, v in _isos(row).items() if k in PersonOut.model_fields and k not in hidden}
    )


async def people(pool: Pool, partner_id: str, *, full: bool) -> list[PersonOut]:
    """A partner's people, current and past, in the order they joined."""
    await partner_row(pool, partner_id)
    rows = await pool.fetch(
        "SELECT * FROM people WHERE partner_id = $1 ORDER BY joined_at, person_id", partner_id
    )
    return [person_out(r, full=full) for r in rows]


async def statement(pool: Pool, statement_id: str, *, voided: bool) -> dict[str, Any]:
    """A stored xAPI statement, as stored: one not voided, or (`voided`) one voided (404 when
    there is none of that kind)."""
    row = await pool.fetchrow(
        """SELECT s.content, v.statement_id IS NOT NULL AS voided FROM xapi_statements s
           LEFT JOIN xapi_voided v USING (statement_id) WHERE s.statement_id = $1::uuid""",
        statement_id,
    )
    if row is None or row["voided"] != voided:
        kind = "voided statement" if voided else "statement"
        hint = "" if row is None or voided else " (it was voided: ask by voidedStatementId)"
        raise NotFound(f"{kind} {statement_id} not found{hint}")
    content = row["content"]
    stored: dict[str, Any] = json.loads(content)
    return scores_as_numbers(stored)  # those stored before kept the score as text


async def next_tier(
    pool: Pool, config: OnboardingConfig, partner_id: str, as_of: datetime
) -> NextTierOut:
    """What the partner lacks for the tier above its own, from the same inputs requalification
    reads (revenue per close date in the window, certifications of current people)."""
    row = await partner_row(pool, partner_id)
    async with pool.acquire() as conn:
        certifications, _ = await repository.certifications_of(conn, [partner_id])
        days = (await repository.revenue_days(conn, config, [partner_id], as_of))[partner_id]
    held = certifications[partner_id]
    found = domain_next_tier(
        config,
        tier=row["tier"],
        partner_type=row["partner_type"],
        revenue_days=days,
        certifications=held,
        grace_until=row["grace_until"],
        agreement_valid_until=row["agreement_valid_until"],
        as_of=as_of,
    )
    return NextTierOut(
        partner_id=partner_id,
        as_of=as_of.isoformat(),
        policy_version=config.version,
        status=row["status"],
        tier=found.tier,
        next_tier=found.next_tier,
        attributed_revenue=str(found.revenue),
        revenue_needed=None if found.revenue_needed is None else str(found.revenue_needed),
        revenue_short=str(found.revenue_short),
        currency=config.reporting_currency,
        revenue_window_days=config.revenue_window_days,
        competencies=list(found.competencies),
        competencies_needed=found.competencies_needed,
        gaps=[
            CompetencyGapOut(
                competency=g.competency,
                required=g.required,
                sales_held=g.sales_held,
                sales_needed=g.sales_needed,
                technical_held=g.technical_held,
                technical_needed=g.technical_needed,
                missing=g.missing,
                reason=g.reason,
            )
            for g in found.gaps
        ],
        unmet=list(found.unmet),
        keep_unmet=list(found.keep_unmet),
        grace_until=_iso(found.grace_until),
        agreement_valid_until=_iso(found.agreement_valid_until),
        lapses=[
            CompetencyLapseOut(competency=x.competency, lapses_at=x.on.isoformat())
            for x in found.lapses
        ],
        revenue_leaving=(
            None
            if found.revenue_leaving is None
            else RevenueLeavingOut(
                on=found.revenue_leaving.on.isoformat(), amount=str(found.revenue_leaving.amount)
            )
        ),
    )
