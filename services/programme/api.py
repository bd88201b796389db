"""HTTP API of programme: the programme KPIs, for the vendor's channel team and finance (no
partner sees the programme as a whole)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.programme import kpis
from services.programme.domain.quarters import QUARTER_PATTERN, Quarter, QuarterRange
from services.programme.schemas import KpiFiltersOut, KpiReport
from services.programme.views import Filters
from shared.errors import Unprocessable
from shared.events.partners import PartnerType
from shared.http import PlatformDep, require_role
from shared.identity import Caller, Role
from shared.inputs import Ident

router = APIRouter()

ProgrammeReaderDep = Annotated[Caller, require_role(Role.CHANNEL_MANAGER, Role.FINANCE)]
QuarterParam = Annotated[
    str | None, Query(pattern=QUARTER_PATTERN, description="e.g. 2026-Q1", examples=["2026-Q1"])
]
MAX_PARTNERS = 200


def quarter_range(from_quarter: str | None, to_quarter: str | None) -> QuarterRange:
    try:
        return QuarterRange(
            Quarter.parse(from_quarter) if from_quarter else None,
            Quarter.parse(to_quarter) if to_quarter else None,
        )
    except ValueError as error:
        raise Unprocessable(str(error)) from error


@router.get("/kpis", tags=["kpis"])
async def programme_kpis(
    who: ProgrammeReaderDep,
    platform: PlatformDep,
    from_quarter: QuarterParam = None,
    to_quarter: QuarterParam = None,
    tier: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")] = None,
    partner_type: PartnerType | None = None,
    region: Annotated[
        str | None, Query(pattern=r"^[A-Z]{2}$", description="a country (ISO 3166-1 alpha-2)")
    ] = None,
    partner_id: Annotated[
        list[Ident] | None,
        Query(max_length=MAX_PARTNERS, description="only these partners (a manager's book)"),
    ] = None,
) -> KpiReport:
    """Programme KPIs over the quarters asked for (both included; none: all time): partner-
    sourced and -influenced revenue by quarter, tier, type and region; incentive and MDF
    spend against attributed revenue; the share of onboarding and registration decisions
    made without a person and the time to decision; active and churned partners and the time
    to a first deal. README "Programme KPIs" defines each figure."""
    quarters = quarter_range(from_quarter, to_quarter)
    partners = sorted(set(partner_id)) if partner_id else None
    filters = Filters(
        quarters.starts,
        quarters.ends,
        partners,
        tier,
        partner_type.value if partner_type is not None else None,
        region,
    )
    shown = KpiFiltersOut(
        from_quarter=from_quarter,
        to_quarter=to_quarter,
        tier=tier,
        partner_type=filters.partner_type,
        region=region,
        partner_ids=partners or [],
    )
    async with platform.pool.acquire() as conn:
        return await kpis.report(conn, filters, shown)
