"""HTTP API of deals: partner registrations (partners see only their own), channel managers'
review and operations, and CRM ingestion (payloads exactly as each source delivers them)."""

import time
from collections import Counter
from dataclasses import asdict
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.responses import JSONResponse

from services.deals import crm_ingestion, verification, views
from services.deals.backtest import backtest as run_backtest
from services.deals.crm_at_intake import ProjectionAtIntake
from services.deals.crm_reconcile import DriftGauge, latest_reports, reconcile
from services.deals.domain.ledger import Principal
from services.deals.domain.rules import RulesOfEngagement
from services.deals.expiry import run_expiry
from services.deals.extension import request_extension
from services.deals.jobs import reconcilers
from services.deals.linking import link_registration
from services.deals.policy import PolicyStore, differences, document_of, parsed
from services.deals.registering import decide, register
from services.deals.review import review
from services.deals.review_sla import run_review_sla
from services.deals.schemas import (
    BacktestChangeOut,
    BacktestIn,
    BacktestOut,
    CheckOut,
    CrmItemOut,
    CrmLinkIn,
    CrmLinkOut,
    DecisionOut,
    ExpiryRunOut,
    ExtensionOut,
    HistoryEntryOut,
    IngestedOut,
    KindCountOut,
    PolicyCheckOut,
    PolicyHistoryOut,
    PolicyIn,
    PolicyOut,
    PolicyVersionOut,
    ReconciliationOut,
    RegistrationIn,
    RegistrationOut,
    ReviewOut,
    ReviewRunOut,
)
from services.deals.settings import DealsSettings
from services.deals.verification import MicrosoftCertificates
from shared.audit import record_action, record_run_asked
from shared.clock import now
from shared.errors import Conflict, Unprocessable
from shared.events.crm import CrmSource
from shared.events.registrations import RegistrationStatus
from shared.http import (
    UNPROCESSABLE_RESPONSE,
    AdminDep,
    CallerDep,
    ErrorOut,
    PlatformDep,
    Provided,
    acting_partner,
    api_router,
    run_moment,
)
from shared.inputs import AsOf, FreeText, Ident, Instant
from shared.service import Platform

router = api_router()
# Each source authenticates as it really delivers (services/deals/verification.py).
CRM_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "missing or wrong source credential or signature"}
}
FORBIDDEN_RESPONSE: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorOut, "description": "a HubSpot portal the platform does not ingest"}
}
crm = api_router(
    prefix="/crm", tags=["crm"], responses={**UNPROCESSABLE_RESPONSE, **CRM_UNAUTHORIZED}
)
admin = api_router(prefix="/admin", tags=["admin"])

StoreDep = Annotated[PolicyStore, Provided(PolicyStore)]


async def _policy_in_force(platform: PlatformDep, store: StoreDep) -> RulesOfEngagement:
    """The rules of engagement in force now: every decision is made (and stored) under it."""
    async with platform.pool.acquire() as conn:
        return await store.in_force(conn, now())


PolicyDep = Annotated[RulesOfEngagement, Depends(_policy_in_force)]
SettingsDep = Annotated[DealsSettings, Provided(DealsSettings)]
CertificatesDep = Annotated[MicrosoftCertificates, Provided(MicrosoftCertificates)]
# A page of a list: out of range is a 422, as on every other service's lists (-1, 0 and 10^23
# were quietly made 1 or 500).
PageLimit = Annotated[int, Query(ge=1, le=500)]


@router.post("/registrations", status_code=201, tags=["registrations"])
async def create_registration(
    body: RegistrationIn,
    who: CallerDep,
    platform: PlatformDep,
    policy: PolicyDep,
    partner_id: Annotated[Ident | None, Query(description="a channel manager's: whose")] = None,
) -> DecisionOut:
    """Register a deal; answers with the decision (201 also when it is a rejection)."""
    request = body.request_for(acting_partner(who, partner_id), now())
    async with platform.transaction() as conn:
        registration_id, decision = await register(
            conn, platform.outbox, policy, request, body.crm_deal_key, Principal.of(who)
        )
        await record_action(conn, who, "registration.register", registration_id)
    return DecisionOut(
        registration_id=registration_id,
        status=decision.status,
        reasons=views.reasons_for(decision, who),
        conflicts=views.conflicts_out(decision.conflicts, who),
        policy_version=decision.policy_version,
        expires_at=decision.expires_at,
    )


