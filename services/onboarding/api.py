"""HTTP API of onboarding: public application intake, the review queue, checklist,
certifications, partner reads (a partner sees only itself: another partner's record answers
404 like a missing one), and the channel managers' admin routes."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import Query, Response, status
from pydantic import AfterValidator

from services.onboarding import views
from services.onboarding.applications import apply_for
from services.onboarding.certifications import add_certification
from services.onboarding.checklist import complete_item, submit_item_evidence
from services.onboarding.domain.checklist import checklist_item
from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.ownership import DomainVerification, verify_domain
from services.onboarding.partner_tokens import TokenIssuing, issue_partner_token
from services.onboarding.requalification import run_requalification
from services.onboarding.review import decide_review, escalate_overdue_reviews
from services.onboarding.schemas import (
    ApplicationIn,
    ApplicationOut,
    CertificationIn,
    CertificationOut,
    CertificationRecordedOut,
    ChecklistIn,
    DecisionIn,
    NextTierOut,
    PartnerOut,
    PartnerTokenOut,
    RequalificationIn,
    RequalificationOut,
    ReviewEscalationsOut,
    StatusIn,
)
from services.onboarding.status_changes import set_status
from shared.audit import record_run_asked
from shared.clock import now
from shared.events.partners import PartnerStatus
from shared.http import (
    PARTNER_OR_MANAGER,
    AdminDep,
    CallerDep,
    PlatformDep,
    Provided,
    PublicIntake,
    api_router,
    own_partner,
    require_role,
    run_moment,
)
from shared.identity import Caller, Role
from shared.inputs import AsOf, Ident, as_ident

ConfigDep = Annotated[OnboardingConfig, Provided(OnboardingConfig)]
# Who confirms evidence: channel managers and system clients (the enablement system).
CONFIRMERS = (Role.CHANNEL_MANAGER, Role.SYSTEM)

router = api_router()  # applications and partners
admin = api_router(prefix="/admin", tags=["admin"])


@router.post("/applications", status_code=201, tags=["applications"], dependencies=[PublicIntake])
async def apply(body: ApplicationIn, platform: PlatformDep, config: ConfigDep) -> ApplicationOut:
    """Public intake: the application claims its domain (`domain_verification` says how to
    prove it). A domain a partner already holds is refused: 409, and nothing about that
    partner is revealed to an unauthenticated caller; a domain only claimed blocks no one."""
    async with platform.transaction() as conn:
        row = await apply_for(
            conn, platform.outbox, config, body.to_domain(), body.model_dump(mode="json"), now()
        )
    return views.application_out(row)


@router.get("/applications", tags=["applications"], response_model_exclude_unset=True)
async def review_queue(
    _: AdminDep,
    platform: PlatformDep,
    config: ConfigDep,
    outcome: Literal["review", "approve", "reject"] = "review",
    after: Annotated[
        Ident | None, Query(description="the last partner_id of the page before")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[PartnerOut]:
    """Channel managers: applications by qualification outcome (default: awaiting review;
    `approve`: recommended, awaiting approval), those waiting with their review deadline
    (`review_due_at`), soonest first; `reject`: those the scoring rejected, the latest first.
    Paged by `after` (422 if it names no application)."""
    return await views.review_queue(platform.pool, outcome, config, after=after, limit=limit)


@router.post(
    "/applications/{partner_id}/decision",
    tags=["applications"],
    response_model_exclude_unset=True,
)
async def decide(
    partner_id: str, body: DecisionIn, who: AdminDep, platform: PlatformDep, config: ConfigDep
) -> PartnerOut:
    """A channel manager approves or rejects an application the scoring did not reject: the
    scoring's recommendation never approves anyone by itself (the figures are self-declared)."""
    async with platform.transaction() as conn:
        row = await decide_review(
            conn,
            platform.outbox,
            config,
            partner_id,
            approve_it=body.approve,
            note=body.note,
            cultural_fit=body.cultural_fit,
            by=who.acting_as,
            at=now(),
        )
    return views.partner_out(row, full=True)


