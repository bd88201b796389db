"""Read side of attribution: the per-deal split with its reasons, a partner's sourced and
influenced revenue by period, and the inputs of its health score. Figures are net: reversed
credits are history, active credits are what a partner holds now."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from services.attribution.domain.config import AttributionConfig
from services.attribution.domain.health import HealthInputs, health_score
from services.attribution.domain.reporting import Period, RevenueQuery
from services.attribution.domain.voice import QuarterVoice, VoiceInputs
from services.attribution.health_views import health_inputs_of
from services.attribution.schemas import (
    AmountOut,
    CreditOut,
    CrmLinkOut,
    DealAttributionOut,
    DealStateOut,
    DealTouchpointOut,
    HealthComponentsOut,
    HealthDayOut,
    HealthHistoryOut,
    HealthInputsOut,
    HealthOut,
    ParkedCreditOut,
    PeriodRevenueOut,
    RevenueOut,
    UnmatchedDealOut,
    UnmatchedReferenceOut,
    VoiceOut,
    VoiceQuarterOut,
    WaitingTouchpointOut,
)
from shared.db import Connection, from_row
from shared.errors import Unprocessable

# Why a partner's credit was reversed, as the partner is told (the full reason may name others).
PARTNER_REVERSAL_REASON = "the deal's credits were settled again"
# How each reporting period is labelled (Postgres to_char formats).
_PERIOD_LABELS = {Period.MONTH: "YYYY-MM", Period.QUARTER: 'YYYY-"Q"Q', Period.YEAR: "YYYY"}


def _credit_out(row: Any, partner_id: str | None = None) -> CreditOut:
    """A credit as the caller may see it: why a credit was reversed may name other partners,
    so a partner (`partner_id`) is told only that it was."""
    reason = row["reversal_reason"]
    if partner_id is not None and reason is not None:
        reason = PARTNER_REVERSAL_REASON
    return from_row(
        CreditOut,
        row,
        reversal_reason=reason,
        amount=str(row["amount"]),
        original_amount=str(row["original_amount"]),
        fx_rate=str(row["fx_rate"]),
        share=str(row["share"]),
        close_date=row["close_date"].isoformat(),
        issued_at=row["issued_at"].isoformat(),
        reversed_at=row["reversed_at"].isoformat() if row["reversed_at"] else None,
        reasons=json.loads(row["reasons"]),
    )


def _deal_state_out(deal: Any, partner_id: str | None) -> DealStateOut:
    return from_row(
        DealStateOut,
        deal,
        amount=None if deal["amount"] is None else str(deal["amount"]),
        close_date=deal["close_date"].isoformat() if deal["close_date"] else None,
        # it may name the other partners on the deal: managers only
        last_settlement=deal["last_note"] if partner_id is None else None,
    )


def _touchpoint_out(t: Any) -> DealTouchpointOut:
    return from_row(DealTouchpointOut, t, occurred_at=t["occurred_at"].isoformat())


def _counts(touchpoint: Any) -> bool:
    """A touchpoint linking its partner to the deal: a registration or the CRM's partner, or a
    reported one a manager reported or approved."""
    return bool(touchpoint["active"] and (touchpoint["origin"] != "api" or touchpoint["approved"]))


async def deal_view(
    conn: Connection, deal_key: str, partner_id: str | None
) -> DealAttributionOut | None:
    """The deal's split with reasons; a partner (`partner_id`) sees only its own credits and
    touchpoints. None when there is nothing to show (to this partner)."""
    deal = await conn.fetchrow("SELECT * FROM deals WHERE deal_key = $1", deal_key)
    credits = await conn.fetch(
        """SELECT * FROM credits WHERE deal_key = $1 AND ($2::text IS NULL OR partner_id = $2)
           ORDER BY issued_at, credit_id""",
        deal_key,
        partner_id,
    )
    touchpoints = await conn.fetch(
        """SELECT * FROM touchpoints WHERE deal_key = $1 AND ($2::text IS NULL OR partner_id = $2)
           ORDER BY occurred_at, touchpoint_id""",
        deal_key,
        partner_id,
    )
    if partner_id is not None and not credits and not touchpoints:
        return None  # nothing of this partner's: indistinguishable from an unknown deal
    if deal is None and not touchpoints:
        return None
    active = [c for c in credits if c["reversed_at"] is None]
    if partner_id is not None and not credits and not any(_counts(t) for t in touchpoints):
        deal = None  # only waiting touchpoints: the deal itself is not this partner's to see
    return DealAttributionOut(
        deal_key=deal_key,
        deal=None if deal is None else _deal_state_out(deal, partner_id),
        sourced=str(sum((c["amount"] for c in active if c["kind"] == "sourced"), Decimal(0))),
        influenced=str(sum((c["amount"] for c in active if c["kind"] == "influenced"), Decimal(0))),
        credits=[_credit_out(c, partner_id) for c in active],
        history=[_credit_out(c, partner_id) for c in credits if c["reversed_at"] is not None],
        touchpoints=[_touchpoint_out(t) for t in touchpoints],
        parked=[] if partner_id is not None else await parked_credits(conn, deal_key),
    )


# A page of whole deals in key order: the deals after the one named, then all their rows.
PARKED_PAGE_SQL = """
SELECT * FROM parked_credits
WHERE deal_key IN (SELECT DISTINCT deal_key FROM parked_credits WHERE deal_key > $1
                   ORDER BY deal_key LIMIT $2)
