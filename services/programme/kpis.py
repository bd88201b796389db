"""The programme KPI report: the read model's facts summed per definition (views.py) and turned
into figures (domain/figures.py)."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from services.programme import views
from services.programme.domain.decisions import approves
from services.programme.domain.figures import Durations, above, ratio, return_per_dollar
from services.programme.schemas import (
    AutomationOut,
    DecisionShare,
    KpiFiltersOut,
    KpiReport,
    NpsReport,
    NpsRow,
    PartnersOut,
    RevenueRow,
    RevenueTotal,
    SpendRow,
    TopPartner,
)
from services.programme.schemas import Durations as DurationsOut
from shared.clock import now
from shared.db import Connection

# What the programme states as its goal: more than 70% of decisions without a human.
AUTOMATION_TARGET = Decimal("0.70")


def durations_out(seconds: list[float]) -> DurationsOut:
    measured = Durations.of_seconds(seconds)
    return DurationsOut(
        count=measured.count, p50_hours=measured.p50_hours, p90_hours=measured.p90_hours
    )


def decision_share(rows: list[Any]) -> DecisionShare:
    automatic = sum(1 for row in rows if row["automatic"])
    approved = sum(1 for row in rows if approves(row["outcome"]))
    return DecisionShare(
        decisions=len(rows),
        approved=approved,
        rejected=len(rows) - approved,
        approval_share=ratio(approved, len(rows)),
        automatic=automatic,
        automatic_share=ratio(automatic, len(rows)),
        time_to_decision=durations_out(
            [row["waited"] for row in rows if row["waited"] is not None]
        ),
    )


def spend_rows(revenue: list[RevenueRow], spent: list[Any]) -> list[SpendRow]:
    """One row per quarter and currency with revenue or spend."""
    attributed: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in revenue:
        attributed[(row.quarter, row.currency)] += row.sourced + row.influenced
    costs = {(row["quarter"], row["currency"]): row for row in spent}
    rows = []
    for quarter, currency in sorted(set(attributed) | set(costs)):
        cost = costs.get((quarter, currency))
        incentives = cost["incentives"] if cost else Decimal(0)
        claimed = cost["mdf_claimed"] if cost else Decimal(0)
        income = attributed.get((quarter, currency), Decimal(0))
        rows.append(
            SpendRow(
                quarter=quarter,
                currency=currency,
                attributed_revenue=income,
                incentives=incentives,
                mdf_claimed=claimed,
                mdf_accrued=cost["mdf_accrued"] if cost else Decimal(0),
                return_per_dollar=return_per_dollar(income, incentives + claimed),
            )
        )
    return rows


def nps_report(answers: list[Any]) -> NpsReport:
    """NPS over every answer, and per quarter and tier (the rows come ordered so)."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for row in answers:
        groups[(row["quarter"], row["tier"])].append(row["score"])
    return NpsReport(
        overall=views.nps_out([row["score"] for row in answers]),
        by_quarter_and_tier=[
            NpsRow(quarter=quarter, tier=tier, **views.nps_out(scores).model_dump())
            for (quarter, tier), scores in sorted(groups.items())
        ],
    )


def totals(revenue: list[RevenueRow]) -> list[RevenueTotal]:
    sums: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for row in revenue:
        sums[row.currency][0] += row.sourced
        sums[row.currency][1] += row.influenced
    return [
        RevenueTotal(currency=currency, sourced=s, influenced=i)
        for currency, (s, i) in sorted(sums.items())
    ]


async def report(conn: Connection, f: views.Filters, shown: KpiFiltersOut) -> KpiReport:
    """Every figure read in one repeatable-read transaction: one consistent set of facts."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        revenue = [RevenueRow(**dict(row)) for row in await views.revenue(conn, f)]
        spent = await views.spend(conn, f)
        onboarding = decision_share(await views.onboarding_decisions(conn, f))
        registrations = decision_share(await views.registration_decisions(conn, f))
        counts = await views.partner_counts(conn, f)
        first_deals = await views.first_deal_waits(conn, f)
        answers = await views.nps_answers(conn, f)
        top = [TopPartner(**dict(row)) for row in await views.top_partners(conn, f)]
    decided = onboarding.decisions + registrations.decisions
    share = ratio(onboarding.automatic + registrations.automatic, decided)
    return KpiReport(
        filters=shown,
        revenue=revenue,
        revenue_totals=totals(revenue),
        spend=spend_rows(revenue, spent),
        automation=AutomationOut(
            onboarding=onboarding,
            registrations=registrations,
            target_share=AUTOMATION_TARGET,
            automatic_share=share,
            target_met=above(
                onboarding.automatic + registrations.automatic, decided, AUTOMATION_TARGET
            ),
        ),
        partners=PartnersOut(
            active=counts["active"],
            suspended=counts["suspended"],
            churned=counts["churned"],
            time_to_first_deal=durations_out([row["waited"] for row in first_deals]),
        ),
        nps=nps_report(answers),
        top_partners=top,
        computed_at=now(),
    )
