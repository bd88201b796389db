"""HTTP API of the partner directory: every partner, filtered by tier, status and type and
paged, for the channel team (the console's partners list)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from services.onboarding import directory_views
from services.onboarding.directory_schemas import PartnerDirectoryOut
from shared.events.partners import PartnerStatus, PartnerType
from shared.http import AdminDep, PlatformDep, api_router
from shared.inputs import Code, Name

directory = api_router(tags=["partners"])

PAGE_MAX = 200


@directory.get("/admin/partners", response_model=PartnerDirectoryOut)
async def list_directory(
    who: AdminDep,
    platform: PlatformDep,
    tier: Annotated[Code | None, Query()] = None,
    status: PartnerStatus | None = None,
    partner_type: PartnerType | None = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
    q: Annotated[
        Name | None,
        Query(description="a part of the company name or domain (any case), or a partner id"),
    ] = None,
) -> PartnerDirectoryOut:
    """Every partner (any status), by company name, with the filters given; `total` counts the
    partners matching them."""
    return await directory_views.directory(
        platform.pool,
        tier=tier,
        status=status.value if status else None,
        partner_type=partner_type.value if partner_type else None,
        offset=offset,
        limit=limit,
        search=q,
    )
