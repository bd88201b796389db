"""HTTP API of the programme: the signals onboarding announces (enablement, for attribution's
health score), the programme year (reviews, probation, appeals) and partner account managers."""

from __future__ import annotations

from fastapi import APIRouter

from services.onboarding.api import ConfigDep
from services.onboarding.programme_schemas import AnnouncedOut
from services.onboarding.schemas import RequalificationIn
from services.onboarding.signals import announce_enablement
from shared.clock import now
from shared.http import AdminDep, PlatformDep

programme = APIRouter(tags=["programme"])
admin = APIRouter(prefix="/admin", tags=["programme"])


@admin.post("/enablement/announce")
async def run_enablement_announcement(
    _: AdminDep, platform: PlatformDep, config: ConfigDep, body: RequalificationIn | None = None
) -> AnnouncedOut:
    """Measure partners' enablement now (or as of `as_of`) and announce what moved on
    partners.programme.v1 (attribution's health score counts it), not waiting for the job."""
    request = body or RequalificationIn()
    as_of = request.as_of or now()
    announced = await announce_enablement(
        platform.pool, platform.outbox, config, as_of, request.partner_ids
    )
    return AnnouncedOut(
        as_of=as_of.isoformat(), announced={p: str(s) for p, s in announced.items()}
    )
