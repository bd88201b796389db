"""Requalification of the partners in the program (on the schedule, `jobs.py`, and on a
channel manager's demand), each in its own transaction, so one partner's failure neither
blocks nor undoes the others."""

from __future__ import annotations

import logging
from datetime import datetime

from services.onboarding import repository
from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.lifecycle import NOT_EVALUATED
from services.onboarding.reassessment import refresh
from shared.db import Pool
from shared.outbox import Outbox

log = logging.getLogger(__name__)


async def run_requalification(
    pool: Pool,
    outbox: Outbox,
    config: OnboardingConfig,
    as_of: datetime,
    partner_ids: list[str] | None = None,
) -> dict[str, list[str]]:
    """Requalify every evaluated partner (or the given ones) as of `as_of`. Returns the changes
    per partner that changed (`["error"]` for one that failed, logged)."""
    results: dict[str, list[str]] = {}
    for partner_id in await repository.partners_to_requalify(pool, NOT_EVALUATED, partner_ids):
        try:
            async with pool.acquire() as conn, conn.transaction():
                changes = [
                    change.value
                    for change in await refresh(conn, outbox, config, partner_id, as_of=as_of)
                ]
        except Exception:
            log.exception("requalification failed", extra={"partner_id": partner_id})
            changes = ["error"]
        if changes:
            results[partner_id] = changes
    return results
