"""KPI snapshots for dashboards: the current quarter's headline figures, published on
programme.kpis.v1 whenever one of them changed since the last snapshot."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from services.programme import kpis, repository, views
from services.programme.domain.figures import return_per_dollar
from services.programme.domain.quarters import Quarter, QuarterRange
from services.programme.domain.snapshots import fingerprint
from services.programme.schemas import KpiFiltersOut, KpiReport
from shared.clock import now
from shared.db import Connection
from shared.events.programme_service import CurrencyFigures, KpiSnapshot
from shared.outbox import Outbox
from shared.topics import PROGRAMME_KPIS


def snapshot_of(quarter: Quarter, report: KpiReport) -> KpiSnapshot:
    automation = report.automation
    registrations = automation.registrations
    money = []
    for currency in sorted({row.currency for row in report.spend}):
        rows = [row for row in report.spend if row.currency == currency]
        totals = [t for t in report.revenue_totals if t.currency == currency]
        sourced = sum((t.sourced for t in totals), Decimal(0))
        influenced = sum((t.influenced for t in totals), Decimal(0))
        incentives = sum((row.incentives for row in rows), Decimal(0))
        claimed = sum((row.mdf_claimed for row in rows), Decimal(0))
        money.append(
            CurrencyFigures(
                currency=currency,
                sourced_revenue=sourced,
                influenced_revenue=influenced,
                incentives=incentives,
                mdf_claimed=claimed,
                return_per_dollar=return_per_dollar(sourced + influenced, incentives + claimed),
            )
        )
    return KpiSnapshot(
        quarter=str(quarter),
        computed_at=report.computed_at,
        money=tuple(money),
        onboarding_decisions=automation.onboarding.decisions,
        onboarding_automatic_share=automation.onboarding.automatic_share,
        registration_decisions=registrations.decisions,
        registration_automatic_share=registrations.automatic_share,
        automatic_share=automation.automatic_share,
        registration_decision_p50_hours=registrations.time_to_decision.p50_hours,
        registration_decision_p90_hours=registrations.time_to_decision.p90_hours,
        active_partners=report.partners.active,
        churned_partners=report.partners.churned,
        nps=report.nps.overall.nps,
        nps_responses=report.nps.overall.responses,
    )


# For this long into a quarter the one before is computed too: its late facts (a deal closed on
# its last day and credited after midnight, a correction) reach its snapshot.
PREVIOUS_QUARTER_DAYS = 30


async def publish_changed_quarters(conn: Connection, outbox: Outbox, at: datetime) -> bool:
    """The current quarter's snapshot, and in a quarter's first `PREVIOUS_QUARTER_DAYS` days the
    previous quarter's too (it stopped at midnight: a Q1 deal credited on 1 April never reached
    a Q1 snapshot); True when one was published."""
    current = Quarter.of(at.date())
    quarters = [current]
    if (at.date() - current.first_day).days < PREVIOUS_QUARTER_DAYS:
        quarters.append(current.previous)
    return any([await publish_if_changed(conn, outbox, at, quarter) for quarter in quarters])


async def publish_if_changed(
    conn: Connection, outbox: Outbox, at: datetime, quarter: Quarter | None = None
) -> bool:
    """Compute the current quarter's snapshot and publish it unless its figures are the ones
    last published, or figures read later were published meanwhile (another instance's run
    overtook this one: publishing these after them would leave dashboards on the older ones).
    True when it was published."""
    quarter = quarter or Quarter.of(at.date())
    span = QuarterRange(quarter, quarter)
    filters = views.Filters(span.starts, span.ends, None, None, None, None)
    shown = KpiFiltersOut(
        from_quarter=str(quarter),
        to_quarter=str(quarter),
        tier=None,
        partner_type=None,
        region=None,
        partner_ids=[],
    )
    read_at = now()  # the figures are read at this moment or after it
    report = await kpis.report(conn, filters, shown)
    snapshot = snapshot_of(quarter, report)
    current = fingerprint(snapshot)
    async with conn.transaction():
        last, last_read_at = await repository.last_snapshot(conn, str(quarter))
        if last == current or last_read_at >= read_at:
            return False
        await repository.save_snapshot(conn, str(quarter), current, read_at)
        await outbox.publish(conn, PROGRAMME_KPIS, snapshot, subject=str(quarter))
    return True