ORDER BY deal_key, partner_id NULLS FIRST, kind
"""


async def parked_credits_page(conn: Connection, after: str, limit: int) -> list[ParkedCreditOut]:
    """Credits won deals do not pay out (domain/parking.py), `limit` deals after the key
    `after`, each with all its rows: a share withheld from a partner out of the programme, or
    a deal won without an amount."""
    return _parked(await conn.fetch(PARKED_PAGE_SQL, after, limit))


async def parked_credits(conn: Connection, deal_key: str) -> list[ParkedCreditOut]:
    """What one deal parks (its attribution shows it to a manager)."""
    rows = await conn.fetch(
        """SELECT * FROM parked_credits WHERE deal_key = $1
           ORDER BY partner_id NULLS FIRST, kind""",
        deal_key,
    )
    return _parked(rows)


def _parked(rows: Sequence[Any]) -> list[ParkedCreditOut]:
    return [
        from_row(
            ParkedCreditOut,
            r,
            amount=None if r["amount"] is None else str(r["amount"]),
            parked_at=r["parked_at"].isoformat(),
        )
        for r in rows
    ]


async def partner_revenue(
    conn: Connection, config: AttributionConfig, partner_id: str, query: RevenueQuery
) -> RevenueOut:
    rows = await conn.fetch(
        f"""
        SELECT to_char(close_date, '{_PERIOD_LABELS[query.period]}') AS period,
               coalesce(sum(amount) FILTER (WHERE kind = 'sourced'), 0) AS sourced,
               coalesce(sum(amount) FILTER (WHERE kind = 'influenced'), 0) AS influenced,
               count(DISTINCT deal_key) AS deals
        FROM credits
        WHERE partner_id = $1 AND reversed_at IS NULL
          AND ($2::date IS NULL OR close_date >= $2) AND ($3::date IS NULL OR close_date <= $3)
        GROUP BY 1 ORDER BY 1
        """,
        partner_id,
        query.since,
        query.until,
    )
    sourced = sum((r["sourced"] for r in rows), Decimal(0))
    influenced = sum((r["influenced"] for r in rows), Decimal(0))
    return RevenueOut(
        partner_id=partner_id,
        currency=config.reporting_currency,
        sourced=str(sourced),
        influenced=str(influenced),
        total=str(sourced + influenced),
        by_period=[
            PeriodRevenueOut(
                period=r["period"],
                sourced=str(r["sourced"]),
                influenced=str(r["influenced"]),
                deals=r["deals"],
            )
            for r in rows
        ],
    )


async def partner_health(
    conn: Connection, config: AttributionConfig, partner_id: str, today: date
) -> HealthOut:
    return (await partners_health(conn, config, [partner_id], today))[0]


async def partners_health(
    conn: Connection, config: AttributionConfig, partner_ids: Sequence[str], today: date
) -> list[HealthOut]:
    """Each partner's score as of `today`, in the order named, each once; their inputs read
    together (health_views.py)."""
    inputs = await health_inputs_of(conn, config, partner_ids, today)
    return [_health_out(config, partner_id, given) for partner_id, given in inputs.items()]


def _health_out(config: AttributionConfig, partner_id: str, inputs: HealthInputs) -> HealthOut:
    score = health_score(config.health, inputs)
    return HealthOut(
        partner_id=partner_id,
        score=str(score.score),
        components=HealthComponentsOut(
            revenue=str(score.revenue),
            win_rate=str(score.win_rate),
            velocity=str(score.velocity),
            penalty=str(score.penalty),
            enablement=None if score.enablement is None else str(score.enablement),
            voice_penalty=str(score.voice_penalty),
        ),
        inputs=HealthInputsOut(
            revenue=str(inputs.revenue),
            won=inputs.won,
            lost=inputs.lost,
            days_to_close=list(inputs.days_to_close),
            conflicts=inputs.conflicts,
            rejections=inputs.rejections,
            expiries=inputs.expiries,
            enablement=None if inputs.enablement is None else str(inputs.enablement),
            voice=voice_out(inputs.voice),
        ),
        reasons=list(score.reasons),
        config_version=config.version,
    )


CRM_LINKS_SQL = """
SELECT * FROM crm_links
WHERE ($1::text IS NULL OR status = $1) AND (source, external_id) > ($2, $3)
ORDER BY source, external_id LIMIT $4
"""


async def crm_links(
    conn: Connection, status: str | None, after: tuple[str, str], limit: int
) -> list[CrmLinkOut]:
    """A page of links (of one status) in key order, after the (source, external_id) given."""
    rows = await conn.fetch(
        CRM_LINKS_SQL,
        status,
        *after,
        limit,
    )
    return [_link_out(r) for r in rows]


def _link_out(row: Any) -> CrmLinkOut:
    return from_row(
        CrmLinkOut,
        row,
        proposed_at=row["proposed_at"].isoformat(),
        confirmed_at=row["confirmed_at"].isoformat() if row["confirmed_at"] else None,
    )


# A reference is unmatched for a deal when no confirmed link resolves it: one of the deal's CRM,
# or an identity link (its external id is the partner id), which stands for it from every CRM.
_NO_CONFIRMED_LINK = """NOT EXISTS (
    SELECT 1 FROM crm_links l WHERE l.status = 'confirmed' AND l.external_id = {ref}
      AND (l.source = {source} OR l.partner_id = l.external_id))"""

# The (reference, source) pairs the deals name, found by stepping through the index on them from
# one pair to the next (a probe each: the pairs are few, the deals many), then those no link
# resolves, counted with their deals (these are the few deals read) and the most parked first.
UNMATCHED_REFERENCES_SQL = f"""
WITH RECURSIVE named AS (
    (SELECT partner_ref, source FROM deals WHERE partner_ref IS NOT NULL
     ORDER BY partner_ref, source LIMIT 1)
    UNION ALL
    SELECT following.partner_ref, following.source FROM named CROSS JOIN LATERAL (
        SELECT d.partner_ref, d.source FROM deals d
        WHERE d.partner_ref IS NOT NULL
          AND (d.partner_ref, d.source) > (named.partner_ref, named.source)
        ORDER BY d.partner_ref, d.source LIMIT 1
    ) following
), unmatched AS MATERIALIZED (
    SELECT n.partner_ref, n.source FROM named n
    WHERE {_NO_CONFIRMED_LINK.format(ref="n.partner_ref", source="n.source")}
), counted AS (
    SELECT u.source, u.partner_ref, c.deals, c.open, c.won, c.latest_close_date
    FROM unmatched u CROSS JOIN LATERAL (
        SELECT count(*) AS deals, count(*) FILTER (WHERE d.status = 'open') AS open,
               count(*) FILTER (WHERE d.status = 'won') AS won,
               max(d.close_date) AS latest_close_date
        FROM deals d
        WHERE d.partner_ref = u.partner_ref AND d.source = u.source AND NOT d.deleted
    ) c
    WHERE c.deals > 0
    ORDER BY c.won DESC, c.deals DESC, u.source, u.partner_ref
    LIMIT $1
)
SELECT c.*,
    (SELECT l.partner_id FROM crm_links l WHERE l.source = c.source
       AND l.external_id = c.partner_ref AND l.status = 'proposed') AS proposed_partner_id,
    ARRAY(SELECT d.deal_key FROM deals d
          WHERE d.partner_ref = c.partner_ref AND d.source = c.source AND NOT d.deleted
          ORDER BY d.close_date DESC NULLS LAST, d.deal_key LIMIT 5) AS latest_deals,
    ARRAY(SELECT ROW(d.currency, sum(d.amount)::text) FROM deals d
          WHERE d.partner_ref = c.partner_ref AND d.source = c.source AND NOT d.deleted
            AND d.status = 'won' AND d.amount IS NOT NULL
          GROUP BY d.currency ORDER BY d.currency) AS won_amounts