@router.post("/registrations/check", tags=["registrations"])
async def dry_run(
    body: RegistrationIn,
    who: CallerDep,
    platform: PlatformDep,
    policy: PolicyDep,
    partner_id: Annotated[Ident | None, Query(description="a channel manager's: whose")] = None,
) -> CheckOut:
    """Would this registration conflict? Decides without registering anything."""
    request = body.request_for(acting_partner(who, partner_id), now())
    async with platform.pool.acquire() as conn:
        decision = await decide(conn, policy, request)
    return CheckOut(
        would_be=decision.status,
        reasons=views.reasons_for(decision, who),
        conflicts=views.conflicts_out(decision.conflicts, who),
        policy_version=decision.policy_version,
    )


@router.get("/registrations", tags=["registrations"])
async def list_registrations(
    who: CallerDep,
    platform: PlatformDep,
    policy: PolicyDep,
    limit: PageLimit = 100,
    status: Annotated[
        list[RegistrationStatus] | None,
        Query(max_length=len(RegistrationStatus), description="only these (repeatable)"),
    ] = None,
    after: Annotated[
        Ident | None, Query(description="the last registration_id of the page before")
    ] = None,
) -> list[RegistrationOut]:
    """The registrations the caller may see (a partner: its own), newest first, a page at a
    time."""
    return await views.registrations(
        platform.pool, who, limit, policy.max_extensions, status, after
    )


@router.get("/registrations/{registration_id}", tags=["registrations"])
async def get_registration(
    registration_id: str, who: CallerDep, platform: PlatformDep, policy: PolicyDep
) -> RegistrationOut:
    return await views.registration(platform.pool, who, registration_id, policy.max_extensions)


@router.get("/registrations/{registration_id}/history", tags=["registrations"])
async def registration_history(
    registration_id: str, who: CallerDep, platform: PlatformDep
) -> list[HistoryEntryOut]:
    """Every decision and status change of the registration, oldest first: what, when, by
    whom, under which policy version, why and on what evidence. Its partner sees its own
    registration's entries as it was told them (no other partner's or rep's identity)."""
    return await views.history(platform.pool, who, registration_id)


@router.post("/registrations/{registration_id}/extension", tags=["registrations"])
async def extend_registration(
    registration_id: str,
    who: CallerDep,
    platform: PlatformDep,
    policy: PolicyDep,
    read_until: Annotated[
        Instant | None,
        Query(
            description="the window's end as the caller read it: extended since (a form sent "
            "twice, two people at once) is a 409, so one request extends once"
        ),
    ] = None,
) -> ExtensionOut:
    """Extend the protection window under policy; 409 with the reason otherwise."""
    async with platform.transaction() as conn:
        expires_at, why = await request_extension(
            conn, platform.outbox, policy, who, registration_id, read_until
        )
        await record_action(conn, who, "registration.extend", registration_id)
    return ExtensionOut(registration_id=registration_id, expires_at=expires_at, reason=why)


@router.post("/registrations/{registration_id}/crm-link", tags=["registrations"])
async def link_to_crm_deal(
    registration_id: str, body: CrmLinkIn, who: CallerDep, platform: PlatformDep, policy: PolicyDep
) -> CrmLinkOut:
    """Link the caller's registration to a CRM deal: the deal must be in the CRM projection,
    on the registration's customer and held by no other registration (409 otherwise); an
    amount that disagrees with the CRM's sends an approved registration to review."""
    async with platform.transaction() as conn:
        status, reason = await link_registration(
            conn, platform.outbox, policy, who, registration_id, body.crm_deal_key
        )
        await record_action(conn, who, "registration.crm_link", registration_id)
    return CrmLinkOut(
        registration_id=registration_id,
        crm_deal_key=body.crm_deal_key,
        status=status,
        reason=reason,
    )


@router.post("/registrations/{registration_id}/review", tags=["registrations"])
async def review_registration(
    registration_id: str,
    who: AdminDep,
    platform: PlatformDep,
    policy: PolicyDep,
    approve: bool,
    note: Annotated[FreeText, Query(max_length=2000)] = "",
) -> ReviewOut:
    """Decide a registration pending review (channel managers); the reviewer and the note are
    kept in the registration's history."""
    async with platform.transaction() as conn:
        outcome = await review(
            conn, platform.outbox, policy, Principal.of(who), registration_id, approve, note
        )
        await record_action(conn, who, "registration.review", registration_id)
    return ReviewOut(registration_id=registration_id, status=outcome)


