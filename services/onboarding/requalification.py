"""Requalification of the partners in the program (on the schedule, `jobs.py`, and on a
channel manager's demand), each in its own transaction, so one partner's failure neither
blocks nor undoes the others."""

from __future__ import annotations

from datetime import datetime

from services.onboarding import repository
from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.lifecycle import NOT_EVALUATED
from services.onboarding.partner_runs import each_partner
from services.onboarding.reassessment import refresh
from services.onboarding.repository import SERVICE
from shared.db import Connection, Pool
from shared.outbox import Outbox


async def run_requalification(
    pool: Pool,
    outbox: Outbox,
    config: OnboardingConfig,
    as_of: datetime,
    partner_ids: list[str] | None = None,
    *,
    by: str = SERVICE,
) -> dict[str, list[str]]:
    """Requalify every evaluated partner (or the given ones) as of `as_of`, the changes
    recorded as `by`'s (the scheduled job's, or the channel manager who asked). Returns the
    changes per partner that changed (`["error"]` for one that failed, logged)."""

    async def requalify(conn: Connection, partner_id: str) -> list[str]:
        changes = await refresh(conn, outbox, config, partner_id, as_of=as_of, acted_by=by)
        return [change.value for change in changes]

    ids = await repository.partners_to_requalify(pool, NOT_EVALUATED, partner_ids)
    return await each_partner(pool, ids, "requalification", requalify)
