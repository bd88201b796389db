"""Composition root of the notifications service: the inbox consumer, the live streams'
wake-ups, the webhook deliverer, the e-mail jobs and the HTTP routes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import get_args

from services.notifications import api, handlers, jobs, views
from services.notifications.delivering import Deliverer
from services.notifications.domain.streams import StreamLimit
from services.notifications.settings import NotificationsSettings
from services.notifications.wakeups import InboxWakeups
from services.notifications.webhook_repository import DELIVERY_CHANNEL
from shared.events.incentives import MdfExpired, PayoutRecorded
from shared.events.notifications import AnyPartnerNotification
from shared.service import Platform, ServiceDefinition
from shared.topics import INCENTIVE_LEDGER, PARTNER_NOTIFICATIONS

# How often an instance asks whether digests are due.
DIGEST_CHECK_SECONDS = 60.0
HOUR_SECONDS = 3600.0

log = logging.getLogger(__name__)


def wire(platform: Platform) -> None:
    settings = NotificationsSettings()
    platform.provide(settings)
    platform.provide(StreamLimit(settings.stream_max_per_recipient))
    wakeups = InboxWakeups()
    platform.provide(wakeups)

    async def listen() -> None:
        await wakeups.listen(platform.pool)

    platform.background(listen)

    # Webhooks: queued deliveries wake the deliverer; it also polls for retries falling due.
    queued = InboxWakeups(DELIVERY_CHANNEL)
    deliverer = Deliverer(
        platform.pool, settings, queued, development_mode=platform.settings.development_mode
    )

    async def listen_for_deliveries() -> None:
        await queued.listen(platform.pool)

    platform.background(listen_for_deliveries)
    platform.background(deliverer.run)
    platform.measure(views.webhook_gauges)

    if settings.smtp() is None:
        log.warning("no NOTIFICATIONS_SMTP_HOST: e-mails queue but are not sent")
    platform.every(settings.email_poll_seconds, jobs.send_emails, name="email")
    platform.every(HOUR_SECONDS, jobs.purge_delivered, name="delivery-retention")
    # Often, on every instance: whether digests are due is decided in Postgres, for them all.
    platform.every(
        min(settings.email_digest_seconds, DIGEST_CHECK_SECONDS),
        jobs.gather_digests,
        name="email-digest",
    )

    messages = platform.consumer("inbox", [PARTNER_NOTIFICATIONS])
    # Every version of the contract, filed the same way (v2 on: the kinds the one before
    # cannot name: deals' registration changes, onboarding's reminders, programme's surveys;
    # v5: any kind, by name, such as incentives' pre-approval decisions). The versions are the
    # members of the contract's union, so this list cannot fall behind it.
    for version in get_args(AnyPartnerNotification):
        messages.handles_batch(version)(handlers.on_notifications)
    ledger = platform.consumer("ledger", [INCENTIVE_LEDGER])
    ledger.handles_batch(PayoutRecorded)(handlers.on_payouts)
    ledger.handles_batch(MdfExpired)(handlers.on_mdf_expiry)


definition = ServiceDefinition(
    name="notifications",
    migrations=Path(__file__).parent / "migrations",
    routers=(api.router,),
    wire=wire,
    production_problems=lambda: NotificationsSettings().production_problems(),
)
