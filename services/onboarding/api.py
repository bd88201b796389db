"""HTTP API of onboarding: public application intake, the review queue, checklist,
certifications, partner reads (partners see only themselves), requalification.

No `from __future__ import annotations` here: FastAPI resolves the dependency annotations
defined inside build_router at definition time.
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Response, status
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.onboarding.domain.config import OnboardingConfig
from services.onboarding.domain.lifecycle import IllegalTransition
from services.onboarding.domain.qualification import Application, normalise_domain
from services.onboarding.domain.tiers import Certification, CertificationRole
from services.onboarding.partners import (
    Conflict,
    NotFound,
    add_certification,
    apply_for,
    certification_out,
    complete_item,
    decide_review,
    now,
    partner_out,
    run_requalification,
    set_status,
)
from shared.auth import Caller, caller_dependency, partner_token, require_admin
from shared.events.partners import PartnerStatus, PartnerType
from shared.service import Platform

_CODE = r"^[a-z0-9][a-z0-9_-]{0,63}$"  # product, competency, industry and segment codes


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ContactIn(_In):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[a-zA-Z]{2,}$", max_length=254)
    role: str = Field(default="primary", max_length=100)


class ApplicationIn(_In):
    company_name: str = Field(min_length=2, max_length=200)
    domain: str = Field(min_length=4, max_length=300, description="company web domain")
    partner_type: PartnerType
    regions: list[Annotated[str, Field(pattern="^[A-Z]{2}$")]] = Field(min_length=1, max_length=250)
    products: list[Annotated[str, Field(pattern=_CODE)]] = Field(min_length=1, max_length=50)
    competencies_claimed: list[Annotated[str, Field(pattern=_CODE)]] = Field(
        default_factory=list, max_length=50
    )
    industries: list[Annotated[str, Field(pattern=_CODE)]] = Field(
        default_factory=list, max_length=50
    )
    segments: list[Annotated[str, Field(pattern=_CODE)]] = Field(
        default_factory=list, max_length=10
    )
    annual_revenue: Decimal = Field(ge=0, max_digits=16, decimal_places=2)
    years_in_business: int = Field(ge=0, le=500)
    certified_staff: int = Field(default=0, ge=0, le=1_000_000)
    contacts: list[ContactIn] = Field(min_length=1, max_length=20)

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        return normalise_domain(value)

    def to_domain(self) -> Application:
        return Application(
            company_name=self.company_name,
            domain=self.domain,
            partner_type=self.partner_type,
            regions=frozenset(self.regions),
            products=frozenset(self.products),
            competencies_claimed=frozenset(self.competencies_claimed),
            industries=frozenset(self.industries),
            segments=frozenset(self.segments),
            annual_revenue=self.annual_revenue,
            years_in_business=self.years_in_business,
            certified_staff=self.certified_staff,
        )


class DecisionIn(_In):
    approve: bool
    note: str = Field(default="", max_length=2000)
    cultural_fit: Decimal | None = Field(default=None, ge=0, le=100)


class CertificationIn(_In):
    person_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[a-zA-Z]{2,}$", max_length=254)
    person_name: str | None = Field(default=None, max_length=200)
    role: CertificationRole
    track: str = Field(pattern=_CODE)
    issued_at: datetime
    expires_at: datetime

    @model_validator(mode="after")
    def _dates(self) -> "CertificationIn":
        if self.issued_at.tzinfo is None or self.expires_at.tzinfo is None:
            raise ValueError(
                "issued_at and expires_at need a time zone (e.g. 2026-01-01T00:00:00Z)"
            )
        if self.expires_at <= self.issued_at:
            raise ValueError("expires_at must be after issued_at")
        return self


class StatusIn(_In):
    status: Literal["active", "suspended", "expelled", "onboarding"]
    reason: str = Field(min_length=3, max_length=2000)


class RequalificationIn(_In):
    as_of: datetime | None = Field(
        default=None, description="evaluate as of this moment (default: now)"
    )
    partner_ids: list[str] | None = Field(default=None, max_length=10_000)

    @field_validator("as_of")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("as_of needs a time zone (e.g. 2027-01-01T00:00:00Z)")
        return value


@contextmanager
def _domain_errors() -> Iterator[None]:
    """Domain refusals as precise HTTP errors (the transaction around them rolls back)."""
    try:
        yield
    except NotFound as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from error
    except (IllegalTransition, Conflict) as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error


def build_router(platform: Platform, config: OnboardingConfig) -> APIRouter:
    router = APIRouter()
    caller = caller_dependency(
        platform.settings.partner_token_secret, platform.settings.admin_token
    )
    AuthenticatedCaller = Annotated[Caller, Depends(caller)]  # noqa: N806 (a type alias)

    def visible(who: Caller, partner_id: str) -> None:
        # Another partner's record is indistinguishable from a missing one.
        if not who.may_see(partner_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"partner {partner_id} not found")

    async def fetch_partner(partner_id: str) -> Any:
        row = await platform.pool.fetchrow(
            "SELECT * FROM partners WHERE partner_id = $1", partner_id
        )
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"partner {partner_id} not found")
        return row

    @router.post("/applications", status_code=201, tags=["applications"])
    async def apply(body: ApplicationIn) -> dict[str, Any]:
        """Public intake. A second application from the same domain is not created: 409, and
        nothing about the existing partner is revealed to an unauthenticated caller."""
        declared = body.model_dump(mode="json")
        async with platform.pool.acquire() as conn, conn.transaction():
            row, duplicate = await apply_for(
                conn, platform.outbox, config, body.to_domain(), declared, now()
            )
        if duplicate:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"an application for domain {row['domain']} already exists; "
                "contact your channel manager",
            )
        return {
            "partner_id": row["partner_id"],
            "status": row["status"],
            "duplicate": False,
            "qualification": json.loads(row["qualification"]),
        }

    @router.get("/applications", tags=["applications"])
    async def review_queue(
        who: AuthenticatedCaller, outcome: Literal["review", "approve", "reject"] = "review"
    ) -> list[dict[str, Any]]:
        """Channel managers: applications by qualification outcome (default: awaiting review)."""
        require_admin(who)
        rows = await platform.pool.fetch(
            """SELECT * FROM partners WHERE qualification_outcome = $1
                 AND ($1 <> 'review' OR status = 'applied')
               ORDER BY applied_at LIMIT 500""",
            outcome,
        )
        return [partner_out(r, full=True) for r in rows]

    @router.post("/applications/{partner_id}/decision", tags=["applications"])
    async def decide(partner_id: str, body: DecisionIn, who: AuthenticatedCaller) -> dict[str, Any]:
        require_admin(who)
        with _domain_errors():
            async with platform.pool.acquire() as conn, conn.transaction():
                row = await decide_review(
                    conn,
                    platform.outbox,
                    config,
                    partner_id,
                    approve=body.approve,
                    note=body.note,
                    cultural_fit=body.cultural_fit,
                    at=now(),
                )
        return partner_out(row, full=True)

    @router.get("/partners", tags=["partners"])
    async def list_partners(
        who: AuthenticatedCaller, status_filter: PartnerStatus | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Channel managers see every partner (optionally by status); a partner sees itself."""
        rows = await platform.pool.fetch(
            """SELECT * FROM partners WHERE ($1::text IS NULL OR partner_id = $1)
                 AND ($2::text IS NULL OR status = $2)
               ORDER BY applied_at DESC LIMIT $3""",
            who.partner_id,
            status_filter.value if status_filter else None,
            min(max(limit, 1), 500),
        )
        return [partner_out(r, full=who.is_admin) for r in rows]

    @router.get("/partners/{partner_id}", tags=["partners"])
    async def get_partner(partner_id: str, who: AuthenticatedCaller) -> dict[str, Any]:
        visible(who, partner_id)
        row = await fetch_partner(partner_id)
        out = partner_out(row, full=who.is_admin)
        history = await platform.pool.fetch(
            """SELECT version, change, status, tier, reason, changed_at FROM partner_history
               WHERE partner_id = $1 ORDER BY version""",
            partner_id,
        )
        out["history"] = [certification_out(h) for h in history]
        return out

    @router.post("/partners/{partner_id}/checklist/{item}", tags=["partners"])
    async def complete(partner_id: str, item: str, who: AuthenticatedCaller) -> dict[str, Any]:
        """The partner (or a channel manager) completes an onboarding checklist item."""
        visible(who, partner_id)
        if item not in config.checklist:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY,
                f"unknown checklist item {item!r}; items are {', '.join(config.checklist)}",
            )
        with _domain_errors():
            async with platform.pool.acquire() as conn, conn.transaction():
                row = await complete_item(conn, platform.outbox, config, partner_id, item, now())
        return partner_out(row, full=who.is_admin)

    @router.post("/partners/{partner_id}/certifications", status_code=201, tags=["partners"])
    async def certify(
        partner_id: str, body: CertificationIn, who: AuthenticatedCaller, response: Response
    ) -> dict[str, Any]:
        """Channel managers (or the enablement system with the admin token) record a person's
        certification; competencies, authorisations and the tier follow."""
        require_admin(who)
        known = {c.name for c in config.competencies}
        if body.track not in known:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY,
                f"unknown certification track {body.track!r}; tracks are {', '.join(sorted(known))}",
            )
        certification = Certification(
            body.person_email.lower(), body.role, body.track, body.issued_at, body.expires_at
        )
        with _domain_errors():
            async with platform.pool.acquire() as conn, conn.transaction():
                certification_id, created = await add_certification(
                    conn,
                    platform.outbox,
                    config,
                    partner_id,
                    certification,
                    body.person_name,
                    now(),
                )
        if not created:
            response.status_code = status.HTTP_200_OK
        row = await fetch_partner(partner_id)
        return {
            "certification_id": certification_id,
            "created": created,
            "competencies": sorted(row["competencies"]),
            "tier": row["tier"],
            "status": row["status"],
        }

    @router.get("/partners/{partner_id}/certifications", tags=["partners"])
    async def certifications(partner_id: str, who: AuthenticatedCaller) -> list[dict[str, Any]]:
        visible(who, partner_id)
        await fetch_partner(partner_id)
        rows = await platform.pool.fetch(
            "SELECT * FROM certifications WHERE partner_id = $1 ORDER BY issued_at", partner_id
        )
        return [certification_out(r) for r in rows]

    @router.post("/admin/partners/{partner_id}/status", tags=["admin"])
    async def change_status(
        partner_id: str, body: StatusIn, who: AuthenticatedCaller
    ) -> dict[str, Any]:
        """Suspend, expel or reinstate by hand; illegal lifecycle steps are refused (409)."""
        require_admin(who)
        with _domain_errors():
            async with platform.pool.acquire() as conn, conn.transaction():
                row = await set_status(
                    conn,
                    platform.outbox,
                    config,
                    partner_id,
                    PartnerStatus(body.status),
                    body.reason,
                    now(),
                )
        return partner_out(row, full=True)

    @router.post("/admin/requalification/run", tags=["admin"])
    async def requalify(
        who: AuthenticatedCaller, body: RequalificationIn | None = None
    ) -> dict[str, Any]:
        """Run requalification now, or as of `as_of` (drives time deterministically)."""
        require_admin(who)
        request = body or RequalificationIn()
        as_of = request.as_of or now()
        changes = await run_requalification(
            platform.pool, platform.outbox, config, as_of, request.partner_ids
        )
        return {"as_of": as_of.isoformat(), "policy_version": config.version, "changes": changes}

    @router.get("/admin/config", tags=["admin"])
    async def program_config(who: AuthenticatedCaller) -> dict[str, Any]:
        require_admin(who)
        return config.model_dump(mode="json")

    @router.post("/admin/partner-tokens/{partner_id}", tags=["admin"])
    async def issue_token(partner_id: str, who: AuthenticatedCaller) -> dict[str, str]:
        """A platform-wide partner token for an admitted partner (shared/auth.py)."""
        require_admin(who)
        row = await fetch_partner(partner_id)
        if row["status"] in (PartnerStatus.APPLIED.value, PartnerStatus.REJECTED.value):
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"partner {partner_id} is {row['status']}: tokens are issued once qualified",
            )
        return {
            "partner_id": partner_id,
            "token": partner_token(platform.settings.partner_token_secret, partner_id),
        }

    return router
