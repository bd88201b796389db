"""Continuous requalification of people: reminders before a certification expires, each window
(`certification_reminder_days`) once, to the certified person's partner through the
notifications topic, naming the person and the module that renews it. Run on the schedule (`jobs.py`) and on a channel
manager's demand (tests drive time with `as_of`)."""

from __future__ import annotations

from datetime import datetime

from services.onboarding import enablement_repository as store
from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.enablement import reminder_due
from services.onboarding.domain.lifecycle import NOT_CERTIFIED
from services.onboarding.repository import Row
from shared.db import Pool
from shared.events.notifications import NotificationKindV3
from shared.notify import notify
from shared.outbox import Outbox, OutgoingEvent


async def send_reminders(
    pool: Pool, outbox: Outbox, config: OnboardingConfig, as_of: datetime
) -> list[tuple[str, int]]:
    """Send the reminders due as of `as_of`, in one transaction (a reminder is recorded with
    its notification, so two runs never send one twice). Returns (certification, days before)
    of those sent."""
    if not config.certification_reminder_days:
        return []
    horizon = max(config.certification_reminder_days)
    async with pool.acquire() as conn, conn.transaction():
        expiring = await store.expiring_certifications(conn, as_of, horizon, NOT_CERTIFIED)
        due: dict[tuple[str, int], Row] = {}
        for row in expiring:
            days = reminder_due(
                config.certification_reminder_days, row["expires_at"], as_of, row["sent"]
            )
            if days is not None:
                due[(row["certification_id"], days)] = row
        sent = await store.insert_reminders(conn, list(due), as_of)
        events = [_reminder(config, due[key], key[1], as_of) for key in due if key in sent]
        await outbox.publish_many(conn, events)
    return sorted(sent)


def _reminder(config: OnboardingConfig, row: Row, days: int, at: datetime) -> OutgoingEvent:
    exam = next(
        (
            e
            for e in config.certification_exams
            if e.track == row["track"] and e.role.value == row["role"]
        ),
        None,
    )
    renew = (
        f"complete the renewal module {exam.renewal_activity_id}"
        if exam is not None and exam.renewal_activity_id is not None
        else "pass the exam again"
    )
    who = row["person_name"] or row["person"]
    what = f"{row['track']} {row['role']} certification"
    # To the partner, naming the person: the partner's inbox, webhooks and e-mail are where
    # its people are reached. Addressed to the person's mailbox, the reminder was filed as a
    # vendor-side owner's, which only channel managers read (found in review).
    return notify(
        row["partner_id"],
        # A kind of its own (v3 only): a partner's requalification is another matter.
        NotificationKindV3.CERTIFICATION_EXPIRING,
        about=f"{row['certification_id']}/{days}d",
        subject=f"{who}'s {what} expires within {days} days",
        body=(
            f"{who} ({row['person']}): the {what} expires on "
            f"{row['expires_at'].date().isoformat()}. To keep it, {renew} before then."
        ),
        created_at=at,
    )
