"""HTTP API of attribution: touchpoints reported by partner apps and CRMs, and the read side
(per-deal split with reasons, per-partner revenue, health score). Partners see only their own.

No `from __future__ import annotations` here: FastAPI resolves the dependency annotations
defined inside build_router at definition time.
"""

import uuid
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Response, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.attribution.credits import lock_deal, now, recalculate
from services.attribution.domain.config import AttributionConfig
from services.attribution.domain.models import CannotAttribute
from services.attribution.reports import PERIODS, deal_view, partner_health, partner_revenue
from shared.auth import Caller, caller_dependency, require_admin
from shared.service import Platform

TOUCHPOINT_NAMESPACE = uuid.UUID("3c2e9a55-0b7d-4f16-a1c4-8e6d5f2b9a07")
# Clocks differ: a touchpoint may be stamped slightly ahead of ours, not more.
CLOCK_SKEW = timedelta(minutes=5)


class ReportedKind(StrEnum):
    """What partner apps and CRMs may report (sourcing comes only from approved registrations)."""

    REFERRAL = "referral"
    CO_SELL_MEETING = "co_sell_meeting"
    TECHNICAL_VALIDATION = "technical_validation"
    MARKETPLACE_TRANSACTION = "marketplace_transaction"
    IMPLEMENTATION = "implementation"


class TouchpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deal_key: str = Field(min_length=3, max_length=200, pattern=r"^[a-z_]+:.+$")
    partner_id: str | None = Field(
        default=None, min_length=1, max_length=100, description="required for admin callers"
    )
    kind: ReportedKind
    occurred_at: AwareDatetime
    source: str = Field(min_length=1, max_length=100, description="reporting system, e.g. crm-x")
    external_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="the source's own id: the same (source, external_id) is recorded once",
    )


def build_router(platform: Platform, config: AttributionConfig) -> APIRouter:
    router = APIRouter()
    caller = caller_dependency(
        platform.settings.partner_token_secret, platform.settings.admin_token
    )
    AuthenticatedCaller = Annotated[Caller, Depends(caller)]  # noqa: N806 (a type alias)

    def may_read(who: Caller, partner_id: str) -> None:
        if not who.may_see(partner_id):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "partners may only read their own figures"
            )

    @router.post("/touchpoints", status_code=201, tags=["touchpoints"])
    async def report_touchpoint(
        body: TouchpointIn, who: AuthenticatedCaller, response: Response
    ) -> dict[str, Any]:
        if who.partner_id is not None and body.partner_id not in (None, who.partner_id):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "a partner may report touchpoints only for itself"
            )
        partner_id = who.partner_id or body.partner_id
        if partner_id is None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY, "admin touchpoints must name partner_id"
            )
        received_at = now()
        if body.occurred_at > received_at + CLOCK_SKEW:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY,
                f"occurred_at {body.occurred_at.isoformat()} is in the future",
            )
        touchpoint_id = (
            f"tp_{uuid.uuid5(TOUCHPOINT_NAMESPACE, f'{body.source}/{body.external_id}').hex[:24]}"
            if body.external_id
            else f"tp_{uuid.uuid4().hex[:24]}"
        )
        async with platform.pool.acquire() as conn, conn.transaction():
            await lock_deal(conn, body.deal_key)
            existing = await conn.fetchrow(
                "SELECT * FROM touchpoints WHERE touchpoint_id = $1", touchpoint_id
            )
            if existing is not None:
                same = (
                    existing["deal_key"],
                    existing["partner_id"],
                    existing["kind"],
                    existing["occurred_at"],
                ) == (body.deal_key, partner_id, body.kind.value, body.occurred_at)
                if not same:
                    raise HTTPException(
                        status.HTTP_409_CONFLICT,
                        f"external_id {body.external_id!r} from {body.source!r} was already "
                        f"reported for a different touchpoint ({touchpoint_id})",
                    )
                response.status_code = status.HTTP_200_OK
                return {"touchpoint_id": touchpoint_id, "created": False, "settlement": None}
            await conn.execute(
                """INSERT INTO touchpoints (touchpoint_id, deal_key, partner_id, kind, occurred_at,
                       source, origin, external_id, reported_by, received_at)
                   VALUES ($1, $2, $3, $4, $5, $6, 'api', $7, $8, $9)""",
                touchpoint_id,
                body.deal_key,
                partner_id,
                body.kind.value,
                body.occurred_at,
                body.source,
                body.external_id,
                who.partner_id or "admin",
                received_at,
            )
            try:
                settlement = await recalculate(
                    conn,
                    platform.outbox,
                    config,
                    body.deal_key,
                    at=received_at,
                    trigger=f"late touchpoint {touchpoint_id} ({body.kind.value} by {partner_id})",
                    ingested_at=received_at,
                )
            except CannotAttribute as error:  # rolls the touchpoint back too
                raise HTTPException(
                    status.HTTP_409_CONFLICT, f"deal {body.deal_key} cannot be attributed: {error}"
                ) from error
        return {
            "touchpoint_id": touchpoint_id,
            "created": True,
            "settlement": None
            if settlement is None
            else {
                "explanation": settlement.explanation,
                "locked": settlement.locked,
                "reversed": [c.credit_id for c in settlement.reverse],
                "issued": [
                    {"partner_id": x.partner_id, "kind": x.kind.value, "amount": str(x.amount)}
                    for x in settlement.issue
                ],
            },
        }

    @router.get("/deals/{deal_key}/attribution", tags=["queries"])
    async def get_deal(deal_key: str, who: AuthenticatedCaller) -> dict[str, Any]:
        async with platform.pool.acquire() as conn:
            view = await deal_view(conn, deal_key, who.partner_id)
        if view is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"deal {deal_key} not found")
        return view

    @router.get("/partners/{partner_id}/revenue", tags=["queries"])
    async def get_revenue(
        partner_id: str,
        who: AuthenticatedCaller,
        period: str = "month",
        since: date | None = None,
        until: date | None = None,
    ) -> dict[str, Any]:
        may_read(who, partner_id)
        if period not in PERIODS:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY,
                f"period must be one of {', '.join(PERIODS)}, not {period!r}",
            )
        if since and until and since > until:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "since is after until")
        async with platform.pool.acquire() as conn:
            return await partner_revenue(conn, config, partner_id, period, since, until)

    @router.get("/partners/{partner_id}/health", tags=["queries"])
    async def get_health(partner_id: str, who: AuthenticatedCaller) -> dict[str, Any]:
        may_read(who, partner_id)
        async with platform.pool.acquire() as conn:
            inputs, score = await partner_health(conn, config, partner_id, datetime.now(UTC).date())
        return {
            "partner_id": partner_id,
            "score": str(score.score),
            "components": {
                "revenue": str(score.revenue),
                "win_rate": str(score.win_rate),
                "velocity": str(score.velocity),
                "penalty": str(score.penalty),
            },
            "inputs": {
                "revenue": str(inputs.revenue),
                "won": inputs.won,
                "lost": inputs.lost,
                "days_to_close": list(inputs.days_to_close),
                "conflicts": inputs.conflicts,
                "rejections": inputs.rejections,
                "expiries": inputs.expiries,
            },
            "reasons": list(score.reasons),
            "config_version": config.version,
        }

    @router.get("/config", tags=["config"])
    async def get_config(who: AuthenticatedCaller) -> dict[str, Any]:
        require_admin(who)
        return config.model_dump(mode="json")

    return router
