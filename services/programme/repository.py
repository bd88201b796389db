"""Write-side SQL of programme: the facts the consumers record. Every insert ignores a row it
already holds (the inbox already drops a redelivered event; a republished event with a new id
changes nothing either)."""

from __future__ import annotations

import json
import uuid
from dataclasses import astuple, dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from services.programme.domain.plans import Goals, Line, PlanState
from services.programme.domain.quarters import quarter_of_period
from shared.db import Connection, columns
from shared.events.attribution import CreditIssued, CreditReversed
from shared.events.incentives import IncentiveEarned, IncentiveReversed, MdfAccrued
from shared.events.partners import PartnerStateChanged


async def record_partner_versions(
    conn: Connection, versions: list[tuple[PartnerStateChanged, str | None]]
) -> None:
    """Partner versions with the decision each is, if any (`automatic` | `manual`)."""
    if not versions:
        return
    await conn.execute(
        """INSERT INTO partner_versions (partner_id, version, partner_type, status,
               previous_status, tier, regions, change, decision, changed_at, competencies)
           SELECT p, v, t, s, ps, tr, string_to_array(r, ' '), c, d, at,
                  string_to_array(k, ' ')
           FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[],
                       $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::text[])
                AS x(p, v, t, s, ps, tr, r, c, d, at, k)
           ON CONFLICT (partner_id, version) DO NOTHING""",
        [e.partner_id for e, _ in versions],
        [e.version for e, _ in versions],
        [e.partner_type for e, _ in versions],
        [e.status.value for e, _ in versions],
        [e.previous_status.value if e.previous_status else None for e, _ in versions],
        [e.tier for e, _ in versions],
        # regions are country codes: no spaces
        [" ".join(e.regions) for e, _ in versions],
        [e.change.value for e, _ in versions],
        [decision for _, decision in versions],
        [e.changed_at for e, _ in versions],
        # competency codes: no spaces either
        [" ".join(e.competencies) for e, _ in versions],
    )


async def record_credits(conn: Connection, credits: list[CreditIssued]) -> None:
    if not credits:
        return
    await conn.execute(
        """INSERT INTO credits (credit_id, deal_key, partner_id, kind, amount, currency,
               customer_country, close_date, issued_at)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[],
                                $6::text[], $7::text[], $8::date[], $9::timestamptz[])
           ON CONFLICT (credit_id) DO NOTHING""",
        *columns(
            [
                (
                    c.credit_id,
                    c.deal_key,
                    c.partner_id,
                    c.kind.value,
                    c.amount,
                    c.currency,
                    c.customer.country,
                    c.close_date,
                    c.issued_at,
                )
                for c in credits
            ]
        ),
    )


async def record_reversals(conn: Connection, reversals: list[CreditReversed]) -> None:
    if not reversals:
        return
    await conn.execute(
        """INSERT INTO credit_reversals (credit_id, reversal_id, amount, reversed_at)
           SELECT * FROM unnest($1::text[], $2::text[], $3::numeric[], $4::timestamptz[])
           ON CONFLICT DO NOTHING""",
        [r.credit_id for r in reversals],
        [r.reversal_id for r in reversals],
        [r.amount for r in reversals],
        [r.reversed_at for r in reversals],
    )


@dataclass(frozen=True)
class SpendEntry:
    """A row of `spend_entries`, its fields in the table's column order."""

    entry_id: str
    partner_id: str
    movement: str  # incentive | mdf_accrual | mdf_claim
    credit_id: str | None
    quarter: str
    amount: Decimal  # signed: what it adds to the programme's cost
    currency: str
    at: datetime
    rule: str | None = None  # the program rule (kicker:new_logo, ...)
    deal_key: str | None = None
    reverses: str | None = None  # a clawback: the entry it takes back

    @classmethod
    def of_ledger(
        cls,
        entry: IncentiveEarned | IncentiveReversed | MdfAccrued,
        movement: str,
        amount: Decimal,
        at: datetime,
        reverses: str | None = None,
    ) -> SpendEntry:
        """A ledger entry about a credit, as the cost it adds (`amount`, signed) at `at`
        (`reverses`: the entry a clawback takes back)."""
        return cls(
            entry.entry_id,
            entry.partner_id,
            movement,
            entry.credit_id,
            quarter_of_period(entry.period),
            amount,
            entry.currency,
            at,
            entry.program_rule,
            entry.deal_key,
            reverses,
        )


async def record_spend(conn: Connection, entries: list[SpendEntry]) -> None:
    if not entries:
        return
    await conn.execute(
        """INSERT INTO spend_entries (entry_id, partner_id, movement, credit_id, quarter,
               amount, currency, at, rule, deal_key, reverses)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                $6::numeric[], $7::text[], $8::timestamptz[], $9::text[],
                                $10::text[], $11::text[])
           ON CONFLICT (entry_id) DO NOTHING""",
        *columns([astuple(e) for e in entries]),
    )


