"""The programme dashboard: sourced and influenced revenue by quarter and tier, registration and
onboarding decisions (approval rate, share made automatically, time to decision), incentive
and MDF spend against attributed revenue, top partners, over the quarters the manager picks.

Every figure is programme's KPI report (`GET /kpis`, one call), so the page costs the same
with ten partners or ten thousand and says what the KPI API says; incentives adds what was paid
out, onboarding the top partners' names."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from services.portal.api import BackendsDep
from services.portal.backends import (
    BackendRefused,
    Backends,
    BackendUnavailable,
    each,
    or_missing,
)
from services.portal.console import ManagerDep
from services.portal.domain import programme as rules
from services.portal.domain.pages import segment
from services.portal.rendering import page
from services.portal.sessions import Session

router = APIRouter(prefix="/console/dashboard")

# A quarter as programme spells it (2026-Q1); its range (1900..9998) is programme's to check.
QuarterParam = Annotated[str | None, Query(pattern=r"^([0-9]{4}-Q[1-4])?$")]


async def partner_names(backends: Backends, session: Session, ids: list[str]) -> dict[str, str]:
    """Company names from onboarding. A name only labels a row: a partner onboarding does not
    know, refuses or cannot answer for keeps its id rather than costing the page."""

    def name(partner_id: str) -> Callable[[], Awaitable[str | None]]:
        async def ask() -> str | None:
            path = f"/partners/{segment(partner_id)}"
            try:
                partner = await backends.get(session, "onboarding", path)
            except (BackendRefused, BackendUnavailable):
                return None
            found = partner.get("company_name") if isinstance(partner, dict) else None
            return found if isinstance(found, str) and found else None

        return ask

    unique = sorted(set(ids))
    found = await each(name(partner_id) for partner_id in unique)
    return {pid: n for pid, n in zip(unique, found, strict=True) if n is not None}


def figures(report: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The page's figures from programme's KPI report."""
    automation = report["automation"]
    cells = rules.revenue_by_tier_and_quarter(report["revenue"])
    spend = rules.spend_by_currency(report["spend"])
    top = rules.top_partners(report["top_partners"], names)
    spend_chart = [
        item
        for s in spend
        for item in (
            (f"Revenue {s.currency}", s.revenue, s.currency, f"{s.revenue} {s.currency}"),
            (f"Spend {s.currency}", s.spent, s.currency, f"{s.spent} {s.currency}"),
        )
    ]
    top_chart = [
        (
            f"{p['company_name']} ({p['currency']})",
            p["total"],
            p["currency"],
            f"{p['total']} {p['currency']}",
        )
        for p in top
    ]
    return {
        "filters": report["filters"],
        "revenue": {"cells": cells, "chart": _chart(rules.revenue_by_quarter(cells))},
        "registrations": rules.Decisions.of(automation["registrations"]),
        "onboarding": rules.Decisions.of(automation["onboarding"]),
        "spend": {"currencies": spend, "chart": _chart(spend_chart)},
        "top": {"partners": top, "chart": _chart(top_chart)},
        "computed_at": report["computed_at"],
    }


def _chart(items: list[rules.ChartItem]) -> dict[str, Any]:
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
    missing: dict[str, str] = {}  # "paid out" is incentives': the programme's figures show without
    report, payouts = await asyncio.gather(
        backends.get(session, "programme", "/kpis", **quarters),
        or_missing(backends.get(session, "incentives", "/payouts", limit=1), "incentives", missing),
    )
    # An answer without a figure this page draws (a service older or newer than the portal)
    # is that service's failure, said as when it does not answer at all: never a 500.
    unreadable = (KeyError, TypeError, ValueError, ArithmeticError)
    try:
        paid = (
            None
            if payouts is None
            else {"amount": Decimal(payouts["totals"]["paid"]), "currency": payouts["currency"]}
        )
    except unreadable as error:
        raise BackendUnavailable(
            "incentives", "answered payouts this portal cannot read"
        ) from error
    try:
        ids = [str(p["partner_id"]) for p in report["top_partners"]]
        shown = figures(report, await partner_names(backends, session, ids))
    except unreadable as error:
        raise BackendUnavailable(
            "programme", "answered a report this portal cannot read"
        ) from error
    return page(request, "console_dashboard.html", {**shown, "paid": paid, "missing": missing})
