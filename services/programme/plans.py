"""Joint business plans and quarterly business reviews: a channel manager proposes or revises
a partner's plan for a year, the partner accepts or declines it, and a review of an accepted
plan records its goals against the actuals of the year so far (domain/plans.py)."""

from __future__ import annotations

import uuid
from datetime import datetime

from services.programme import repository, views
from services.programme.domain.plans import (
    Goals,
    PlanState,
    answer,
    check_reviewable,
    compare,
    is_repeat,
)
from services.programme.domain.quarters import Quarter
from services.programme.schemas import PlanAnswerIn
from shared.audit import record_action
from shared.db import Connection, advisory_key
from shared.errors import Conflict, NotFound
from shared.events.partners import PartnerStatus
from shared.identity import Caller

# A partner the programme no longer works with gets no plan.
NO_PLAN = frozenset({PartnerStatus.REJECTED.value, PartnerStatus.EXPELLED.value})


async def propose(
    conn: Connection,
    who: Caller,
    partner_id: str,
    year: int,
    currency: str,
    goals: Goals,
    note: str,
    at: datetime,
) -> None:
    """The plan's first revision, or its next one (proposed again, whatever its state); the
    plan as it stands asked for again changes nothing."""
    status = await views.partner_status(conn, partner_id)
    if status is None:
        raise NotFound(f"partner {partner_id} not found")
    if status in NO_PLAN:
        raise Conflict(f"partner {partner_id} is {status}: it gets no business plan")
    # One proposal of a plan at a time, its first one included (no row to lock yet).
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1)", advisory_key("programme-plan", partner_id, str(year))
    )
    current = await repository.lock_plan(conn, partner_id, year)
    if is_repeat(current, currency, goals, note):
        return
    revision = 1 if current is None else current["revision"] + 1
    await repository.save_proposal(
        conn, partner_id, year, revision, currency, goals, note, who.subject, at
    )
    await repository.add_plan_history(
        conn, partner_id, year, revision, PlanState.PROPOSED, goals, who.subject, note, at
    )
    await record_action(conn, who, "plan.propose", f"{partner_id}/{year}")


async def respond(
    conn: Connection,
    who: Caller,
    partner_id: str,
    year: int,
    answered: PlanAnswerIn,
    at: datetime,
) -> None:
    """The partner's answer to the proposed revision it read."""
    current = await repository.lock_plan(conn, partner_id, year)
    if current is None:
        raise NotFound(f"no business plan for {year}")
    state = answer(
        PlanState(current["state"]), current["revision"], answered.accept, answered.revision
    )
    note = answered.note
    await repository.save_answer(conn, partner_id, year, state, who.subject, note, at)
    await repository.add_plan_history(
        conn,
        partner_id,
        year,
        current["revision"],
        state,
        views.goals_of(current),
        who.subject,
        note,
        at,
    )
    await record_action(conn, who, f"plan.{state.value}", f"{partner_id}/{year}")


async def review(
    conn: Connection,
    who: Caller,
    partner_id: str,
    year: int,
    quarter: Quarter,
    summary: str,
    actions: list[str],
    new_logo_rules: tuple[str, ...],
    at: datetime,
) -> uuid.UUID:
    """Record the quarter's review of the accepted plan: its goals against the actuals from
    the year's start to the quarter's end, as they stand now."""
    current = await repository.lock_plan(conn, partner_id, year)
    if current is None:
        raise NotFound(f"no business plan for {year}")
    check_reviewable(PlanState(current["state"]), year, quarter, at.date())
    actuals = await views.plan_actuals(
        conn, partner_id, year, quarter, current["currency"], new_logo_rules, at.date()
    )
    review_id = uuid.uuid4()
    recorded = await repository.insert_review(
        conn,
        review_id,
        partner_id,
        year,
        str(quarter),
        current["revision"],
        compare(views.goals_of(current), actuals),
        actuals.mdf_claims_approved,
        summary,
        actions,
        who.subject,
        at,
    )
    if not recorded:
        raise Conflict(f"the review of {quarter} is already recorded")
    await record_action(conn, who, "plan.review", f"{partner_id}/{quarter}")
    return review_id
