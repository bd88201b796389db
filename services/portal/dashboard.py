"""The programme dashboard: sourced and influenced revenue by quarter and tier, registration and
onboarding decisions (approval rate, share made automatically, time to decision), incentive
and MDF spend against attributed revenue, top partners, over the quarters the manager picks.

Every figure is programme's KPI report (`GET /kpis`, one call), so the page costs the same
with ten partners or ten thousand and says what the KPI API says; incentives adds what was paid
out, onboarding the top partners' names."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from services.portal.api import BackendsDep
from services.portal.backends import BackendRefused, Backends
from services.portal.console import ManagerDep
from services.portal.domain import programme as rules
from services.portal.rendering import page
from services.portal.sessions import Session

router = APIRouter(prefix="/console/dashboard")

# A quarter as programme spells it (2026-Q1); its range (1900..9998) is programme's to check.
QuarterParam = Annotated[str | None, Query(pattern=r"^([0-9]{4}-Q[1-4])?$")]


async def partner_names(backends: Backends, session: Session, ids: list[str]) -> dict[str, str]:
    """Company names from onboarding (a partner it does not know keeps its id)."""

    async def name(partner_id: str) -> str | None:
        try:
            partner = await backends.get(session, "onboarding", f"/partners/{partner_id}")
        except BackendRefused as refused:
            if refused.status == 404:
                return None
            raise
        return str(partner["company_name"])

    unique = sorted(set(ids))
    found = await asyncio.gather(*(name(partner_id) for partner_id in unique))
    return {pid: n for pid, n in zip(unique, found, strict=True) if n is not None}


def figures(report: dict[str, Any], payouts: dict[str, Any], names: dict[str, str]) -> Any:
    automation = report["automation"]
    cells = rules.revenue_by_tier_and_quarter(report["revenue"])
    spend = rules.spend_by_currency(report["spend"])
    top = rules.top_partners(report["top_partners"], names)
    spend_chart = [
        item
        for s in spend
        for item in (
            (f"Revenue {s.currency}", s.revenue, f"{s.revenue} {s.currency}"),
            (f"Spend {s.currency}", s.spent, f"{s.spent} {s.currency}"),
        )
    ]
    top_chart = [(f"{p['company_name']}", p["total"], f"{p['total']} {p['currency']}") for p in top]
    return {
        "filters": report["filters"],
        "revenue": {"cells": cells, "chart": _chart(rules.revenue_by_quarter(cells))},
        "registrations": rules.Decisions.of(automation["registrations"]),
        "onboarding": rules.Decisions.of(automation["onboarding"]),
        "spend": {"currencies": spend, "chart": _chart(spend_chart)},
        "paid": {"amount": payouts["totals"]["paid"], "currency": payouts["currency"]},
        "top": {"partners": top, "chart": _chart(top_chart)},
        "computed_at": report["computed_at"],
    }


def _chart(items: list[tuple[str, Any, str]]) -> dict[str, Any]:
    return {"bars": rules.bars(items), "height": rules.chart_height(len(items))}


@router.get("")
async def dashboard(
    request: Request,
    session: ManagerDep,
    backends: BackendsDep,
    from_quarter: QuarterParam = None,
    to_quarter: QuarterParam = None,
) -> Response:
    quarters = {"from_quarter": from_quarter or None, "to_quarter": to_quarter or None}
    report, payouts = await asyncio.gather(
        backends.get(session, "programme", "/kpis", **quarters),
        backends.get(session, "incentives", "/payouts", limit=1),
    )
    names = await partner_names(
        backends, session, [p["partner_id"] for p in report["top_partners"]]
    )
    return page(request, "console_dashboard.html", figures(report, payouts, names))
