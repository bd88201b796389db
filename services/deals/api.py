"""HTTP API of deals: partner registrations (partners see only their own), channel managers'
review and operations, and CRM ingestion (payloads exactly as each source delivers them)."""

from collections import Counter
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.deals import crm_ingestion, verification, views
from services.deals.domain.rules import RulesOfEngagement
from services.deals.expiry import run_expiry
from services.deals.extension import request_extension
from services.deals.linking import link_registration
from services.deals.registering import decide, register
from services.deals.review import review
from services.deals.schemas import (
    CheckOut,
    CrmItemOut,
    CrmLinkIn,
    CrmLinkOut,
    DecisionOut,
    ExpiryRunOut,
    ExtensionOut,
    IngestedOut,
    RegistrationIn,
    RegistrationOut,
    ReviewOut,
)
from services.deals.settings import DealsSettings
from services.deals.verification import MicrosoftCertificates
from shared.audit import record_action
from shared.clock import now
from shared.errors import Unprocessable
from shared.events.crm import CrmSource
from shared.http import (
    UNPROCESSABLE_RESPONSE,
    AdminDep,
    CallerDep,
    ErrorOut,
    PlatformDep,
    Provided,
    acting_partner,
)
from shared.inputs import Instant
from shared.service import Platform

router = APIRouter()
# Each source authenticates as it really delivers (services/deals/verification.py).
CRM_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "missing or wrong source credential or signature"}
}
FORBIDDEN_RESPONSE: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorOut, "description": "a HubSpot portal the platform does not ingest"}
}
crm = APIRouter(
    prefix="/crm", tags=["crm"], responses={**UNPROCESSABLE_RESPONSE, **CRM_UNAUTHORIZED}
)
admin = APIRouter(prefix="/admin", tags=["admin"])

PolicyDep = Annotated[RulesOfEngagement, Provided(RulesOfEngagement)]
SettingsDep = Annotated[DealsSettings, Provided(DealsSettings)]
CertificatesDep = Annotated[MicrosoftCertificates, Provided(MicrosoftCertificates)]


@router.post("/registrations", status_code=201, tags=["registrations"])
async def create_registration(
    body: RegistrationIn,
    who: CallerDep,
    platform: PlatformDep,
    policy: PolicyDep,
    partner_id: str | None = None,
) -> DecisionOut:
    """Register a deal; answers with the decision (201 also when it is a rejection)."""
    request = body.request_for(acting_partner(who, partner_id), now())
    async with platform.transaction() as conn:
        registration_id, decision = await register(
            conn, platform.outbox, policy, request, body.crm_deal_key
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
    partner_id: str | None = None,
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
    who: CallerDep, platform: PlatformDep, limit: int = 100
) -> list[RegistrationOut]:
    return await views.registrations(platform.pool, who, limit)


@router.get("/registrations/{registration_id}", tags=["registrations"])
async def get_registration(
    registration_id: str, who: CallerDep, platform: PlatformDep
) -> RegistrationOut:
    return await views.registration(platform.pool, who, registration_id)


@router.post("/registrations/{registration_id}/extension", tags=["registrations"])
async def extend_registration(
    registration_id: str, who: CallerDep, platform: PlatformDep, policy: PolicyDep
) -> ExtensionOut:
    """Extend the protection window under policy; 409 with the reason otherwise."""
    async with platform.transaction() as conn:
        expires_at, why = await request_extension(
            conn, platform.outbox, policy, who, registration_id
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
    registration_id: str, who: AdminDep, platform: PlatformDep, approve: bool, note: str = ""
) -> ReviewOut:
    """Decide a registration pending review (channel managers)."""
    async with platform.transaction() as conn:
        outcome = await review(conn, platform.outbox, registration_id, approve, note)
        await record_action(conn, who, "registration.review", registration_id)
    return ReviewOut(registration_id=registration_id, status=outcome)


MULTI_STATUS_RESPONSE: dict[int | str, dict[str, Any]] = {
    207: {"model": IngestedOut, "description": "some items refused: each item's outcome"}
}


async def _ingest(
    platform: Platform, source: CrmSource, items: list[crm_ingestion.Item]
) -> IngestedOut:
    """Record what an authenticated CRM delivered, item by item, and answer each outcome."""
    outcomes = await crm_ingestion.record_items(
        platform.pool, platform.outbox, source, items, now()
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
    items = crm_ingestion.salesforce_items(crm_ingestion.parse_json(raw), now())
    return _multi_status(await _ingest(platform, CrmSource.SALESFORCE, items))


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
    items = crm_ingestion.hubspot_items(payload, now(), settings.portals)
    return await _ingest(platform, CrmSource.HUBSPOT, items)


@crm.post("/aws-ace", status_code=202)
async def aws_ace(request: Request, platform: PlatformDep, settings: SettingsDep) -> IngestedOut:
    """An AWS Partner Central opportunity through an EventBridge API destination, whose
    connection sends the configured API key header."""
    verification.verify_aws_ace(settings, request.headers)
    payload = crm_ingestion.parse_json(await request.body())
    items = crm_ingestion.aws_ace_items(payload, now())
    return _single(await _ingest(platform, CrmSource.AWS_ACE, items))


@crm.post("/microsoft", status_code=202)
async def microsoft(
    request: Request, platform: PlatformDep, certificates: CertificatesDep
) -> IngestedOut:
    """A Partner Center referral webhook: `Authorization: Signature <base64>`, RSA over the body
    by the certificate at `X-MS-Certificate-Url` (`X-MS-Signature-Algorithm`, e.g. rsa-sha256)."""
    raw = await request.body()
    await certificates.verify(raw, request.headers, now())
    items = crm_ingestion.microsoft_items(crm_ingestion.parse_json(raw), now())
    return _single(await _ingest(platform, CrmSource.MICROSOFT, items))


@admin.post("/expiry/run")
async def expire_now(
    who: AdminDep, platform: PlatformDep, policy: PolicyDep, as_of: Instant | None = None
) -> ExpiryRunOut:
    """Warn and expire now (or as of a moment, for operations and demos), not waiting for
    the periodic job. Answers how many registrations were warned and expired."""
    if as_of is not None and as_of.tzinfo is None:
        raise Unprocessable("as_of needs a time zone (e.g. ...Z)")
    moment = as_of or now()
    run = await run_expiry(platform.pool, platform.outbox, policy, moment)
    # The run is the periodic job's work, batch by batch; the trail records who asked for it.
    async with platform.transaction() as conn:
        await record_action(conn, who, "expiry.run", moment.isoformat())
    return ExpiryRunOut(as_of=moment, warned=run.warned, expired=run.expired)


router.include_router(crm)
router.include_router(admin)
