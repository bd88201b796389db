"""Review SLAs: a registration waiting for review gets a deadline on the policy's business
calendar (never after a hyperscaler's acceptance deadline); the reviewers are reminded before
it, the review is escalated at it, and after it (and the grace) the policy's outcome is
recorded as a system decision. Run by the deals periodic job (and POST /admin/reviews/run);
instances share the work (rows another instance holds are skipped)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.deals import repository, review_repository
from services.deals.domain.ledger import LedgerWhat, Principal
from services.deals.domain.lifecycle import window_after_review
from services.deals.domain.rules import RulesOfEngagement
from services.deals.domain.sla import (
    OverdueOutcome,
    ReviewDeadline,
    acceptance_deadline,
    overdue_decision,
    review_deadline,
    review_situation,
)
from services.deals.repository import Row
from services.deals.review import approval_problem
from services.deals.review_repository import (
    mark_review,
    overdue_reviews,
    reviews_to_escalate,
    reviews_to_remind,
)
from services.deals.status_changes import Circumstances, entry_for, record_change
from shared.db import Connection, Pool, from_row
from shared.events.crm import DealStatus
from shared.events.notifications import NotificationKindV2
from shared.events.registrations import RegistrationReviewEscalated, RegistrationStatus
from shared.notify import notify
from shared.outbox import Outbox, OutgoingEvent
from shared.topics import DEAL_REGISTRATIONS

JOB = Principal.system("review-sla")
REVIEWERS = "channel-managers"  # the recipient of reminders and escalations


async def start_review_clock(
    conn: Connection,
    policy: RulesOfEngagement,
    since: datetime,
    conflict_kinds: frozenset[str],
    crm_deal_key: str | None,
) -> ReviewDeadline:
    """The deadline of a review starting at `since` (a linked hyperscaler referral's acceptance
    deadline brings it forward)."""
    accept_by = None
    if crm_deal_key is not None:
        referral = await repository.referral_of(conn, crm_deal_key)
        if referral is not None:
            accept_by = acceptance_deadline(
                referral[0], referral[1], policy.hyperscaler_acceptance_hours
            )
    return review_deadline(
        since,
        review_situation(conflict_kinds),
        policy.review_days,
        policy.business_weekdays,
        policy.holidays,
        accept_by,
    )


@dataclass(frozen=True)
class ReviewRun:
    reminded: int
    escalated: int
    decided: int

    def __bool__(self) -> bool:
        return bool(self.reminded or self.escalated or self.decided)


async def run_review_sla(
    pool: Pool, outbox: Outbox, policy: RulesOfEngagement, at: datetime
) -> ReviewRun:
    """Remind, escalate and decide what is due at `at`, in batches (one transaction each)."""
    reminded = escalated = decided = 0
    skipped: set[str] = set()  # overdue reviews this run may not approve: read once
    while True:
        async with pool.acquire() as conn, conn.transaction():
            seen = len(skipped)
            batch = (
                await _remind(conn, outbox, policy, at),
                await _escalate(conn, outbox, policy, at),
                await _decide_overdue(conn, outbox, policy, at, skipped),
            )
        reminded, escalated, decided = reminded + batch[0], escalated + batch[1], decided + batch[2]
        # A batch that only set reviews aside still read them: the next one reads past them.
        if not any(batch) and len(skipped) == seen:
            return ReviewRun(reminded, escalated, decided)


def _to_reviewers(
    row: Row, kind: NotificationKindV2, about: str, subject: str, body: str
) -> OutgoingEvent:
    return notify(
        row["partner_id"],
        kind,
        about=about,
        recipient=REVIEWERS,
        subject=subject,
        body=body,
        registration_id=row["registration_id"],
    )


def _deadlines(row: Row) -> str:
    text = f"review due {row['review_due_at'].isoformat()}"
    if row["acceptance_due_at"] is not None:
        text += f"; hyperscaler acceptance due {row['acceptance_due_at'].isoformat()}"
    return text


async def _remind(conn: Connection, outbox: Outbox, policy: RulesOfEngagement, at: datetime) -> int:
    horizon = at + timedelta(hours=policy.review_reminder_hours)
    rows = await reviews_to_remind(conn, at, horizon)
    notes = []
    for row in rows:
        await mark_review(conn, row["registration_id"], "review_reminded_at", at)
        notes.append(
            _to_reviewers(
                row,
                NotificationKindV2.REVIEW_REMINDER,
                f"{row['registration_id']}/review-reminder/{row['review_due_at'].isoformat()}",
                f"Review registration {row['registration_id']} for {row['customer_name']}",
                _deadlines(row),
            )
        )
    await outbox.publish_many(conn, notes)
    return len(rows)


async def _escalate(
    conn: Connection, outbox: Outbox, policy: RulesOfEngagement, at: datetime
) -> int:
    """Reviews past their deadline, escalated once: an event, an entry in the registration's
    history, the reviewers, the partner and the direct owners told."""
    rows = await reviews_to_escalate(conn, at)
    for row in rows:
        await mark_review(conn, row["registration_id"], "review_escalated_at", at)
        entry = entry_for(
            row,
            LedgerWhat.ESCALATED,
            RegistrationStatus.PENDING_REVIEW,
            JOB,
            policy.version,
            f"review deadline {row['review_due_at'].isoformat()} passed undecided: escalated",
            evidence={
                "review_due_at": row["review_due_at"],
                "acceptance_due_at": row["acceptance_due_at"],
                "overdue_outcome": policy.review_overdue_outcome.value,
            },
        )
        events = await record_change(
            conn, row, entry, Circumstances(threshold=policy.name_similarity_threshold)
        )
        escalated = from_row(
            RegistrationReviewEscalated, row, escalated_at=at, policy_version=policy.version
        )
        events.append(OutgoingEvent(DEAL_REGISTRATIONS, escalated, row["registration_id"]))
        events.append(
            _to_reviewers(
                row,
                NotificationKindV2.REVIEW_ESCALATED,
                f"{row['registration_id']}/review-escalated/{row['review_due_at'].isoformat()}",
                f"Overdue review: registration {row['registration_id']} for {row['customer_name']}",
                f"{_deadlines(row)}; policy outcome: {policy.review_overdue_outcome.value}",
            )
        )
        await outbox.publish_many(conn, events)
    return len(rows)


async def _decide_overdue(
    conn: Connection, outbox: Outbox, policy: RulesOfEngagement, at: datetime, skipped: set[str]
) -> int:
    """Escalated reviews past deadline and grace, decided as the policy says (a system
    decision in the history); under `stay` they wait for a channel manager, and so does one
    the policy would approve that `approval_problem` refuses."""
    outcome = policy.review_overdue_outcome
    if outcome is OverdueOutcome.STAY:
        return 0
    limit = policy.review_auto_approve_limit
    under = limit if outcome is OverdueOutcome.APPROVE_UNDER_LIMIT else None
    due_by = at - timedelta(hours=policy.review_overdue_grace_hours)
    rows = await overdue_reviews(conn, due_by, under, skipped)
    decided_count = 0
    for row in rows:
        decided = overdue_decision(
            outcome, row["amount"], limit, row["review_due_at"], row["conflicted"]
        )
        assert decided is not None  # the query keeps only what the policy decides
        approve, why = decided
        if approve and await approval_problem(conn, policy, row, at) is not None:
            skipped.add(row["registration_id"])  # stays for a channel manager, told why
            continue
        status = RegistrationStatus.APPROVED if approve else RegistrationStatus.REJECTED
        if approve and await repository.won_deal(conn, row["crm_deal_key"]) == DealStatus.WON:
            status = RegistrationStatus.WON
        entry = entry_for(
            row,
            LedgerWhat.AUTO_DECIDED,
            status,
            JOB,
            policy.version,
            why,
            evidence={"review_due_at": row["review_due_at"], "overdue_outcome": outcome.value},
        )
        restarted = (
            window_after_review(
                await review_repository.review_began_at(
                    conn, row["registration_id"], row["submitted_at"]
                ),
                row["expires_at"],
                at,
            )
            if status is RegistrationStatus.APPROVED
            else None
        )
        events = await record_change(
            conn, row, entry, Circumstances(restarted, threshold=policy.name_similarity_threshold)
        )
        await outbox.publish_many(conn, events)
        decided_count += 1
    return decided_count