FROM counted c
ORDER BY c.won DESC, c.deals DESC, c.source, c.partner_ref
"""

# One reference's deals of one CRM, in key order from `after`, while no link resolves it.
UNMATCHED_DEALS_SQL = f"""
SELECT d.deal_key, d.source, d.partner_ref, d.status, d.amount, d.currency, d.close_date
FROM deals d
WHERE d.source = $1 AND d.partner_ref = $2 AND NOT d.deleted AND d.deal_key > $3
  AND {_NO_CONFIRMED_LINK.format(ref="d.partner_ref", source="d.source")}
ORDER BY d.deal_key
LIMIT $4
"""


async def unmatched_references(conn: Connection, limit: int) -> list[UnmatchedReferenceOut]:
    """The CRM partner references no confirmed link resolves, the most won deals first: the
    credit of each won deal naming one is parked until a channel manager confirms a link."""
    async with conn.transaction():
        # The planner prices each reference's deals as if every pair were unmatched, which puts
        # the statement above the JIT threshold: compiling took 18 of its 40 ms (1.2M deals).
        await conn.execute("SET LOCAL jit = off")
        rows = await conn.fetch(UNMATCHED_REFERENCES_SQL, limit)
    return [
        from_row(
            UnmatchedReferenceOut,
            r,
            latest_close_date=_iso(r["latest_close_date"]),
            latest_deals=list(r["latest_deals"]),
            won_amounts=[AmountOut(currency=c, amount=a) for c, a in r["won_amounts"]],
        )
        for r in rows
    ]


async def unmatched_deals(
    conn: Connection, source: str, partner_ref: str, after: str, limit: int
) -> list[UnmatchedDealOut]:
    """The deals of `source` naming `partner_ref`, after the key `after`, while no confirmed
    link resolves it (none once one does)."""
    rows = await conn.fetch(UNMATCHED_DEALS_SQL, source, partner_ref, after, limit)
    return [
        from_row(
            UnmatchedDealOut,
            r,
            amount=None if r["amount"] is None else str(r["amount"]),
            close_date=_iso(r["close_date"]),
        )
        for r in rows
    ]


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


async def crm_link(conn: Connection, source: str, external_id: str) -> CrmLinkOut | None:
    row = await conn.fetchrow(
        "SELECT * FROM crm_links WHERE source = $1 AND external_id = $2", source, external_id
    )
    return None if row is None else _link_out(row)


async def waiting_touchpoints(
    conn: Connection,
    limit: int,
    after: str | None = None,
    partner_id: str | None = None,
    deal_key: str | None = None,
) -> list[WaitingTouchpointOut]:
    """Reported touchpoints that take no credit until a manager approves them: their partner is
    not linked to the deal (no approved registration, not the CRM's partner), or reported them
    once the deal was won. Oldest first, after the touchpoint `after` names, of one partner or
    deal if asked."""
    since = None
    if after is not None:
        since = await conn.fetchval(
            "SELECT received_at FROM touchpoints WHERE touchpoint_id = $1", after
        )
        if since is None:
            raise Unprocessable(f"after: {after} names no touchpoint")
    rows = await conn.fetch(
        """
        SELECT t.* FROM touchpoints t
        WHERE t.origin = 'api' AND t.active AND NOT t.approved AND (NOT EXISTS (
            SELECT 1 FROM touchpoints l
            WHERE l.deal_key = t.deal_key AND l.partner_id = t.partner_id AND l.active
              AND l.origin IN ('registration', 'crm'))
          OR EXISTS (SELECT 1 FROM deals d
                     WHERE d.deal_key = t.deal_key AND t.received_at > d.won_at))
          AND ($2::timestamptz IS NULL OR (t.received_at, t.touchpoint_id) > ($2, $3::text))
          AND ($4::text IS NULL OR t.partner_id = $4) AND ($5::text IS NULL OR t.deal_key = $5)
        ORDER BY t.received_at, t.touchpoint_id LIMIT $1
        """,
        limit,
        since,
        after,
        partner_id,
        deal_key,
    )
    return [
        from_row(
            WaitingTouchpointOut,
            r,
            occurred_at=r["occurred_at"].isoformat(),
            received_at=r["received_at"].isoformat(),
        )
        for r in rows
    ]


def voice_out(voice: VoiceInputs | None) -> VoiceOut | None:
    if voice is None:
        return None

    def quarter(q: QuarterVoice) -> VoiceQuarterOut:
        nps = q.nps
        return VoiceQuarterOut(
            answers=q.answers,
            promoters=q.promoters,
            passives=q.passives,
            detractors=q.detractors,
            nps=None if nps is None else str(nps),
        )

    return VoiceOut(
        last_quarter=quarter(voice.last_quarter), quarter_before=quarter(voice.quarter_before)
    )


async def health_history(
    conn: Connection, partner_id: str, since: date | None, until: date | None
) -> HealthHistoryOut:
    """The partner's stored daily scores, oldest first (bounded by `since`/`until`)."""
    rows = await conn.fetch(
        """SELECT * FROM health_scores WHERE partner_id = $1
             AND ($2::date IS NULL OR day >= $2) AND ($3::date IS NULL OR day <= $3)
           ORDER BY day""",
        partner_id,
        since,
        until,
    )
    return HealthHistoryOut(
        partner_id=partner_id,
        days=[
            HealthDayOut(
                day=r["day"].isoformat(),
                score=str(r["score"]),
                components=HealthComponentsOut(
                    revenue=str(r["revenue"]),
                    win_rate=str(r["win_rate"]),
                    velocity=str(r["velocity"]),
                    penalty=str(r["penalty"]),
                    enablement=None if r["enablement"] is None else str(r["enablement"]),
                ),
                reasons=list(r["reasons"]),
                config_version=r["config_version"],
                scored_at=r["scored_at"].isoformat(),
                announced=r["published"],
            )
            for r in rows
        ],
    )
