"""The console's partners: the list (tier, status, health score and its signals; filters by
tier, status, type and health below a score; paged) and a partner's page (history,
certifications, sourced and influenced revenue by quarter, health, earnings). Onboarding's
directory gives the list, attribution the health and revenue, incentives the earnings, each
called with the manager's own token."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from services.portal.api import BackendsDep
from services.portal.backends import BackendRefused, Backends, BackendUnavailable, or_missing
from services.portal.console import ManagerDep
from services.portal.domain import partners as rules
from services.portal.domain.pages import segment
from services.portal.rendering import page
from services.portal.sessions import Session
from shared.events.partners import PartnerStatus, PartnerType

router = APIRouter(prefix="/console/partners")

HEALTH_BATCH = 100  # partners per call to attribution's health of many partners
DIRECTORY_PAGE = 200
SCAN_MAX = 2_000  # partners looked at when filtering by health (the rest are said to exist)
PARTNER_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,199}$"


def _choice(values: list[str]) -> str:
    return f"^({'|'.join(values)})?$"  # empty: the form's "any"


class Filters(BaseModel):
    q: str | None = None
    tier: str | None = None
    status: str | None = None
    partner_type: str | None = None
    below: Decimal | None = None

    def directory(self) -> dict[str, str | None]:
        return {
            "q": self.q,
            "tier": self.tier,
            "status": self.status,
            "partner_type": self.partner_type,
        }


async def with_health(
    backends: Backends, session: Session, partners: list[dict[str, Any]], missing: dict[str, str]
) -> list[dict[str, Any]]:
    """The partners, each with its health answer (`health`), asked for many at once (none while
    attribution does not answer: `missing` says so)."""
    ids = [p["partner_id"] for p in partners]
    batches = [ids[i : i + HEALTH_BATCH] for i in range(0, len(ids), HEALTH_BATCH)]
    asked = asyncio.gather(
        *(
            backends.get(session, "attribution", "/admin/partner-health", partner_id=batch)
            for batch in batches
        )
    )
    answers = await or_missing(asked, "attribution", missing) or []
    health = {h["partner_id"]: h for answer in answers for h in answer}
    return [{**p, "health": health.get(p["partner_id"])} for p in partners]


async def everyone(
    backends: Backends, session: Session, filters: Filters
) -> tuple[list[dict[str, Any]], int]:
    """Every partner matching the directory's filters (up to SCAN_MAX), and how many match."""
    found: list[dict[str, Any]] = []
    total = 0
    while len(found) < SCAN_MAX:
        answer = await backends.get(
            session,
            "onboarding",
            "/admin/partners",
            **filters.directory(),
            offset=len(found),
            limit=DIRECTORY_PAGE,
        )
        found += answer["partners"]
        total = answer["total"]
        if not answer["partners"] or len(found) >= total:
            break
    return found, total


async def listing(
    backends: Backends, session: Session, filters: Filters, offset: int
) -> dict[str, Any]:
    if filters.below is None:
        answer = await backends.get(
            session,
            "onboarding",
            "/admin/partners",
            **filters.directory(),
            offset=offset,
            limit=rules.PAGE,
        )
        missing: dict[str, str] = {}
        rows = await with_health(backends, session, answer["partners"], missing)
        paging = rules.Paging(offset, len(rows), answer["total"])
        return {"rows": rows, "paging": paging, "missing": missing}
    found, matching = await everyone(backends, session, filters)
    # The health filter needs the scores: without attribution it cannot filter (a 503).
    strict: dict[str, str] = {}
    kept = rules.below(await with_health(backends, session, found, strict), filters.below)
    if strict:
        raise BackendUnavailable("attribution", strict["attribution"])
    shown = kept[offset : offset + rules.PAGE]
    return {
        "rows": shown,
        "paging": rules.Paging(offset, len(shown), len(kept)),
        "unscanned": max(0, matching - len(found)),
    }


@router.get("")
async def partners(
    request: Request,
    session: ManagerDep,
    backends: BackendsDep,
    tier: Annotated[str, Query(pattern=r"^([a-z0-9][a-z0-9_-]{0,63})?$")] = "",
    status: Annotated[str, Query(pattern=_choice([s.value for s in PartnerStatus]))] = "",
    partner_type: Annotated[str, Query(pattern=_choice([t.value for t in PartnerType]))] = "",
    below: Annotated[str, Query(pattern=r"^(100|\d{1,2}(\.\d{1,2})?)?$")] = "",
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    q: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    filters = Filters(
        q=q.strip() or None,
        tier=tier or None,
        status=status or None,
        partner_type=partner_type or None,
        below=Decimal(below) if below else None,
    )
    try:
        listed = await listing(backends, session, filters, offset)
        status_code = 200
    except BackendRefused as refused:
        if refused.status != 422:
            raise
        # A search onboarding refuses (punctuation alone, say) is said beside the form, which
        # keeps the filters (found in review: a bare error page without the form).
        listed = {"rows": [], "paging": rules.Paging(offset, 0, 0), "problem": refused.detail}
        status_code = 422
    context = {
        **listed,
        "filters": filters,
        "statuses": [s.value for s in PartnerStatus],
        "types": [t.value for t in PartnerType],
        "query": {k: v for k, v in filters.model_dump().items() if v is not None},
    }
    return page(request, "console_partners.html", context, status=status_code)


async def _maybe(call: Any) -> Any:
    """A service's answer, or None where it knows nothing of the partner (404)."""
    try:
        return await call
    except BackendRefused as refused:
        if refused.status == 404:
            return None
        raise


@router.get("/{partner_id}")
async def partner(
    request: Request,
    partner_id: Annotated[str, Path(pattern=PARTNER_ID)],
    session: ManagerDep,
    backends: BackendsDep,
) -> Response:
    base = f"/partners/{segment(partner_id)}"
    missing: dict[str, str] = {}

    def part(service: str, path: str, **query: Any) -> Any:
        return or_missing(_maybe(backends.get(session, service, path, **query)), service, missing)

    found, certifications, revenue, health, balance, statement = await asyncio.gather(
        backends.get(session, "onboarding", base),
        _maybe(backends.get(session, "onboarding", f"{base}/certifications")),
        part("attribution", f"{base}/revenue", period="quarter"),
        part("attribution", f"{base}/health"),
        part("incentives", f"{base}/balance"),
        part("incentives", f"{base}/statement"),
    )
    context = {
        "partner": found,
        "history": list(reversed(found.get("history") or [])),
        "certifications": certifications or [],
        "revenue": revenue,
        "health": health,
        "balance": balance,
        "statement": statement,
        "recent": list(reversed((statement or {}).get("entries", [])))[:20],
        "missing": missing,
    }
    return page(request, "console_partner.html", context)