MULTI_STATUS_RESPONSE: dict[int | str, dict[str, Any]] = {
    207: {"model": IngestedOut, "description": "some items refused: each item's outcome"}
}


async def _ingest(
    platform: Platform,
    source: CrmSource,
    items: list[crm_ingestion.Item],
    request: Request,
    delivery_id: str | None = None,
) -> IngestedOut:
    """Record what an authenticated CRM delivered, item by item, and answer each outcome."""
    delivery = crm_ingestion.Delivery("http", request.url.path, delivery_id)
    async with platform.transaction() as conn:
        outcomes = await crm_ingestion.record_items(
            conn,
            platform.outbox,
            source,
            items,
            now(),
            delivery,
            platform.provisions.get(ProjectionAtIntake),
        )
    counts = Counter(item.outcome for item in outcomes)
    return IngestedOut(
        accepted=counts[crm_ingestion.Outcome.ACCEPTED],
        duplicate=counts[crm_ingestion.Outcome.DUPLICATE],
        stale=counts[crm_ingestion.Outcome.STALE],
        ignored=counts[crm_ingestion.Outcome.IGNORED],
        refused=counts[crm_ingestion.Outcome.REFUSED],
        resync=counts[crm_ingestion.Outcome.RESYNC],
        items=[CrmItemOut.model_validate(asdict(item)) for item in outcomes],
    )


def _multi_status(answer: IngestedOut) -> IngestedOut | JSONResponse:
    """A Standard Webhooks sender retries anything but 2xx: refused items (kept with their
    reasons) are answered 207 with each outcome, so the batch is not resent forever."""
    if not answer.refused:
        return answer
    return JSONResponse(answer.model_dump(mode="json"), status_code=207)


def _single(answer: IngestedOut) -> IngestedOut:
    """A one-item delivery that was refused (and kept) answers 422 with the reason: its
    sender does not retry a 4xx other than 409/429 (EventBridge) and a retry would not help."""
    for item in answer.items:
        if item.outcome == crm_ingestion.Outcome.REFUSED:
            raise Unprocessable(item.reason or "refused")
    return answer


@crm.post(
    "/salesforce", status_code=202, response_model=IngestedOut, responses=MULTI_STATUS_RESPONSE
)
async def salesforce(
    request: Request, platform: PlatformDep, settings: SettingsDep
) -> IngestedOut | JSONResponse:
    """Opportunity Change Data Capture relayed by a subscriber that signs each delivery with
    Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`). Each message
    is answered alone: 202 when none is refused, 207 with each outcome otherwise."""
    raw = await request.body()
    verification.verify_salesforce(settings, raw, request.headers)
    payload = crm_ingestion.parse_json(raw)
    items = crm_ingestion.salesforce_items(payload, now(), settings.salesforce_org)
    delivery_id = request.headers.get("webhook-id")
    return _multi_status(await _ingest(platform, CrmSource.SALESFORCE, items, request, delivery_id))


@crm.post("/hubspot", status_code=202, responses=FORBIDDEN_RESPONSE)
async def hubspot(request: Request, platform: PlatformDep, settings: SettingsDep) -> IngestedOut:
    """A HubSpot webhook batch, signed `X-HubSpot-Signature-v3` with the app's client secret
    (`X-HubSpot-Request-Timestamp` at most 5 minutes old). HubSpot does not retry a 4xx, so a
    batch is answered 202 with each event's outcome: an unreadable event, or one from a portal
    not ingested, is refused (and kept) while its neighbours are recorded; 403 only when no
    event is from a configured portal."""
    raw = await request.body()
    uri = verification.hubspot_uri(
        settings.public_base_url, str(request.base_url), request.url.path, request.url.query
    )
    verification.verify_hubspot(settings, request.method, uri, raw, request.headers, now())
    payload = crm_ingestion.parse_json(raw)
    verification.check_portals(settings, payload)
    items = crm_ingestion.hubspot_items(payload, now(), settings.portals, settings.hubspot_stages)
    return await _ingest(platform, CrmSource.HUBSPOT, items, request)


