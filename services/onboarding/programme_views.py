"""Read side of the programme: a partner's programme year (next review, reviews and appeals),
its health as attribution last scored it, its account manager."""

from __future__ import annotations

from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.lifecycle import IN_PROGRAM
from services.onboarding.domain.programme_year import next_review
from services.onboarding.programme_schemas import (
    AccountManagerOut,
    AppealOut,
    AssignmentOut,
    ProgrammeOut,
    ReviewOut,
)
from services.onboarding.repository import Row
from services.onboarding.views import _iso, partner_row
from shared.db import Pool, from_row
from shared.events.partners import PartnerStatus


def appeal_out(row: Row, *, full: bool) -> AppealOut:
    return from_row(
        AppealOut,
        row,
        filed_at=row["filed_at"].isoformat(),
        decided_at=_iso(row["decided_at"]),
        filed_by=row["filed_by"] if full else None,
        decided_by=row["decided_by"] if full else None,
    )


def _review_out(row: Row, appeal: Row | None, *, full: bool) -> ReviewOut:
    return from_row(
        ReviewOut,
        row,
        review_on=row["review_on"].isoformat(),
        probation_until=_iso(row["probation_until"]),
        appeal_until=_iso(row["appeal_until"]),
        decided_at=row["decided_at"].isoformat(),
        reversed_at=_iso(row["reversed_at"]),
        appeal=None if appeal is None else appeal_out(appeal, full=full),
    )


async def programme(
    pool: Pool, config: OnboardingConfig, partner_id: str, *, full: bool
) -> ProgrammeOut:
    partner = await partner_row(pool, partner_id)
    reviews = await pool.fetch(
        "SELECT * FROM programme_reviews WHERE partner_id = $1 ORDER BY decided_at, review_id",
        partner_id,
    )
    appeals = {
        r["review_id"]: r
        for r in await pool.fetch(
            "SELECT * FROM requalification_appeals WHERE partner_id = $1", partner_id
        )
    }
    activated = await pool.fetchval(
        """SELECT max(changed_at) FROM partner_history
           WHERE partner_id = $1 AND change = 'activated'""",
        partner_id,
    )
    health = await pool.fetchrow("SELECT * FROM partner_health WHERE partner_id = $1", partner_id)
    # This membership's reviews decide what comes next (every review is shown).
    current = [r for r in reviews if activated is not None and r["decided_at"] >= activated]
    annual = [r for r in current if r["basis"] == "annual"]
    last = annual[-1] if annual else None
    ended = {r["review_on"] for r in current if r["basis"] == "probation_end"}
    probation = (
        last["probation_until"]
        if last is not None
        and last["outcome"] == "probation"
        and last["reversed_at"] is None
        and last["probation_until"] not in ended
        else None
    )
    in_programme = PartnerStatus(partner["status"]) in IN_PROGRAM and activated is not None
    return ProgrammeOut(
        partner_id=partner_id,
        next_review_on=(
            next_review(
                config.programme_year, activated.date(), last["review_on"] if last else None
            ).isoformat()
            if in_programme
            else None
        ),
        on_probation_until=None if probation is None else probation.isoformat(),
        health_score=None if health is None else str(health["score"]),
        health_day=None if health is None else health["day"].isoformat(),
        account_manager=partner["account_manager"],
        reviews=[_review_out(r, appeals.get(r["review_id"]), full=full) for r in reviews],
    )


async def account_manager(pool: Pool, partner_id: str, *, changed: bool) -> AccountManagerOut:
    partner = await partner_row(pool, partner_id)
    rows = await pool.fetch(
        """SELECT * FROM account_manager_assignments WHERE partner_id = $1
           ORDER BY assigned_at""",
        partner_id,
    )
    return AccountManagerOut(
        partner_id=partner_id,
        account_manager=partner["account_manager"],
        changed=changed,
        assignments=[
            from_row(AssignmentOut, r, assigned_at=r["assigned_at"].isoformat()) for r in rows
        ],
    )
