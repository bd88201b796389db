"""HTTP API of deals: partner registrations (partners see only their own), CRM ingestion.

No `from __future__ import annotations` here: FastAPI resolves the dependency annotations
defined inside build_router at definition time.
"""

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field

from services.deals.adapters import (
    AdapterError,
    from_aws_ace,
    from_hubspot,
    from_microsoft_referral,
    from_salesforce_cdc,
)
from services.deals.domain.rules import RegistrationRequest, RulesOfEngagement, extend
from services.deals.registrations import (
    change_status,
    decide,
    now,
    register,
    run_expiry,
)
from services.deals.settings import DealsSettings
from shared.auth import Caller, caller_dependency, partner_token
from shared.events.crm import CrmDealChanged
from shared.events.registrations import RegistrationStatus
from shared.outbox import OutgoingEvent
from shared.service import Platform
from shared.topics import CRM_DEALS

CRM_EVENT_NAMESPACE = uuid.UUID("0b6d3f0e-5a7c-4a43-9d0e-2b1f6c9a8e21")


class RegistrationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_name: str = Field(min_length=2, max_length=200)
    customer_domain: str | None = Field(default=None, max_length=253)
    customer_country: str | None = Field(default=None, pattern="^[A-Z]{2}$")
    products: list[str] = Field(min_length=1, max_length=50)
    amount: Decimal = Field(gt=0, max_digits=16, decimal_places=2)
    currency: str = Field(pattern="^[A-Z]{3}$")
    crm_deal_key: str | None = Field(
        default=None, description="source:source_id of the CRM opportunity"
    )


def _registration_out(row: Any) -> dict[str, Any]:
    out = dict(row)
    out["conflicts"] = json.loads(out["conflicts"])
    out["inputs"] = json.loads(out["inputs"])
    out["amount"] = str(out["amount"])
    return out