@crm.post("/aws-ace", status_code=202)
async def aws_ace(request: Request, platform: PlatformDep, settings: SettingsDep) -> IngestedOut:
    """AWS Partner Central through an EventBridge API destination, whose connection sends the
    configured API key header: a Partner Central event (an opportunity event is answered
    `resync` and the opportunity fetched with GetOpportunity; other events are `ignored`), or a
    GetOpportunity answer, bare or as {event, getOpportunity}."""
    verification.verify_aws_ace(settings, request.headers)
    payload = crm_ingestion.parse_json(await request.body())
    items = crm_ingestion.aws_ace_items(payload, now(), settings.ace_catalog, settings.ace_pull)
    return _single(await _ingest(platform, CrmSource.AWS_ACE, items, request))


@crm.post("/microsoft", status_code=202)
async def microsoft(
    request: Request, platform: PlatformDep, settings: SettingsDep, certificates: CertificatesDep
) -> IngestedOut:
    """A Partner Center webhook: `Authorization: Signature <base64>`, RSA over the body by the
    certificate at `X-MS-Certificate-Url` (`X-MS-Signature-Algorithm`, e.g. rsa-sha256). The
    event as Partner Center sends it (a referral's, 'referral-created' or 'referral-updated', is
    answered `resync` and the referral its `ResourceUri` names fetched from the Referrals API;
    other events are `ignored`), or the referral resource, bare or as {webhook, referral}."""
    raw = await request.body()
    await certificates.verify(raw, request.headers, now())
    payload = crm_ingestion.parse_json(raw)
    items = crm_ingestion.microsoft_items(
        payload, now(), settings.microsoft_referrals_url, settings.microsoft_pull
    )
    return _single(await _ingest(platform, CrmSource.MICROSOFT, items, request))


@admin.post("/expiry/run")
async def expire_now(
    who: AdminDep, platform: PlatformDep, policy: PolicyDep, as_of: AsOf | None = None
) -> ExpiryRunOut:
    """Warn and expire now (or as of a moment, for operations and demos), not waiting for
    the periodic job. Answers how many registrations were warned and expired."""
    moment = run_moment(as_of, platform)
    # The run is the periodic job's work, batch by batch; the trail records who asked for it.
    await record_run_asked(platform.pool, who, "expiry.run", moment.isoformat())
    run = await run_expiry(platform.pool, platform.outbox, policy, moment)
    return ExpiryRunOut(as_of=moment, warned=run.warned, expired=run.expired)


@admin.get("/reviews", tags=["registrations"])
async def review_queue(
    who: AdminDep, platform: PlatformDep, policy: PolicyDep, limit: PageLimit = 100
) -> list[RegistrationOut]:
    """The review queue: registrations waiting for review, soonest deadline first, each with
    its `review_due_at` and a hyperscaler referral's `acceptance_due_at`."""
    return await views.review_queue(platform.pool, who, limit, policy.max_extensions)


@admin.post("/reviews/run")
async def review_deadlines_now(
    who: AdminDep, platform: PlatformDep, policy: PolicyDep, as_of: AsOf | None = None
) -> ReviewRunOut:
    """Remind, escalate and decide overdue reviews now (or as of a moment), not waiting for the
    periodic job. Answers how many of each."""
    moment = run_moment(as_of, platform)
    await record_run_asked(platform.pool, who, "reviews.run", moment.isoformat())
    run = await run_review_sla(platform.pool, platform.outbox, policy, moment)
    return ReviewRunOut(
        as_of=moment, reminded=run.reminded, escalated=run.escalated, decided=run.decided
    )


