"""Read side of enablement: learning paths with each person's progress, the resource library as
a partner sees it, and the enablement KPIs and health signal of a partner or the programme."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from services.onboarding import views
from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.enablement import COMPLETED, PASSED, VOIDED
from services.onboarding.domain.learning import Completion, PathProgress, paths_for, progress
from services.onboarding.domain.lifecycle import NOT_EVALUATED
from services.onboarding.domain.programme import PersonRole
from services.onboarding.domain.resources import PersonEnablement, enablement_kpis, visible
from services.onboarding.enablement_schemas import (
    EnablementOut,
    LearningOut,
    ModuleOut,
    PathOut,
    PersonProgressOut,
    PersonRecordOut,
    ResourceOut,
    StatementOutcomeOut,
    WaitingActorOut,
)
from services.onboarding.repository import Row
from services.onboarding.schemas import CertificationOut
from services.onboarding.views import _iso, _isos, partner_row
from shared.db import Pool, from_row
from shared.errors import NotFound


async def _current_people(pool: Pool, partner_ids: Sequence[str]) -> list[Row]:
    return await pool.fetch(
        """SELECT * FROM people WHERE partner_id = ANY($1::text[]) AND left_at IS NULL
           ORDER BY joined_at, person_id""",
        list(partner_ids),
    )


async def _completions(pool: Pool, people: Sequence[Row]) -> dict[str, list[Completion]]:
    """Per person: modules completed and exams passed (that certified), from the statements
    applied to them."""
    rows = await pool.fetch(
        """SELECT o.person_id, s.activity, s.occurred_at,
                  -- a pass that certified (below the mark, or while the partner could not be
                  -- certified, it is a completion, not a pass: the page said it had lapsed)
                  s.verb = $3 AND o.certification_id IS NOT NULL AS passed
           FROM xapi_statement_outcomes o JOIN xapi_statements s USING (statement_id)
           WHERE o.person_id = ANY($1::text[]) AND s.verb = ANY($2::text[])
             AND s.activity IS NOT NULL
             AND coalesce(s.content -> 'result' ->> 'success', 'true') <> 'false'
             AND NOT EXISTS (SELECT 1 FROM xapi_voided v WHERE v.statement_id = s.statement_id)""",
        [p["person_id"] for p in people],
        [COMPLETED, PASSED],
        PASSED,
    )
    completions: dict[str, list[Completion]] = {}
    for r in rows:
        completions.setdefault(r["person_id"], []).append(
            Completion(r["activity"], r["occurred_at"], r["passed"])
        )
    return completions


async def learning(pool: Pool, config: OnboardingConfig, partner_id: str) -> LearningOut:
    """The learning paths for the partner's type and tier, each with the progress of its
    current people of the path's role (from the statements applied to them)."""
    partner = await partner_row(pool, partner_id)
    people = await _current_people(pool, [partner_id])
    completions = await _completions(pool, people)
    exams = {exam.activity_id: exam for exam in config.certification_exams}
    paths = []
    for role in PersonRole:
        for path in paths_for(config.paths, role, partner["partner_type"], partner["tier"]):
            followers = [p for p in people if p["role"] == role.value]
            exam = exams.get(path.leads_to or "")
            paths.append(
                PathOut(
                    name=path.name,
                    role=role.value,
                    leads_to=path.leads_to,
                    certification_track=exam.track if exam else None,
                    certification_role=exam.role.value if exam else None,
                    modules=len(path.modules),
                    people=[
                        _progress_out(p, progress(path, completions.get(p["person_id"], [])))
                        for p in followers
                    ],
                )
            )
    return LearningOut(
        partner_id=partner_id,
        partner_type=partner["partner_type"],
        tier=partner["tier"],
        policy_version=config.version,
        paths=paths,
    )


def _progress_out(person: Row, made: PathProgress) -> PersonProgressOut:
    return PersonProgressOut(
        person_id=person["person_id"],
        email=person["email"],
        name=person["name"],
        modules=[
            ModuleOut(
                activity_id=m.activity_id,
                title=m.title,
                state=m.state.value,
                completed_at=_iso(m.completed_at),
            )
            for m in made.modules
        ],
        done=made.done,
        complete=made.complete,
        exam_passed_at=_iso(made.exam_passed_at),
    )


def resource_out(row: Row, *, full: bool) -> ResourceOut:
    """A resource; channel managers (`full`) also see who published it."""
    hidden = set() if full else {"published_by"}
    return ResourceOut.model_validate(
        {k: v for k, v in _isos(row).items() if k in ResourceOut.model_fields and k not in hidden}
    )


async def resources(pool: Pool, partner_id: str | None) -> list[ResourceOut]:
    """The library: for a partner, what is meant for its type and tier and not withdrawn; for a
    channel manager (`partner_id` None), everything."""
    rows = await pool.fetch("SELECT * FROM resources ORDER BY published_at, resource_id")
    if partner_id is None:
        return [resource_out(r, full=True) for r in rows]
    partner = await partner_row(pool, partner_id)
    return [
        resource_out(r, full=False)
        for r in rows
        if r["withdrawn_at"] is None
        and visible(r["partner_types"], r["tiers"], partner["partner_type"], partner["tier"])
    ]