@router.get("/partners", tags=["partners"], response_model_exclude_unset=True)
async def list_partners(
    who: CallerDep,
    platform: PlatformDep,
    status: PartnerStatus | None = None,
    status_filter: Annotated[
        PartnerStatus | None, Query(deprecated=True, description="the former name of `status`")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[PartnerOut]:
    """Channel managers see every partner (optionally by `status`, as every other list names
    it; the channel console's `GET /admin/partners` pages through them all); a partner sees
    itself."""
    return await views.partners(
        platform.pool,
        only=who.partner_id,
        status=status or status_filter,
        limit=limit,
        full=who.is_admin,
    )


@router.get("/partners/{partner_id}", tags=["partners"], response_model_exclude_unset=True)
async def get_partner(partner_id: str, who: CallerDep, platform: PlatformDep) -> PartnerOut:
    own_partner(who, partner_id)
    return await views.partner_with_history(platform.pool, partner_id, full=who.is_admin)


@router.post(
    "/partners/{partner_id}/checklist/{item}",
    tags=["partners"],
    response_model_exclude_unset=True,
    responses={202: {"model": PartnerOut, "description": "evidence submitted: the item waits"}},
)
async def complete(
    partner_id: str,
    item: str,
    who: Annotated[Caller, require_role(*PARTNER_OR_MANAGER, Role.SYSTEM)],
    platform: PlatformDep,
    config: ConfigDep,
    response: Response,
    body: ChecklistIn | None = None,
) -> PartnerOut:
    """A partner completes its own plain checklist items; for an evidence item (the agreement,
    the enablement) it submits evidence (`evidence`: 202, the item stays open) and a channel
    manager or the enablement system (a system client) completes it, confirming that evidence
    or giving its own. A partner's tick of an evidence item: 403."""
    own_partner(who, partner_id)
    item = checklist_item(config, item)
    reference = body.evidence if body is not None else None
    async with platform.transaction() as conn:
        if who.is_partner and reference is not None:
            row = await submit_item_evidence(
                conn, platform.outbox, config, partner_id, item, reference, now(), by=who.acting_as
            )
            response.status_code = status.HTTP_202_ACCEPTED
        else:
            row = await complete_item(
                conn,
                platform.outbox,
                config,
                partner_id,
                item,
                now(),
                by=who.acting_as,
                confirms=who.has(*CONFIRMERS),
                reference=reference,
            )
    return views.partner_out(row, full=who.is_admin)


@router.post(
    "/partners/{partner_id}/domain-verification",
    tags=["partners"],
    response_model_exclude_unset=True,
)
async def verify_partner_domain(
    partner_id: str,
    who: CallerDep,
    platform: PlatformDep,
    verification: Annotated[DomainVerification, Provided(DomainVerification)],
) -> PartnerOut:
    """Check that the partner's claimed domain publishes its token (`domain_verification`):
    the domain is held from then on. Not found: 409, nothing changes."""
    own_partner(who, partner_id)
    row = await verify_domain(
        platform.pool,
        platform.outbox,
        verification.verifier,
        partner_id,
        by=who.acting_as,
        at=now(),
    )
    return views.partner_out(row, full=who.is_admin)


@router.post(
    "/partners/{partner_id}/certifications",
    status_code=201,
    tags=["partners"],
    responses={200: {"model": CertificationRecordedOut, "description": "recorded before"}},
)
async def certify(
    partner_id: str,
    body: CertificationIn,
    who: Annotated[Caller, require_role(*CONFIRMERS)],
    platform: PlatformDep,
    config: ConfigDep,
    response: Response,
) -> CertificationRecordedOut:
    """Channel managers, or the enablement system (a system client), record a person's
    certification; competencies, authorisations and the tier follow. The same one again: 200."""
    certification = body.to_domain(config)
    async with platform.transaction() as conn:
        certification_id, created = await add_certification(
            conn,
            platform.outbox,
            config,
            partner_id,
            certification,
            body.person_name,
            now(),
            by=who.acting_as,
        )
    if not created:
        response.status_code = status.HTTP_200_OK
    return await views.certification_recorded(platform.pool, partner_id, certification_id, created)


@router.get(
    "/partners/{partner_id}/certifications", tags=["partners"], response_model_exclude_unset=True
)
async def certifications(
    partner_id: str, who: CallerDep, platform: PlatformDep
) -> list[CertificationOut]:
    own_partner(who, partner_id)
    return await views.certifications(platform.pool, partner_id, full=who.is_admin)


@admin.post("/partners/{partner_id}/status", response_model_exclude_unset=True)
async def change_status(
    partner_id: str, body: StatusIn, who: AdminDep, platform: PlatformDep, config: ConfigDep
) -> PartnerOut:
    """Suspend, expel or reinstate by hand; illegal lifecycle steps are refused (409)."""
    async with platform.transaction() as conn:
        row = await set_status(
            conn,
            platform.outbox,
            config,
            partner_id,
            PartnerStatus(body.status),
            body.reason,
            who.acting_as,
            now(),
        )
    return views.partner_out(row, full=True)


@admin.post("/requalification/run")
async def requalify(
    who: AdminDep, platform: PlatformDep, config: ConfigDep, body: RequalificationIn | None = None
) -> RequalificationOut:
    """Run requalification now, or as of `as_of` (drives time deterministically on a
    development stack); the changes it makes are the caller's."""
    request = body or RequalificationIn()
    as_of = run_moment(request.as_of, platform)
    await record_run_asked(platform.pool, who, "requalification.run", as_of.isoformat())
    changes = await run_requalification(
        platform.pool, platform.outbox, config, as_of, request.partner_ids, by=who.acting_as
    )
    return RequalificationOut(
        as_of=as_of.isoformat(), policy_version=config.version, changes=changes
    )


@admin.post("/reviews/run")
async def escalate_reviews(
    who: AdminDep, platform: PlatformDep, config: ConfigDep, as_of: AsOf | None = None
) -> ReviewEscalationsOut:
    """Escalate applications past their review deadline now (or as of a moment), not waiting
    for the periodic job: the reviewers are told once per application."""
    moment = run_moment(as_of, platform)
    await record_run_asked(platform.pool, who, "application_reviews.run", moment.isoformat())
    escalated = await escalate_overdue_reviews(platform.pool, platform.outbox, config, moment)
    return ReviewEscalationsOut(as_of=moment.isoformat(), escalated=escalated)


@admin.get("/config")
async def program_config(_: AdminDep, config: ConfigDep) -> OnboardingConfig:
    """The program configuration in force."""
    return config


@admin.post("/partner-tokens/{partner_id}")
async def issue_token(
    partner_id: str,
    who: AdminDep,
    platform: PlatformDep,
    issuing: Annotated[TokenIssuing, Provided(TokenIssuing)],
    # Any letters, no whitespace or control character: the people onboarding admits by an
    # internationalised address (josé@example.com) get a token too (found from outside). An
    # identifier as the token's claim takes it (a bidi control passed the pattern and then
    # answered 500 where the token was made).
    user: Annotated[
        str,
        Query(min_length=1, max_length=200, pattern=r"^[^\s\x00-\x1f\x7f-\x9f]+$"),
        AfterValidator(as_ident),
    ] = "app",
    role: Annotated[Literal["partner_user", "partner_admin"], Query()] = "partner_user",
    ttl_seconds: Annotated[int, Query(ge=60, le=86_400)] = 3600,
) -> PartnerTokenOut:
    """A short-lived platform token (shared/identity.py) for one of an admitted partner's
    people or apps (`user`), as a partner user or partner admin. A suspended or expelled
    partner gets none, and its tokens stop working everywhere."""
    token = await issue_partner_token(
        platform.pool,
        issuing,
        partner_id,
        user=f"{partner_id}/{user}",
        role=Role(role),
        ttl=timedelta(seconds=ttl_seconds),
        by=who.acting_as,
    )
    return PartnerTokenOut(partner_id=partner_id, token=token)


@router.get("/partners/{partner_id}/next-tier", tags=["partners"])
async def next_tier(
    partner_id: str, who: CallerDep, platform: PlatformDep, config: ConfigDep
) -> NextTierOut:
    """What the partner still lacks for the tier above its own (revenue, competencies and the
    certifications each needs) and by when: the grace deadline when one runs, when held
    competencies lapse unrenewed, when revenue leaves the trailing window, the agreement's end."""
    own_partner(who, partner_id)
    return await views.next_tier(platform.pool, config, partner_id, now())