@admin.get("/crm/reconciliations", tags=["crm"])
async def reconciliation_reports(
    who: AdminDep,
    platform: PlatformDep,
    source: Annotated[CrmSource | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[ReconciliationOut]:
    """Drift reports of the periodic reconciliation, newest first (of one source, or all):
    what each run checked, what was missing here, stale here or deleted upstream (with the
    fields that differed) and how many resyncs it queued."""
    reports = await latest_reports(platform.pool, source.value if source else None, limit)
    return [ReconciliationOut.model_validate(asdict(report)) for report in reports]


@admin.post(
    "/crm/reconciliations/run",
    tags=["crm"],
    responses={409: {"model": ErrorOut, "description": "a run of the source is under way"}},
)
async def reconcile_now(
    who: AdminDep,
    platform: PlatformDep,
    settings: SettingsDep,
    source: Annotated[CrmSource, Query()],
) -> ReconciliationOut:
    """Reconcile a CRM's window now, not waiting for the periodic job (Salesforce or HubSpot,
    with its API configured; 409 while another run of it is under way)."""
    reconciler = reconcilers(settings).get(source.value)
    if reconciler is None:
        raise Conflict(f"{source.value} has no API configured to reconcile with")
    window = timedelta(hours=settings.reconcile_window_hours)
    report = await reconcile(platform.pool, reconciler, window)
    async with platform.transaction() as conn:
        await record_action(conn, who, "crm.reconcile", source.value)
    platform.provisions.get(DriftGauge).show(report)
    return ReconciliationOut.model_validate(asdict(report))


@router.get("/policy", tags=["policy"])
async def policy_now(who: CallerDep, platform: PlatformDep, store: StoreDep) -> PolicyOut:
    """The rules of engagement in force now (the whole document), and activations scheduled."""
    return await views.policy_in_force(platform.pool, store, now())


@admin.get("/policy/history", tags=["policy"])
async def policy_history(who: AdminDep, platform: PlatformDep, store: StoreDep) -> PolicyHistoryOut:
    """Every version ever proposed (never edited) and every activation, in order."""
    return await views.policy_history(platform.pool, store)


@admin.post("/policy/validate", tags=["policy"])
async def validate_policy(body: PolicyIn, who: AdminDep, policy: PolicyDep) -> PolicyCheckOut:
    """Would this document be a valid version? 422 with the exact reason otherwise; answers
    what it changes against the version in force. Nothing is stored."""
    proposed = parsed(body.document)
    return PolicyCheckOut(
        version=proposed.version,
        document=document_of(proposed),
        in_force=policy.version,
        changes=differences(policy, proposed),
    )


@admin.post("/policy/backtest", tags=["policy"])
async def backtest_policy(body: BacktestIn, who: AdminDep, platform: PlatformDep) -> BacktestOut:
    """Replay the period's registrations (in their original order, with the facts known when
    each was decided) through a proposed policy: per decision kind how many would change, and
    which, with the reasons both ways. Reads only; changes nothing."""
    proposed = parsed(body.document)
    started = time.perf_counter()
    result = await run_backtest(platform.pool, proposed, body.since, body.until)
    elapsed = (time.perf_counter() - started) * 1000
    return BacktestOut(
        proposed_version=proposed.version,
        since=body.since,
        until=body.until,
        replayed=result.replayed,
        kinds={k: KindCountOut.model_validate(asdict(v)) for k, v in sorted(result.kinds.items())},
        changed=len(result.changes),
        changes=[BacktestChangeOut.model_validate(asdict(c)) for c in result.changes[: body.limit]],
        elapsed_ms=round(elapsed, 1),
    )


@admin.post("/policy/versions", status_code=201, tags=["policy"])
async def propose_policy(
    body: PolicyIn, who: AdminDep, platform: PlatformDep, store: StoreDep
) -> PolicyVersionOut:
    """Store a new version (validated; 409 when the version exists: never edited in place). It
    decides nothing until activated."""
    async with platform.transaction() as conn:
        stored = await store.propose(conn, body.document, who.subject, body.note)
        await record_action(conn, who, "policy.propose", stored["version"])
    return PolicyVersionOut.model_validate(stored)


@admin.post("/policy/versions/{version}/activate", tags=["policy"])
async def activate_policy(
    version: str, who: AdminDep, platform: PlatformDep, store: StoreDep, at: AsOf | None = None
) -> PolicyOut:
    """Put a stored version in force from `at` (default now; never in the past: decisions
    already made stand under the version then in force)."""
    moment = now()
    if at is not None and at < moment:
        raise Unprocessable("at is in the past: a version is activated now or later")
    async with platform.transaction() as conn:
        await store.activate(conn, version, at or moment, who.subject)
        await record_action(conn, who, "policy.activate", version)
    return await views.policy_in_force(platform.pool, store, at or moment)


router.include_router(crm)
router.include_router(admin)
