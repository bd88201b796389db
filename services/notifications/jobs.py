"""Periodic work of notifications: mails out, digests gathered."""

from __future__ import annotations

from datetime import timedelta

from services.notifications import emailing, repository
from services.notifications.settings import NotificationsSettings
from shared.clock import now
from shared.service import Platform


async def send_emails(platform: Platform) -> int:
    """Send the mails that are due (none without an SMTP host). Returns how many went."""
    settings = platform.provisions.get(NotificationsSettings)
    smtp = settings.smtp()
    if smtp is None:
        return 0
    return await emailing.send_due(
        platform.pool,
        smtp,
        settings.email_retry_policy(),
        settings.email_lease_seconds,
        timedelta(hours=settings.email_give_up_hours),
    )


async def purge_delivered(platform: Platform) -> int:
    """Delete the webhook deliveries delivered, and the mails sent or given up, longer ago than
    the retention (their attempts with them). Returns how many rows went."""
    settings = platform.provisions.get(NotificationsSettings)
    before = now() - timedelta(days=settings.delivery_retention_days)
    return await repository.purge_delivered(platform.pool, before)


async def gather_digests(platform: Platform) -> int:
    """Queue one digest mail per recipient with messages waiting, once a digest period has
    passed since any instance did. Returns how many."""
    settings = platform.provisions.get(NotificationsSettings)
    every = timedelta(seconds=settings.email_digest_seconds)
    return await emailing.gather_digests(platform.pool, every)
