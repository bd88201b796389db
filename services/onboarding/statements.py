"""The learning system's xAPI statements: stored append-only and idempotently, then applied to
the person each names (a passed certification exam certifies them; competencies, authorisations
and the tier of their partner follow at once, as with a certification recorded by hand).

A request's statements are stored together or not at all (as the xAPI statement resource
asks): an id stored before with other content refuses the request (409) and stores nothing of
it, so the learning system can resend the rest. A statement whose actor is nobody's yet is
kept and applied when the person is registered (`people.py`); statements may arrive in any
order: a certification is issued at the statement's own timestamp.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from services.onboarding import enablement_repository as store
from services.onboarding import repository
from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.enablement import (
    Statement,
    certification_from,
    comparable,
    comparable_before_display_ignored,
    lock_keys,
    membership_for,
    scores_as_numbers,
)
from services.onboarding.domain.lifecycle import NOT_CERTIFIED
from services.onboarding.domain.tiers import Certification, not_before_departure
from services.onboarding.reassessment import Reassessment
from shared.db import Connection
from shared.errors import Conflict
from shared.events.partners import PartnerStatus
from shared.outbox import Outbox

# Who the stored statements name as their authority: the system client that sent them.
AUTHORITY_HOME = "https://pollinate.dev/principals"


def stored_content(content: dict[str, Any], stored: datetime, by_subject: str) -> dict[str, Any]:
    """The statement with the LRS's own properties: when it was stored, and by whose
    authority."""
    return {
        **scores_as_numbers(content),
        "stored": stored.isoformat(),
        "authority": {
            "objectType": "Agent",
            "account": {"homePage": AUTHORITY_HOME, "name": by_subject},
        },
        "version": content.get("version", "1.0.0"),
    }


async def receive(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    statements: Sequence[tuple[Statement, dict[str, Any]]],
    *,
    at: datetime,
    by: str,
    by_subject: str,
) -> None:
    """Store the statements (a repeat of a stored one, same content: nothing happens again;
    other content: 409, nothing stored) and apply the new ones."""
    await store.lock_actors(conn, {key for s, _ in statements for key in lock_keys(s)})
    rows = [
        (
            s.statement_id,
            stored_content(content, at, by_subject),
            comparable(content),
            s.actor_key,
            s.verb,
            s.activity,
            s.occurred_at,
            at,
            by,
        )
        for s, content in statements
    ]
    new = await store.insert_statements(conn, rows)
    repeats = {
        s.statement_id: {comparable(c), comparable_before_display_ignored(c)}
        for s, c in statements
        if s.statement_id not in new
    }
    if repeats:
        stored = await store.comparables(conn, list(repeats))
        for statement_id, sent in repeats.items():
            if stored.get(statement_id) not in sent:
                raise Conflict(
                    f"statement {statement_id} is already stored with other content; "
                    "statements are immutable (nothing of this request was stored)"
                )
    fresh = [s for s, _ in statements if s.statement_id in new]
    # Voiding first: a statement voided in the same request (or before it arrived) does nothing.
    voids = [(s.voids, s.statement_id) for s in fresh if s.voids is not None]
    revoked = await store.record_voids(conn, voids, at)
    voided = await store.voided_among(conn, [s.statement_id for s in fresh])
    effective = [s for s in fresh if s.voids is None and s.statement_id not in voided]
    # In the order they happened, not as listed: a renewal listed before its exam's pass was
    # "nothing to renew" for good (found in review). Stable: the same moment keeps its order.
    effective.sort(key=lambda s: s.occurred_at)
    await apply(conn, outbox, config, effective, at, by, reassess=revoked)


async def apply(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    statements: Sequence[Statement],
    at: datetime,
    by: str,
    *,
    reassess: Collection[str] = (),
) -> None:
    """Apply statements to the people they name (those nobody is yet wait), certify on passed
    exams, record what each did, and re-evaluate the partners whose certifications changed
    (and `reassess`: partners whose certifications were voided)."""
    people = await store.memberships(conn, {s.actor_key for s in statements}) if statements else []
    matched = [(s, membership_for(people, s)) for s in statements]
    matched_people = [(s, p) for s, p in matched if p is not None]
    if not matched_people and not reassess:
        return
    # A statement made before its person left can be applied after the departure committed:
    # the partner is then evaluated as of the departure, not the statement's request.
    departed = max((p["left_at"] for _, p in matched_people if p["left_at"]), default=None)
    as_of = not_before_departure(at, departed)
    partner_ids = {p["partner_id"] for _, p in matched_people} | set(reassess)
    run = await Reassessment.start(conn, config, partner_ids, as_of, acted_by=by)
    outcomes: list[tuple[Any, ...]] = []
    touched: set[str] = set(reassess)
    for statement, person in matched_people:
        partner_id = person["partner_id"]
        held = run.certifications.get(partner_id)
        certification, outcome = certification_from(
            config.certification_exams,
            statement,
            person["email"],
            [c for c in held or [] if c.person == person["email"]],
        )
        status = PartnerStatus(run.rows[partner_id]["status"])
        if certification is not None and status in NOT_CERTIFIED:
            certification, outcome = None, f"recorded (partner is {status.value}: not certified)"
        certification_id = None
        if certification is not None:
            certification_id, created = await repository.insert_certification(
                conn,
                partner_id,
                certification,
                person["name"],
                at,
                recorded_by=by,
                person_id=person["person_id"],
                statement_id=statement.statement_id,
            )
            if created and held is not None:
                held.append(_until_left(certification, person["left_at"]))
                touched.add(partner_id)
        outcomes.append(
            (statement.statement_id, person["person_id"], partner_id, certification_id, outcome, at)
        )
    await store.insert_outcomes(conn, outcomes)
    for partner_id in sorted(touched):
        run.reassess(partner_id)
    await outbox.publish_many(conn, await run.write(conn))


def _until_left(certification: Certification, left_at: datetime | None) -> Certification:
    """A certification as it counts: not beyond the day its holder left the partner."""
    if left_at is None or left_at >= certification.expires_at:
        return certification
    return Certification(
        certification.person,
        certification.role,
        certification.track,
        certification.issued_at,
        left_at,
    )