def build_router(
    platform: Platform, settings: DealsSettings, policy: RulesOfEngagement
) -> APIRouter:
    router = APIRouter()

    caller = caller_dependency(
        platform.settings.partner_token_secret, platform.settings.admin_token
    )

    AuthenticatedCaller = Annotated[Caller, Depends(caller)]  # noqa: N806 (a type alias)

    def as_request(
        body: RegistrationIn, who: Caller, partner_id: str | None
    ) -> RegistrationRequest:
        acting = who.partner_id or partner_id
        if acting is None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY, "admin registrations must name partner_id"
            )
        return RegistrationRequest(
            partner_id=acting,
            customer_name=body.customer_name,
            customer_domain=body.customer_domain,
            customer_country=body.customer_country,
            products=frozenset(body.products),
            amount=body.amount,
            currency=body.currency,
            submitted_at=now(),
        )

    @router.post("/registrations", status_code=201, tags=["registrations"])
    async def create_registration(
        body: RegistrationIn, who: AuthenticatedCaller, partner_id: str | None = None
    ) -> dict[str, Any]:
        request = as_request(body, who, partner_id)
        async with platform.pool.acquire() as conn, conn.transaction():
            registration_id, decision = await register(
                conn, platform.outbox, policy, request, body.crm_deal_key
            )
        return {
            "registration_id": registration_id,
            "status": decision.status.value,
            "reasons": list(decision.reasons),
            "conflicts": [c.model_dump(mode="json") for c in decision.conflicts],
            "policy_version": decision.policy_version,
            "expires_at": decision.expires_at.isoformat() if decision.expires_at else None,
        }

    @router.post("/registrations/check", tags=["registrations"])
    async def dry_run(
        body: RegistrationIn, who: AuthenticatedCaller, partner_id: str | None = None
    ) -> dict[str, Any]:
        """Would this registration conflict? Decides without registering anything."""
        request = as_request(body, who, partner_id)
        async with platform.pool.acquire() as conn:
            decision = await decide(conn, policy, request)
        return {
            "would_be": decision.status.value,
            "reasons": list(decision.reasons),
            "conflicts": [c.model_dump(mode="json") for c in decision.conflicts],
            "policy_version": decision.policy_version,
        }

    @router.get("/registrations", tags=["registrations"])
    async def list_registrations(
        who: AuthenticatedCaller, limit: int = 100
    ) -> list[dict[str, Any]]:
        rows = await platform.pool.fetch(
            """SELECT * FROM registrations WHERE ($1::text IS NULL OR partner_id = $1)
               ORDER BY submitted_at DESC LIMIT $2""",
            who.partner_id,
            min(max(limit, 1), 500),
        )
        return [_registration_out(r) for r in rows]

    async def own_registration(
        conn: Any, registration_id: str, who: Caller, lock: bool = False
    ) -> Any:
        row = await conn.fetchrow(
            "SELECT * FROM registrations WHERE registration_id = $1"
            + (" FOR UPDATE" if lock else ""),
            registration_id,
        )
        # Another partner's registration is indistinguishable from a missing one.
        if row is None or (not who.is_admin and row["partner_id"] != who.partner_id):
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"registration {registration_id} not found"
            )
        return row

    @router.get("/registrations/{registration_id}", tags=["registrations"])
    async def get_registration(registration_id: str, who: AuthenticatedCaller) -> dict[str, Any]:
        async with platform.pool.acquire() as conn:
            return _registration_out(await own_registration(conn, registration_id, who))

    @router.post("/registrations/{registration_id}/extension", tags=["registrations"])
    async def request_extension(registration_id: str, who: AuthenticatedCaller) -> dict[str, Any]:
        async with platform.pool.acquire() as conn, conn.transaction():
            row = await own_registration(conn, registration_id, who, lock=True)
            new_expiry, why = extend(
                policy, row["expires_at"], row["extensions_used"], RegistrationStatus(row["status"])
            )
            if new_expiry is None:
                raise HTTPException(status.HTTP_409_CONFLICT, why)
            await conn.execute(
                "UPDATE registrations SET extensions_used = extensions_used + 1 WHERE registration_id = $1",
                registration_id,
            )
            await change_status(
                conn, platform.outbox, row, RegistrationStatus.APPROVED, why, expires_at=new_expiry
            )
        return {
            "registration_id": registration_id,
            "expires_at": new_expiry.isoformat(),
            "reason": why,
        }

    @router.post("/registrations/{registration_id}/review", tags=["registrations"])
    async def review(
        registration_id: str, who: AuthenticatedCaller, approve: bool, note: str = ""
    ) -> dict[str, Any]:
        if not who.is_admin:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "only channel managers review registrations"
            )
        async with platform.pool.acquire() as conn, conn.transaction():
            row = await own_registration(conn, registration_id, who, lock=True)
            if row["status"] != RegistrationStatus.PENDING_REVIEW.value:
                raise HTTPException(
                    status.HTTP_409_CONFLICT, f"registration is {row['status']}, not pending_review"
                )
            outcome = RegistrationStatus.APPROVED if approve else RegistrationStatus.REJECTED
            await change_status(
                conn, platform.outbox, row, outcome, f"manual review: {note or outcome.value}"
            )
        return {"registration_id": registration_id, "status": outcome.value}

    # ---- CRM ingestion: payloads exactly as each source delivers them.
    async def ingest(changes: list[CrmDealChanged]) -> dict[str, Any]:
        """Record the changes on crm.deals.v1 in one statement; `accepted` counts those not
        recorded before (a repeated delivery, or a repeat within the request, is not)."""
        events = [
            OutgoingEvent(
                CRM_DEALS,
                change,
                subject=change.deal_key,
                # The id derives from the source's own event id: a repeated delivery is the same event.
                event_id=uuid.uuid5(
                    CRM_EVENT_NAMESPACE, f"{change.source.value}/{change.source_event_id}"
                ),
            )
            for change in changes
        ]
        async with platform.pool.acquire() as conn, conn.transaction():
            recorded = await platform.outbox.publish_many(conn, events)
        return {"accepted": len(recorded)}

    async def parse(request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw)
        except json.JSONDecodeError as error:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"malformed JSON: {error}") from error

    def adapt(adapter: Any, payload: Any) -> list[CrmDealChanged]:
        try:
            changes: list[CrmDealChanged] = adapter(payload)
        except AdapterError as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(error)) from error
        except ValueError as error:  # pydantic validation of the canonical change
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY, f"cannot build canonical deal: {error}"
            ) from error
        return changes

    @router.post("/crm/salesforce", status_code=202, tags=["crm"])
    async def salesforce(request: Request) -> dict[str, Any]:
        payload = await parse(request)
        events = payload if isinstance(payload, list) else [payload]
        return await ingest([c for event in events for c in adapt(from_salesforce_cdc, event)])

    @router.post("/crm/hubspot", status_code=202, tags=["crm"])
    async def hubspot(
        request: Request,
        x_hubspot_signature_v3: Annotated[str | None, Header()] = None,
        x_hubspot_request_timestamp: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        raw = await request.body()
        if settings.hubspot_client_secret:
            if not x_hubspot_signature_v3 or not x_hubspot_request_timestamp:
                raise HTTPException(
                    status.HTTP_401_UNAUTHORIZED,
                    "X-HubSpot-Signature-v3 and X-HubSpot-Request-Timestamp are required",
                )
            if (
                abs(datetime.now(UTC).timestamp() * 1000 - int(x_hubspot_request_timestamp))
                > 5 * 60 * 1000
            ):
                raise HTTPException(
                    status.HTTP_401_UNAUTHORIZED,
                    "X-HubSpot-Request-Timestamp is older than 5 minutes",
                )
            message = f"POST{request.url}{raw.decode()}{x_hubspot_request_timestamp}".encode()
            expected = base64.b64encode(
                hmac.new(settings.hubspot_client_secret.encode(), message, hashlib.sha256).digest()
            ).decode()
            if not hmac.compare_digest(expected, x_hubspot_signature_v3):
                raise HTTPException(
                    status.HTTP_401_UNAUTHORIZED, "X-HubSpot-Signature-v3 does not match"
                )
        return await ingest(adapt(from_hubspot, await parse(request)))

    @router.post("/crm/aws-ace", status_code=202, tags=["crm"])
    async def aws_ace(request: Request) -> dict[str, Any]:
        payload = await parse(request)
        # Accept the fetched GetOpportunity response, or {event, getOpportunity} as a fetcher relays it.
        opportunity = (
            payload.get("getOpportunity", payload) if isinstance(payload, dict) else payload
        )
        return await ingest(adapt(from_aws_ace, opportunity))

    @router.post("/crm/microsoft", status_code=202, tags=["crm"])
    async def microsoft(request: Request) -> dict[str, Any]:
        payload = await parse(request)
        referral = payload.get("referral", payload) if isinstance(payload, dict) else payload
        return await ingest(adapt(from_microsoft_referral, referral))

    @router.post("/admin/expiry/run", tags=["admin"])
    async def expire_now(who: AuthenticatedCaller, as_of: datetime | None = None) -> dict[str, Any]:
        """Warn and expire now (or as of a moment, for operations and demos), not waiting for
        the periodic job. Answers how many registrations were warned and expired."""
        if not who.is_admin:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "only channel managers run expiry")
        if as_of is not None and as_of.tzinfo is None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY, "as_of needs a time zone (e.g. ...Z)"
            )
        moment = as_of or now()
        warned, expired = await run_expiry(platform.pool, platform.outbox, policy, moment)
        return {"as_of": moment.isoformat(), "warned": warned, "expired": expired}

    @router.post("/admin/partner-tokens/{partner_id}", tags=["admin"])
    async def issue_token(partner_id: str, who: AuthenticatedCaller) -> dict[str, str]:
        if not who.is_admin:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "only channel managers issue partner tokens"
            )
        return {
            "partner_id": partner_id,
            "token": partner_token(platform.settings.partner_token_secret, partner_id),
        }

    return router
