"""The read side: what a page needs, fetched from the services with the person's own token
(concurrently: a page waits for its slowest call, not their sum) and shaped for the templates."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from services.portal.backends import Backends, BackendUnavailable, or_missing
from services.portal.domain import charts, enablement, pages
from services.portal.domain.pages import segment
from services.portal.schemas import (
    HomePage,
    LotView,
    NextTierView,
    NotificationView,
    PartnerView,
    PathView,
    RegistrationView,
    ResourceView,
)
from services.portal.sessions import Session
from shared.clock import now


async def notifications(backends: Backends, session: Session) -> tuple[list[Any], int, str | None]:
    """The partner's latest messages, newest first, in one read however long the inbox; the
    unread count; and the cursor its live stream resumes after (nothing newer is missed)."""
    path = f"/partners/{segment(session.caller.partner_id)}/notifications/newest"
    page = await backends.get(session, "notifications", path, limit=pages.LATEST_NOTIFICATIONS)
    return list(page["items"]), int(page["unread"]), page["live_after"]


def registration_rows(answer: list[Any]) -> list[RegistrationView]:
    at = now()
    rows = []
    for item in answer:
        row = RegistrationView.model_validate(item)
        row.countdown = pages.countdown(row.expires_at, at) if pages.is_open(row.status) else ""
        row.extendable = pages.may_extend(row.status, row.extensions_left, row.expires_at, at)
        rows.append(row)
    return rows


async def _home_notifications(
    backends: Backends, session: Session
) -> tuple[list[Any], int, str | None, str]:
    """The home page's messages, or why they cannot be shown: the rest of the page still shows
    while notifications does not answer (found in review: the partner's landing page was a 503
    for a side panel)."""
    try:
        return (*await notifications(backends, session), "")
    except BackendUnavailable as error:
        return [], 0, None, str(error)


async def home(backends: Backends, session: Session) -> HomePage:
    partner_id = segment(session.caller.partner_id)
    partner, registrations, inbox, certifications, next_tier = await asyncio.gather(
        backends.get(session, "onboarding", f"/partners/{partner_id}"),
        # The open ones, however many closed ones came since (the newest 500 of every status
        # lost a protected registration once 500 newer ones had come in).
        backends.get(
            session, "deals", "/registrations", status=sorted(pages.OPEN_STATUSES), limit=500
        ),
        _home_notifications(backends, session),
        backends.get(session, "onboarding", f"/partners/{partner_id}/certifications"),
        backends.get(session, "onboarding", f"/partners/{partner_id}/next-tier"),
    )
    items, unread, cursor, notifications_problem = inbox
    rows = registration_rows(registrations)
    return HomePage(
        partner=PartnerView.model_validate(partner),
        open_registrations=[row for row in rows if pages.is_open(row.status)],
        notifications=[NotificationView.model_validate(n) for n in items],
        unread=unread,
        last_cursor=cursor,
        notifications_problem=notifications_problem,
        certifications=enablement.valid_now(certifications, now()),
        expiring=enablement.expiring_soon(certifications, now()),
        next_tier=NextTierView.model_validate(next_tier),
    )


REGISTRATIONS_PAGE = 100


async def registrations(
    backends: Backends, session: Session, after: str | None = None
) -> list[RegistrationView]:
    """A page of the partner's registrations, newest first, after the one named, and one
    more when an older page follows (its caller shows REGISTRATIONS_PAGE of them)."""
    return registration_rows(
        await backends.get(
            session, "deals", "/registrations", limit=REGISTRATIONS_PAGE + 1, after=after
        )
    )


CHART_QUARTERS = 8


async def earnings(backends: Backends, session: Session, period: str | None) -> dict[str, Any]:
    """Balance and the statement of one period (incentives' current one when none), side by
    side, with the periods to pick from in the form the programme books them (incentives'
    `/programs`: quarters or months); and the last quarters' earnings (incentives) and
    sourced and influenced revenue (attribution) as charts with their numbers."""
    partner_id = segment(session.caller.partner_id)
    quarters = list(reversed(pages.recent_quarters(now(), CHART_QUARTERS)))
    missing: dict[str, str] = {}  # the revenue chart is attribution's: the rest shows without it
    programs, balance, statement, by_quarter, revenue = await asyncio.gather(
        backends.get(session, "incentives", "/programs"),
        backends.get(session, "incentives", f"/partners/{partner_id}/balance"),
        backends.get(session, "incentives", f"/partners/{partner_id}/statement", period=period),
        backends.get(
            session, "incentives", f"/partners/{partner_id}/earnings", quarters=CHART_QUARTERS
        ),
        or_missing(
            backends.get(
                session,
                "attribution",
                f"/partners/{partner_id}/revenue",
                period="quarter",
                since=charts.first_day(quarters[0]),
            ),
            "attribution",
            missing,
        ),
    )
    try:
        periods = pages.recent_periods(programs["current_period"])
    except (KeyError, TypeError, ValueError) as error:
        raise BackendUnavailable(
            "incentives", "answered a current period this portal cannot read"
        ) from error
    earned = by_quarter["quarters"]
    stated = {row["period"]: row for row in revenue["by_period"]} if revenue else {}
    nothing = {"sourced": "0", "influenced": "0", "deals": 0}
    revenue_rows = [{"quarter": q, **stated.get(q, nothing)} for q in quarters] if revenue else []
    return {
        "missing": missing,
        "balance": balance,
        "statement": statement,
        "periods": periods,
        "earnings_rows": earned,
        "earnings_currency": by_quarter["currency"],
        "earnings_chart": charts.bar_chart(
            [row["quarter"] for row in earned], [("Net earnings", [row["net"] for row in earned])]
        ),
        "revenue_rows": revenue_rows,
        "revenue_currency": revenue["currency"] if revenue else "",
        "revenue_chart": None
        if revenue is None
        else charts.bar_chart(
            quarters,
            [
                ("Sourced", [row["sourced"] for row in revenue_rows]),
                ("Influenced", [row["influenced"] for row in revenue_rows]),
            ],
        ),
    }


async def _campaigns(backends: Backends, session: Session) -> tuple[list[Any], str]:
    """The partner's campaigns, or why they cannot be shown: the fund and claims (incentives')
    still show while programme does not answer."""
    try:
        return list(await backends.get(session, "programme", "/campaigns", limit=100)), ""
    except BackendUnavailable as error:
        return [], str(error)


async def mdf(backends: Backends, session: Session) -> dict[str, Any]:
    """The fund (its lots read once, each with whether it has lapsed), the claims, and the
    partner's co-marketing campaigns (programme's) each with the budgets asked for it
    (incentives' pre-approvals); a fresh reference for the budget form, so a form sent twice
    asks once."""
    partner_id = segment(session.caller.partner_id)
    fund, claims, (campaigns, campaigns_problem), budgets = await asyncio.gather(
        backends.get(session, "incentives", f"/partners/{partner_id}/mdf"),
        backends.get(session, "incentives", "/mdf/claims", limit=200),
        _campaigns(backends, session),
        backends.get(session, "incentives", "/mdf/preapprovals", limit=200),
    )
    at = now()
    lots = [LotView.model_validate(lot) for lot in fund["lots"]]
    for lot in lots:
        lot.lapsed = lot.expires_at <= at
    for campaign in campaigns:
        campaign["budgets"] = [b for b in budgets if b["campaign_id"] == campaign["campaign_id"]]
    open_for_budget = [c for c in campaigns if c["state"] in ("planned", "running")]
    return {
        "fund": fund,
        "lots": lots,
        "claims": claims,
        "campaigns": campaigns,
        "campaigns_problem": campaigns_problem,
        "open_campaigns": open_for_budget,
        "budget_reference": f"portal-{uuid.uuid4().hex[:16]}",
    }


async def registration(
    backends: Backends, session: Session, registration_id: str
) -> dict[str, Any]:
    """One registration and its decision history, as deals tells the caller (a partner reads
    what it was told; a channel manager the full reasons and evidence)."""
    path = f"/registrations/{segment(registration_id)}"
    row, history = await asyncio.gather(
        backends.get(session, "deals", path), backends.get(session, "deals", f"{path}/history")
    )
    return {"registration": registration_rows([row])[0], "history": history}


async def learning(backends: Backends, session: Session) -> dict[str, Any]:
    """The partner's learning paths (onboarding decides which apply to its type and tier), each
    person's progress along them, and who holds the certification each path leads to; the
    signed-in person's own progress first."""
    partner_id = str(session.caller.partner_id)
    answer, certifications = await asyncio.gather(
        backends.get(session, "onboarding", f"/partners/{segment(partner_id)}/learning"),
        backends.get(session, "onboarding", f"/partners/{segment(partner_id)}/certifications"),
    )
    me = enablement.person_of(session.caller.subject, partner_id)
    at = now()
    paths = []
    for raw in answer["paths"]:
        path = PathView.model_validate(raw)
        for person in path.people:
            person.mine = enablement.is_me(person.email, me)
            person.certified_until = enablement.holds(
                certifications, person.email, path.certification_track, path.certification_role, at
            )
        path.people.sort(key=lambda p: not p.mine)  # the person's own progress first
        paths.append(path)
    return {"learning": answer, "paths": paths, "me": me}


async def resources(backends: Backends, session: Session) -> list[ResourceView]:
    """The library as onboarding shows it to this partner (its type and tier), newest first."""
    answer = await backends.get(session, "onboarding", "/resources")
    rows = [ResourceView.model_validate(r) for r in answer]
    return sorted(rows, key=lambda r: r.published_at, reverse=True)
