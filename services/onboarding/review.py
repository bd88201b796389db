"""A channel manager decides an application the scoring did not reject (left for review, or
recommended for approval: self-declared figures approve no one by themselves): their
cultural-fit judgement re-scores it, then it is approved (onboarding starts) or rejected."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from services.onboarding import repository
from services.onboarding.announcements import record_version
from services.onboarding.applications import approve, reject
from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.lifecycle import Change, check_awaiting_review
from services.onboarding.domain.qualification import qualify
from services.onboarding.repository import Row
from shared.db import Connection, Pool
from shared.errors import Conflict
from shared.events.notifications import NotificationKindV2
from shared.events.partners import PartnerStatus
from shared.notify import notify
from shared.outbox import Outbox

REVIEWERS = "channel-managers"  # the recipient of review escalations


async def decide_review(
    conn: Connection,
    outbox: Outbox,
    config: OnboardingConfig,
    partner_id: str,
    *,
    approve_it: bool,
    note: str,
    cultural_fit: Decimal | None,
    by: str,
    at: datetime,
) -> Row:
    row = await repository.lock_partner(conn, partner_id)
    check_awaiting_review(partner_id, PartnerStatus(row["status"]), row["qualification_outcome"])
    if approve_it and await repository.domain_held_by_another(conn, row["domain"], partner_id):
        # Found in review: an application claiming a domain that another partner verified
        # while it waited was admitted all the same (intake would refuse it now, 409).
        raise Conflict(
            f"domain {row['domain']} is held by another partner (verified since this application"
            " was made): it cannot be admitted; reject it"
        )
    qualification = qualify(
        config.qualification, repository.application_of(row), config.version, cultural_fit
    )
    verdict = "approved" if approve_it else "rejected"
    # The partner reads this reason (its history, its status notice): who decided and the note
    # stay with channel managers (`acted_by`, `decision_note`), as everywhere else (found in
    # review: "approved by alice@vendor: weak on security, watch them" reached the partner).
    # Its start, "manual review", is how the programme tells a person's decision (its
    # domain/decisions.py) from the scoring's.
    why = f"manual review: application {verdict} (score {qualification.total})"
    # Keep the outcome 'review' so the history shows a manager decided; the score is re-explained.
    row = await record_version(
        conn,
        outbox,
        row,
        Change.UPDATED,
        by=by,
        reason=f"manager input recorded; {qualification.explanation}",
        at=at,
        qualification=repository.qualification_json(qualification),
        decision_note=note,
    )
    if approve_it:
        return await approve(conn, outbox, config, row, why, at, by=by)
    return await reject(conn, outbox, row, why, at, by=by)


# Applications awaiting a manager that may be past their deadline (the business-day deadline is
# never earlier than as many calendar days) and were not escalated yet; instances share the work.
_MAYBE_OVERDUE_SQL = """
SELECT partner_id, company_name, applied_at FROM partners
WHERE status = 'applied' AND qualification_outcome IN ('review', 'approve')
  AND review_escalated_at IS NULL AND applied_at <= $1
ORDER BY applied_at LIMIT 500 FOR UPDATE SKIP LOCKED
"""


async def escalate_overdue_reviews(
    pool: Pool, outbox: Outbox, config: OnboardingConfig, at: datetime
) -> list[str]:
    """Tell the reviewers, once per application, of those past their review deadline at `at`;
    returns their partner ids."""
    escalated: list[str] = []
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(_MAYBE_OVERDUE_SQL, at - timedelta(days=config.review_days))
        notes = []
        for row in rows:
            due = config.review_due_at(row["applied_at"])
            if due > at:
                continue
            await conn.execute(
                "UPDATE partners SET review_escalated_at = $2 WHERE partner_id = $1",
                row["partner_id"],
                at,
            )
            escalated.append(row["partner_id"])
            notes.append(
                notify(
                    row["partner_id"],
                    NotificationKindV2.REVIEW_ESCALATED,
                    about=f"{row['partner_id']}/application-review/{due.isoformat()}",
                    recipient=REVIEWERS,
                    subject=f"Overdue review: application of {row['company_name']}",
                    body=f"review was due {due.isoformat()} ({config.review_days} business days"
                    f" after the application of {row['applied_at'].isoformat()})",
                )
            )
        await outbox.publish_many(conn, notes)
    return escalated
