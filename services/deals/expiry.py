"""Expiry: partners are warned once per protection-window end, and approved registrations past
their window expire. Instances share the work (rows another instance holds are skipped)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.deals import repository
from services.deals.domain.ledger import LedgerWhat, Principal
from services.deals.domain.lifecycle import expiry_warning_days
from services.deals.domain.rules import RulesOfEngagement
from services.deals.status_changes import change_status, entry_for
from shared.db import Connection, Pool
from shared.events.notifications import NotificationKind
from shared.events.registrations import RegistrationStatus
from shared.notify import notify
from shared.outbox import Outbox


@dataclass(frozen=True)
class ExpiryRun:
    """What one expiry run changed."""

    warned: int
    expired: int

    def __bool__(self) -> bool:
        return bool(self.warned or self.expired)


async def run_expiry(
    pool: Pool, outbox: Outbox, policy: RulesOfEngagement, at: datetime
) -> ExpiryRun:
    """Warn partners whose window ends soon and expire the registrations due at `at`, in
    batches (one transaction each) until none is left."""
    warned = expired = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            batch_warned = await warn_expiring(conn, outbox, policy, at)
            batch_expired = await expire_due(conn, outbox, policy, at)
        warned += batch_warned
        expired += batch_expired
        if not batch_warned and not batch_expired:
            return ExpiryRun(warned, expired)


async def warn_expiring(
    conn: Connection, outbox: Outbox, policy: RulesOfEngagement, at: datetime
) -> int:
    """Tell partners, once per protection-window end, that their registration expires soon."""
    rows = await repository.expiring_soon(conn, at + timedelta(days=policy.expiry_warning_days))
    notes = []
    for row in rows:
        expires_at: datetime = row["expires_at"]
        days = expiry_warning_days(expires_at, at)
        if days is None:
            continue  # already due: expiry itself tells the partner
        await repository.mark_warned(conn, row["registration_id"])
        notes.append(
            notify(
                row["partner_id"],
                NotificationKind.EXPIRING_SOON,
                # Once per window end: an extension moves the end and earns a new warning.
                about=f"{row['registration_id']}/{expires_at.isoformat()}",
                subject=f"Registration {row['registration_id']} for {row['customer_name']} expires in {days} day(s)",
                body=f"Protection ends {expires_at.isoformat()}; request an extension if the deal is still active.",
                registration_id=row["registration_id"],
            )
        )
    await outbox.publish_many(conn, notes)
    return len(notes)


async def expire_due(
    conn: Connection, outbox: Outbox, policy: RulesOfEngagement, at: datetime
) -> int:
    """Expire the approved registrations whose window ended by `at` (the expiry job decides)."""
    rows = await repository.due_to_expire(conn, at)
    for row in rows:
        entry = entry_for(
            row,
            LedgerWhat.EXPIRED,
            RegistrationStatus.EXPIRED,
            Principal.system("expiry"),
            policy.version,
            f"protection window ended at {row['expires_at'].isoformat()}",
            evidence={"expires_at": row["expires_at"], "as_of": at},
        )
        await change_status(conn, outbox, row, entry, threshold=policy.name_similarity_threshold)
    return len(rows)
