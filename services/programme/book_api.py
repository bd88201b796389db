"""HTTP API of the partner projection: a partner account manager's book (their partners with
tier, type, status, health and latest annual review, as the programme's events tell them) and
one partner's standing. For the vendor's channel team; a partner's people see their own
partner's standing."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from services.programme import book
from services.programme.api import ProgrammeReaderDep
from services.programme.book_schemas import ManagerBookOut, ManagerKey, PartnerStandingOut
from shared.errors import NotFound
from shared.events.partners import PartnerType
from shared.http import CallerDep, PlatformDep, api_router, own_partner
from shared.inputs import Ident

partner_book = api_router(tags=["partners"])


@partner_book.get("/managers/{manager}/partners")
async def managers_book(
    manager: ManagerKey,
    who: ProgrammeReaderDep,
    platform: PlatformDep,
    partner_type: Annotated[
        PartnerType | None, Query(description="only partners of this type now")
    ] = None,
    after: Annotated[Ident | None, Query(description="`next_after` of the page before")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> ManagerBookOut:
    """The partners whose account manager is `manager` now (onboarding's latest assignment),
    each with its tier, type and status, latest health score and annual review. A manager with
    no partners has an empty book (no manager is "unknown": onboarding assigns by e-mail).
    A page of `limit` by partner id, after the partner `after`, and the count of them all."""
    kind = partner_type.value if partner_type is not None else None
    async with platform.pool.acquire() as conn:
        partners, total, more = await book.manager_book(conn, manager, kind, after, limit)
    return ManagerBookOut(
        manager=manager,
        partner_type=kind,
        partners=partners,
        total=total,
        next_after=partners[-1].partner_id if more else None,
    )


@partner_book.get("/partners/{partner_id}/standing")
async def partner_standing(
    partner_id: Ident, who: CallerDep, platform: PlatformDep
) -> PartnerStandingOut:
    """The partner now: tier, type, status, account manager, health and annual review."""
    own_partner(who, partner_id)
    async with platform.pool.acquire() as conn:
        found = await book.standing(conn, partner_id)
    if found is None:
        raise NotFound(f"partner {partner_id} is not known to the programme")
    return found
