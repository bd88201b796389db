"""HTTP API of the programme: the signals onboarding announces (enablement, for attribution's
health score), the programme year (reviews, probation, appeals) and partner account managers."""

from __future__ import annotations

from typing import Annotated

from services.onboarding import programme_views
from services.onboarding.account_managers import assign
from services.onboarding.api import ConfigDep
from services.onboarding.programme_schemas import (
    AccountManagerIn,
    AccountManagerOut,
    AnnouncedOut,
    AppealDecisionIn,
    AppealIn,
    AppealOut,
    ProgrammeOut,
    ProgrammeRunOut,
)
from services.onboarding.programme_year import decide_appeal, file_appeal, run_programme_year
from services.onboarding.schemas import RequalificationIn
from services.onboarding.signals import announce_enablement
from shared.audit import record_run_asked
from shared.clock import now
from shared.http import (
    AdminDep,
    CallerDep,
    PlatformDep,
    api_router,
    own_partner,
    require_role,
    run_moment,
)
from shared.identity import Caller, Role

programme = api_router(tags=["programme"])
admin = api_router(prefix="/admin", tags=["programme"])

# Who may appeal a review: the partner's admins, or a channel manager for the partner (an
# expelled partner's people have lost their access).
AppealerDep = Annotated[Caller, require_role(Role.PARTNER_ADMIN, Role.CHANNEL_MANAGER)]


@admin.post("/enablement-signals/run")
async def run_enablement_announcement(
    who: AdminDep, platform: PlatformDep, config: ConfigDep, body: RequalificationIn | None = None
) -> AnnouncedOut:
    """Measure partners' enablement now (or as of `as_of`) and announce what moved on
    partners.programme.v1 (attribution's health score counts it), not waiting for the job."""
    request = body or RequalificationIn()
    as_of = run_moment(request.as_of, platform)
    await record_run_asked(platform.pool, who, "enablement_signals.run", as_of.isoformat())
    announced = await announce_enablement(
        platform.pool, platform.outbox, config, as_of, request.partner_ids
    )
    return AnnouncedOut(
        as_of=as_of.isoformat(), announced={p: str(s) for p, s in announced.items()}
    )


@admin.post("/programme-year/run")
async def run_programme_year_now(
    who: AdminDep, platform: PlatformDep, config: ConfigDep, body: RequalificationIn | None = None
) -> ProgrammeRunOut:
    """Run the programme year now, or as of `as_of` (drives time): notices due, annual reviews
    due and probations at their deadline, for every partner in the programme or those named."""
    request = body or RequalificationIn()
    as_of = run_moment(request.as_of, platform)
    await record_run_asked(platform.pool, who, "programme_year.run", as_of.isoformat())
    done = await run_programme_year(
        platform.pool, platform.outbox, config, as_of, request.partner_ids, by=who.acting_as
    )
    return ProgrammeRunOut(as_of=as_of.isoformat(), policy_version=config.version, done=done)


@programme.get("/partners/{partner_id}/programme")
async def partner_programme(
    partner_id: str, who: CallerDep, platform: PlatformDep, config: ConfigDep
) -> ProgrammeOut:
    """The partner's programme year: next review, reviews with reasons, plans and appeals, its
    health score, its account manager."""
    own_partner(who, partner_id)
    return await programme_views.programme(platform.pool, config, partner_id, full=who.is_admin)


@programme.post("/partners/{partner_id}/requalification/appeals", status_code=201)
async def appeal_review(
    partner_id: str, body: AppealIn, who: AppealerDep, platform: PlatformDep
) -> AppealOut:
    """Appeal a review's decision (demoted, probation, expelled) within its window: the
    partner's admin, or a channel manager filing it for the partner."""
    own_partner(who, partner_id)
    appeal = await file_appeal(
        platform.pool,
        body.review_id,
        body.grounds,
        partner_scope=partner_id,
        by=who.acting_as,
        at=now(),
    )
    return programme_views.appeal_out(appeal, full=who.is_admin)


@admin.post("/requalification/appeals/{appeal_id}/decision")
async def decide_appeal_now(
    appeal_id: str, body: AppealDecisionIn, who: AdminDep, platform: PlatformDep
) -> AppealOut:
    """A channel manager decides an appeal; upheld reverses the review's outcome."""
    decided = await decide_appeal(
        platform.pool,
        platform.outbox,
        appeal_id,
        upheld=body.upheld,
        note=body.note,
        by=who.acting_as,
        at=now(),
    )
    return programme_views.appeal_out(decided, full=True)


@admin.put("/partners/{partner_id}/account-manager")
async def assign_account_manager(
    partner_id: str, body: AccountManagerIn, who: AdminDep, platform: PlatformDep
) -> AccountManagerOut:
    """Assign or reassign the partner's account manager (recorded with who did it, announced,
    told to the partner); the same manager again changes nothing."""
    _, changed = await assign(
        platform.pool, platform.outbox, partner_id, body.manager.lower(), body.note, who, now()
    )
    return await programme_views.account_manager(platform.pool, partner_id, changed=changed)