async def enablement(
    pool: Pool, config: OnboardingConfig, partner_id: str | None, as_of: datetime
) -> EnablementOut:
    """Enablement KPIs and health of one partner, or (None) of every partner in evaluation."""
    if partner_id is not None:
        partners = [await partner_row(pool, partner_id)]
    else:
        partners = await pool.fetch(
            "SELECT * FROM partners WHERE status <> ALL($1::text[])",
            sorted(s.value for s in NOT_EVALUATED),
        )
    standing = {p["partner_id"]: (p["partner_type"], p["tier"]) for p in partners}
    people = await _current_people(pool, list(standing))
    completions = await _completions(pool, people)
    certified = {
        r["person_id"]: r
        for r in await pool.fetch(
            """SELECT person_id, min(issued_at) AS first,
                      bool_or(issued_at <= $2 AND expires_at > $2) AS now
               FROM certifications WHERE person_id = ANY($1::text[]) AND voided_at IS NULL
               GROUP BY person_id""",
            [p["person_id"] for p in people],
            as_of,
        )
    }
    since = as_of - timedelta(days=config.engagement_window_days)
    engagement = await pool.fetchrow(
        """SELECT count(*) FILTER (WHERE action = 'download') AS downloads,
                  count(*) FILTER (WHERE action = 'sandbox_signup') AS signups,
                  count(DISTINCT subject) AS engaged
           FROM resource_engagements
           WHERE partner_id = ANY($1::text[]) AND at > $2 AND at <= $3""",
        list(standing),
        since,
        as_of,
    )
    assert engagement is not None
    summaries = []
    for person in people:
        partner_type, tier = standing[person["partner_id"]]
        paths = paths_for(config.paths, PersonRole(person["role"]), partner_type, tier)
        done = completions.get(person["person_id"], [])
        first = certified.get(person["person_id"])
        summaries.append(
            PersonEnablement(
                has_path=bool(paths),
                # (no completion: no path is complete; most people, so not walked)
                completed_a_path=bool(done)
                and any(progress(path, done).complete for path in paths),
                certified_now=bool(first and first["now"]),
                days_to_first_certification=(
                    max(0, (first["first"] - person["joined_at"]).days) if first else None
                ),
            )
        )
    kpis = enablement_kpis(summaries, engagement["engaged"])
    return EnablementOut(
        partner_id=partner_id,
        partners=len(standing),
        people=kpis.people,
        training_completion_rate=_text(kpis.completion_rate),
        certified_share=_text(kpis.certified_share),
        engaged_share=_text(kpis.engaged_share),
        median_days_to_first_certification=_text(kpis.median_days_to_first_certification),
        downloads=engagement["downloads"],
        sandbox_signups=engagement["signups"],
        window_days=config.engagement_window_days,
        score=str(kpis.score),
        reasons=list(kpis.reasons),
    )


def _text(value: object | None) -> str | None:
    return None if value is None else str(value)


async def waiting_actors(pool: Pool) -> list[WaitingActorOut]:
    """Actors whose statements no person has claimed (voiding statements and voided ones
    aside), the most statements first."""
    rows = await pool.fetch(
        """SELECT s.actor_key, count(*) AS statements, min(s.stored_at) AS first,
                  max(s.stored_at) AS last
           FROM xapi_statements s
           WHERE s.verb <> $1
             AND NOT EXISTS (SELECT 1 FROM xapi_statement_outcomes o
                             WHERE o.statement_id = s.statement_id)
             AND NOT EXISTS (SELECT 1 FROM xapi_voided v WHERE v.statement_id = s.statement_id)
           GROUP BY s.actor_key ORDER BY count(*) DESC, s.actor_key LIMIT 1000""",
        VOIDED,
    )
    return [
        WaitingActorOut(
            actor=r["actor_key"],
            statements=r["statements"],
            first_stored_at=r["first"].isoformat(),
            last_stored_at=r["last"].isoformat(),
        )
        for r in rows
    ]


async def person_record(
    pool: Pool, partner_id: str, person_id: str, *, full: bool
) -> PersonRecordOut:
    """One of the partner's people, their certifications and what each of their statements
    did (so a missing certification can be explained: a failed attempt, a voided pass, a pass
    below the mark)."""
    row = await pool.fetchrow(
        "SELECT * FROM people WHERE person_id = $1 AND partner_id = $2", person_id, partner_id
    )
    if row is None:
        raise NotFound(f"person {person_id} not found")
    certifications = await pool.fetch(
        "SELECT * FROM certifications WHERE person_id = $1 ORDER BY issued_at", person_id
    )
    statements = await pool.fetch(
        """SELECT s.statement_id::text, s.verb, s.activity, s.occurred_at, o.outcome,
                  o.certification_id,
                  EXISTS (SELECT 1 FROM xapi_voided v WHERE v.statement_id = s.statement_id)
                      AS voided
           FROM xapi_statement_outcomes o JOIN xapi_statements s USING (statement_id)
           WHERE o.person_id = $1 ORDER BY s.occurred_at DESC, s.statement_id LIMIT 200""",
        person_id,
    )
    return PersonRecordOut(
        person=views.person_out(row, full=full),
        certifications=[
            CertificationOut.model_validate(
                {k: v for k, v in _isos(c).items() if full or k != "recorded_by"}
            )
            for c in certifications
        ],
        statements=[
            from_row(StatementOutcomeOut, s, occurred_at=s["occurred_at"].isoformat())
            for s in statements
        ],
    )