@dataclass(frozen=True)
class MoveRow:
    """A row of `registration_moves`, its fields in the table's column order."""

    event_id: uuid.UUID
    registration_id: str
    partner_id: str
    move: str
    outcome: str | None
    automatic: bool | None
    at_submission: bool
    at: datetime


async def record_registration_moves(conn: Connection, moves: list[MoveRow]) -> None:
    if not moves:
        return
    await conn.execute(
        """INSERT INTO registration_moves (event_id, registration_id, partner_id, move, outcome,
               automatic, at_submission, at)
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                                $6::boolean[], $7::boolean[], $8::timestamptz[])
           ON CONFLICT (event_id) DO NOTHING""",
        *columns([astuple(m) for m in moves]),
    )


# ---- joint business plans and reviews

PLAN_COLUMNS = """partner_id, year, revision, state, currency, sourced_revenue, certifications,
    new_logos, campaigns, note, proposed_by, proposed_at, responded_by, responded_at,
    response_note"""


async def lock_plan(conn: Connection, partner_id: str, year: int) -> Any:
    return await conn.fetchrow(
        f"SELECT {PLAN_COLUMNS} FROM business_plans WHERE partner_id = $1 AND year = $2 FOR UPDATE",
        partner_id,
        year,
    )


async def save_proposal(
    conn: Connection,
    partner_id: str,
    year: int,
    revision: int,
    currency: str,
    goals: Goals,
    note: str,
    by: str,
    at: datetime,
) -> None:
    await conn.execute(
        """INSERT INTO business_plans (partner_id, year, revision, state, currency,
               sourced_revenue, certifications, new_logos, campaigns, note, proposed_by,
               proposed_at)
           VALUES ($1, $2, $3, 'proposed', $4, $5, $6, $7, $8, $9, $10, $11)
           ON CONFLICT (partner_id, year) DO UPDATE SET
               revision = excluded.revision, state = 'proposed', currency = excluded.currency,
               sourced_revenue = excluded.sourced_revenue,
               certifications = excluded.certifications, new_logos = excluded.new_logos,
               campaigns = excluded.campaigns, note = excluded.note,
               proposed_by = excluded.proposed_by, proposed_at = excluded.proposed_at,
               responded_by = NULL, responded_at = NULL, response_note = NULL""",
        partner_id,
        year,
        revision,
        currency,
        goals.sourced_revenue,
        goals.certifications,
        goals.new_logos,
        goals.co_marketing_campaigns,
        note,
        by,
        at,
    )


async def save_answer(
    conn: Connection,
    partner_id: str,
    year: int,
    state: PlanState,
    by: str,
    note: str,
    at: datetime,
) -> None:
    await conn.execute(
        """UPDATE business_plans SET state = $3, responded_by = $4, responded_at = $5,
               response_note = $6
           WHERE partner_id = $1 AND year = $2""",
        partner_id,
        year,
        state.value,
        by,
        at,
        note,
    )


async def add_plan_history(
    conn: Connection,
    partner_id: str,
    year: int,
    revision: int,
    state: PlanState,
    goals: Goals,
    by: str,
    note: str,
    at: datetime,
) -> None:
    await conn.execute(
        """INSERT INTO business_plan_history (partner_id, year, seq, revision, state, goals,
               acted_by, note, at)
           SELECT $1, $2, coalesce(max(seq), 0) + 1, $3, $4, $5::jsonb, $6, $7, $8
           FROM business_plan_history WHERE partner_id = $1 AND year = $2""",
        partner_id,
        year,
        revision,
        state.value,
        json.dumps(goals_json(goals)),
        by,
        note,
        at,
    )


def goals_json(goals: Goals) -> dict[str, Any]:
    return {
        "sourced_revenue": str(goals.sourced_revenue),
        "certifications": goals.certifications,
        "new_logos": goals.new_logos,
        "co_marketing_campaigns": goals.co_marketing_campaigns,
    }


def lines_json(lines: list[Line]) -> list[dict[str, Any]]:
    return [
        {
            "goal": line.goal_name,
            "source": line.source,
            "target": str(line.goal),
            "actual": str(line.actual),
            "attainment": str(line.attainment) if line.attainment is not None else None,
        }
        for line in lines
    ]


