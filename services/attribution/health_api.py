"""HTTP API of partner health for the channel team: many partners' scores in one call (the
console's partners list shows a page of partners with their health, and filters by it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from services.attribution import views
from services.attribution.api import ConfigDep
from services.attribution.schemas import HealthOut
from shared.clock import now
from shared.http import AdminDep, PlatformDep, api_router
from shared.inputs import Ident

health_scores = api_router(tags=["queries"])

PARTNERS_MAX = 100


@health_scores.get("/admin/partner-health", response_model=list[HealthOut])
async def partners_health(
    who: AdminDep,
    platform: PlatformDep,
    config: ConfigDep,
    partner_id: Annotated[list[Ident], Query(min_length=1, max_length=PARTNERS_MAX)],
) -> list[HealthOut]:
    """The health score, its components, inputs and reasons of each partner named (in the order
    named, each once), as `GET /partners/{partner_id}/health` answers for one. A partner with
    no activity scores 0."""
    today = now().date()
    async with platform.pool.acquire() as conn:
        return await views.partners_health(conn, config, partner_id, today)
