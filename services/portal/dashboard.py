"""The programme dashboard: sourced and influenced revenue by tier and quarter, approval rate
and time to decision, the share of onboarding and registration decisions made automatically,
incentive spend against attributed revenue, top partners.

One function per figure (`revenue_figure`, `registration_figure`, `onboarding_figure`,
`spend_figure`, `top_partners_figure`): each reads what it needs from the services' existing
APIs through `Sources`, which fetches each answer once per page. When a programme KPI API
answers these figures directly, each function is pointed at it alone."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from starlette.responses import Response

from services.portal.api import BackendsDep
from services.portal.backends import BackendRefused, Backends
from services.portal.console import ManagerDep
from services.portal.domain import programme as rules
from services.portal.partners import Filters, everyone
from services.portal.rendering import page
from services.portal.sessions import Session

router = APIRouter(prefix="/console/dashboard")

T = TypeVar("T")
CONCURRENT_CALLS = 16  # calls in flight at once to one service while fetching many answers
REGISTRATIONS_READ = 500  # deals lists the newest 500 at most


class Sources:
    """The services' answers the figures need, fetched once per page and shared."""

    def __init__(self, backends: Backends, session: Session) -> None:
        self.backends = backends
        self.session = session
        self._limit = asyncio.Semaphore(CONCURRENT_CALLS)
        self._once: dict[str, asyncio.Task[Any]] = {}

    def _memo(self, key: str, fetch: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        if key not in self._once:
            self._once[key] = asyncio.ensure_future(fetch())
        return self._once[key]

    async def get(self, service: str, path: str, **params: Any) -> Any:
        async with self._limit:
            return await self.backends.get(self.session, service, path, **params)

    async def _maybe(self, service: str, path: str, **params: Any) -> Any:
        try:
            return await self.get(service, path, **params)
        except BackendRefused as refused:
            if refused.status == 404:
                return None
            raise

    def partners(self) -> Awaitable[list[dict[str, Any]]]:
        """Every partner (onboarding's directory), each with its revenue by quarter."""

        async def fetch() -> list[dict[str, Any]]:
            found, _ = await everyone(self.backends, self.session, Filters())
            revenues = await asyncio.gather(
                *(
                    self._maybe(
                        "attribution", f"/partners/{p['partner_id']}/revenue", period="quarter"
                    )
                    for p in found
                )
            )
            return [{**p, "revenue": r} for p, r in zip(found, revenues, strict=True)]

        return self._memo("partners", fetch)

    def partner_histories(self) -> Awaitable[list[list[dict[str, Any]]]]:
        async def fetch() -> list[list[dict[str, Any]]]:
            listed = await self.partners()
            answers = await asyncio.gather(
                *(self._maybe("onboarding", f"/partners/{p['partner_id']}") for p in listed)
            )
            return [list((a or {}).get("history") or []) for a in answers]

        return self._memo("histories", fetch)

    def registrations(self) -> Awaitable[list[tuple[dict[str, Any], list[Any]]]]:
        """The newest registrations, each with its decision history."""

        async def fetch() -> list[tuple[dict[str, Any], list[Any]]]:
            listed = await self.get("deals", "/registrations", limit=REGISTRATIONS_READ)
            histories = await asyncio.gather(
                *(
                    self._maybe("deals", f"/registrations/{r['registration_id']}/history")
                    for r in listed
                )
            )
            return [(r, list(h or [])) for r, h in zip(listed, histories, strict=True)]

        return self._memo("registrations", fetch)

    def payouts(self) -> Awaitable[dict[str, Any]]:
        return self._memo("payouts", lambda: self.get("incentives", "/payouts", limit=1))


def _chart(items: list[tuple[str, Decimal, str]]) -> dict[str, Any]:
    return {"bars": rules.bars(items), "height": rules.chart_height(len(items))}


async def revenue_figure(sources: Sources) -> dict[str, Any]:
    cells = rules.revenue_by_tier_and_quarter(await sources.partners())
    quarters: dict[str, list[Decimal]] = {}
    for cell in cells:
        totals = quarters.setdefault(cell.quarter, [Decimal(0), Decimal(0)])
        totals[0] += cell.sourced
        totals[1] += cell.influenced
    chart = [(q, s + i, f"{s + i} (sourced {s}, influenced {i})") for q, (s, i) in quarters.items()]
    return {"cells": cells, "chart": _chart(chart)}


async def registration_figure(sources: Sources) -> dict[str, Any]:
    decisions = rules.registration_decisions(await sources.registrations())
    return {"decisions": decisions, "read": len(await sources.registrations())}


async def onboarding_figure(sources: Sources) -> dict[str, Any]:
    automatic, manual = rules.onboarding_decisions(await sources.partner_histories())
    return {
        "automatic": automatic,
        "manual": manual,
        "share": rules.share(automatic, automatic + manual),
    }


async def spend_figure(sources: Sources) -> dict[str, Any]:
    """Incentives booked net of what was taken back, against the revenue attribution credited."""
    totals = (await sources.payouts())["totals"]
    spend = Decimal(totals["earned"]) + Decimal(totals["reversed"])
    revenue = sum(
        (Decimal((p.get("revenue") or {}).get("total", "0")) for p in await sources.partners()),
        Decimal(0),
    )
    ratio = (spend * 100 / revenue).quantize(Decimal("0.01")) if revenue > 0 else None
    chart = [("Attributed revenue", revenue, str(revenue)), ("Incentive spend", spend, str(spend))]
    return {
        "spend": spend,
        "revenue": revenue,
        "ratio": ratio,
        "paid": totals["paid"],
        "chart": _chart(chart),
    }


async def top_partners_figure(sources: Sources) -> dict[str, Any]:
    top = rules.top_partners(await sources.partners())
    chart = [(p["company_name"], p["total"], str(p["total"])) for p in top]
    return {"partners": top, "chart": _chart(chart)}


@router.get("")
async def dashboard(request: Request, session: ManagerDep, backends: BackendsDep) -> Response:
    sources = Sources(backends, session)
    revenue, registrations, onboarding, spend, top = await asyncio.gather(
        revenue_figure(sources),
        registration_figure(sources),
        onboarding_figure(sources),
        spend_figure(sources),
        top_partners_figure(sources),
    )
    context = {
        "revenue": revenue,
        "registrations": registrations,
        "onboarding": onboarding,
        "spend": spend,
        "top": top,
    }
    return page(request, "console_dashboard.html", context)