async def insert_review(
    conn: Connection,
    review_id: uuid.UUID,
    partner_id: str,
    year: int,
    quarter: str,
    revision: int,
    lines: list[Line],
    mdf_claims_approved: int,
    summary: str,
    actions: list[str],
    by: str,
    at: datetime,
) -> bool:
    """False when the partner's review of that quarter is already recorded."""
    inserted = await conn.fetchval(
        """INSERT INTO business_reviews (review_id, partner_id, year, quarter, plan_revision,
               lines, mdf_claims_approved, summary, actions, recorded_by, recorded_at)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9::jsonb, $10, $11)
           ON CONFLICT (partner_id, quarter) DO NOTHING RETURNING true""",
        review_id,
        partner_id,
        year,
        quarter,
        revision,
        json.dumps(lines_json(lines)),
        mdf_claims_approved,
        summary,
        json.dumps(actions),
        by,
        at,
    )
    return bool(inserted)


# ---- partner voice


async def insert_survey(
    conn: Connection,
    survey_id: uuid.UUID,
    question: str,
    tiers: list[str],
    types: list[str],
    closes_at: datetime,
    partners: list[str],
    by: str,
    at: datetime,
) -> None:
    await conn.execute(
        """INSERT INTO surveys (survey_id, question, tiers, types, closes_at, created_by,
               created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        survey_id,
        question,
        tiers,
        types,
        closes_at,
        by,
        at,
    )
    await conn.execute(
        """INSERT INTO survey_recipients (survey_id, partner_id)
           SELECT $1, unnest($2::text[])""",
        survey_id,
        partners,
    )


@dataclass(frozen=True)
class AnswerRow:
    answer_id: uuid.UUID
    survey_id: uuid.UUID
    partner_id: str
    respondent: str
    score: int
    comment: str
    tier: str | None
    partner_type: str | None
    answered_at: datetime


async def insert_answer(conn: Connection, answer: AnswerRow) -> bool:
    """False when the person has answered the survey already (nothing written)."""
    stored = await conn.fetchval(
        """INSERT INTO survey_answers (answer_id, survey_id, partner_id, respondent, score,
               comment, tier, partner_type, answered_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (survey_id, respondent) DO NOTHING RETURNING true""",
        answer.answer_id,
        answer.survey_id,
        answer.partner_id,
        answer.respondent,
        answer.score,
        answer.comment,
        answer.tier,
        answer.partner_type,
        answer.answered_at,
    )
    return bool(stored)


async def seat_member(
    conn: Connection,
    partner_id: str,
    representative: str,
    role: str,
    joined_on: date,
    left_on: date | None,
    by: str,
    at: datetime,
) -> None:
    await conn.execute(
        """INSERT INTO council_members (partner_id, representative, role, joined_on, left_on,
               recorded_by, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (partner_id) DO UPDATE SET representative = excluded.representative,
               role = excluded.role, joined_on = excluded.joined_on, left_on = excluded.left_on,
               recorded_by = excluded.recorded_by, recorded_at = excluded.recorded_at""",
        partner_id,
        representative,
        role,
        joined_on,
        left_on,
        by,
        at,
    )


async def seated_members(conn: Connection, partners: list[str], on: date) -> set[str]:
    """Those of `partners` seated on the council on that day."""
    rows = await conn.fetch(
        """SELECT partner_id FROM council_members
           WHERE partner_id = ANY($1::text[]) AND joined_on <= $2
             AND (left_on IS NULL OR left_on >= $2)""",
        partners,
        on,
    )
    return {row["partner_id"] for row in rows}


async def insert_meeting(
    conn: Connection,
    meeting_id: uuid.UUID,
    held_on: date,
    attendees: list[str],
    agenda: str,
    notes: str,
    decisions: list[dict[str, str | None]],
    by: str,
    at: datetime,
) -> None:
    await conn.execute(
        """INSERT INTO council_meetings (meeting_id, held_on, attendees, agenda, notes,
               decisions, recorded_by, recorded_at)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)""",
        meeting_id,
        held_on,
        attendees,
        agenda,
        notes,
        json.dumps(decisions),
        by,
        at,
    )


# ---- KPI snapshots


async def last_snapshot(conn: Connection, quarter: str) -> tuple[str | None, datetime]:
    """The fingerprint last published for the quarter and the moment its figures were read,
    its row locked until the transaction ends (another instance deciding the same waits, then
    sees what this one wrote)."""
    await conn.execute(
        """INSERT INTO kpi_snapshots (quarter, fingerprint, published_at)
           VALUES ($1, '', 'epoch') ON CONFLICT (quarter) DO NOTHING""",
        quarter,
    )
    found = await conn.fetchrow(
        "SELECT fingerprint, published_at FROM kpi_snapshots WHERE quarter = $1 FOR UPDATE",
        quarter,
    )
    assert found is not None  # inserted above, if it was not there
    return found["fingerprint"] or None, found["published_at"]


async def save_snapshot(conn: Connection, quarter: str, fingerprint: str, at: datetime) -> None:
    await conn.execute(
        "UPDATE kpi_snapshots SET fingerprint = $2, published_at = $3 WHERE quarter = $1",
        quarter,
        fingerprint,
        at,
    )
