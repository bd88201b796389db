"""Partner account managers: a channel manager assigns (or reassigns) the vendor's person who
owns a partner's relationship. Recorded with who assigned it (the audit trail of who managed
a partner when), announced as `partner.account_manager_assigned.v1` so other services route a
partner's notifications and business reviews to its manager, and told to the partner."""

from __future__ import annotations

from datetime import datetime

from services.onboarding import programme_repository as store
from services.onboarding import repository
from services.onboarding.announcements import announce_programme_fact
from services.onboarding.domain.lifecycle import check_may_have_manager
from services.onboarding.repository import Row
from shared.audit import record_action
from shared.db import Pool
from shared.events.notifications import NotificationKindV3
from shared.events.partners import PartnerStatus
from shared.events.programme import AccountManagerAssigned
from shared.identity import Caller
from shared.outbox import Outbox


async def assign(
    pool: Pool, outbox: Outbox, partner_id: str, manager: str, note: str, who: Caller, at: datetime
) -> tuple[Row, bool]:
    """Make `manager` the partner's account manager. Returns the partner and whether anything
    changed (the same manager again changes nothing and tells no one)."""
    async with pool.acquire() as conn, conn.transaction():
        row = await repository.lock_partner(conn, partner_id)
        check_may_have_manager(partner_id, PartnerStatus(row["status"]))
        previous = row["account_manager"]
        if previous == manager:
            return row, False
        await store.assign_manager(conn, partner_id, manager, previous, note, who.acting_as, at)
        await record_action(conn, who, "account_manager.assigned", f"{partner_id}:{manager}")
        fact = AccountManagerAssigned(
            partner_id=partner_id,
            manager=manager,
            previous_manager=previous,
            note=note,
            assigned_by=who.acting_as,
            assigned_at=at,
        )
        told = f"{manager} is now your account manager"
        await announce_programme_fact(
            conn,
            outbox,
            fact,
            partner_id,
            NotificationKindV3.PARTNER_MANAGER,
            about=f"{partner_id}/manager/{at.isoformat()}",
            subject=f"{row['company_name']}: {told}",
            told=f"{told}" + (f" (previously {previous})." if previous else "."),
            at=at,
        )
        return await repository.lock_partner(conn, partner_id), True
