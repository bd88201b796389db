"""Read side of programme: the facts summed the way each figure is defined (README "How a
figure is computed"). Tier and type are the partner's when the fact happened: the latest
partner version at or before it, or the first one known when the fact came earlier than any."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from services.programme.domain.plans import Actuals, Goals, Line, campaigns_run_between, compare
from services.programme.domain.quarters import Quarter
from services.programme.domain.voice import Nps, category
from services.programme.repository import PLAN_COLUMNS
from services.programme.schemas import (
    TOP_PARTNERS,
    AnswerList,
    AnswerOut,
    CouncilMemberOut,
    CouncilOut,
    DecisionOut,
    GoalsOut,
    LineOut,
    MeetingOut,
    NpsOut,
    PlanEventOut,
    PlanOut,
    ReviewOut,
    SurveyList,
    SurveyOut,
)
from shared.db import Connection, from_row
from shared.errors import Unprocessable
from shared.identity import Caller


@dataclass(frozen=True)
class Filters:
    starts: date | None  # the first day of the first quarter asked for
    ends: date | None  # the first day of the quarter after the last one asked for
    partner_ids: list[str] | None
    tier: str | None
    partner_type: str | None
    region: str | None

    def args(self) -> tuple[Any, ...]:
        return (
            self.starts,
            self.ends,
            self.partner_ids,
            self.tier,
            self.partner_type,
            self.region,
        )


def partner_at(fact: str, at: str) -> str:
    """A join naming `p`: the version of `fact`'s partner in force at `at`
    (migrations/0005_partner_spans.sql)."""
    return f"""LEFT JOIN partner_spans p ON p.partner_id = {fact}.partner_id
        AND {at} >= p.valid_from AND {at} < p.valid_to"""


# $3 partners; $4 tier, $5 type over the partner version joined as `p`.
PARTNERS_NAMED = "($3::text[] IS NULL OR {fact}.partner_id = ANY($3::text[]))"
VERSION_FILTER = """($4::text IS NULL OR coalesce(p.tier, 'unknown') = $4::text)
    AND ($5::text IS NULL OR coalesce(p.partner_type, 'unknown') = $5::text)"""
PARTNER_FILTER = f"{PARTNERS_NAMED}\n    AND {VERSION_FILTER}"


def version_filter(joined: bool) -> str:
    """The tier and type filter over the version joined as `p`; a query that leaves the join
    out (no such filter asked) still names both parameters, as null."""
    return VERSION_FILTER if joined else "$4::text IS NULL AND $5::text IS NULL"


QUARTER_OF = """to_char({}, 'YYYY-"Q"Q')"""


def _in_range(column: str) -> str:
    return (
        f"($1::date IS NULL OR {column} >= $1::date) AND ($2::date IS NULL OR {column} < $2::date)"
    )


# The revenue totals counted (migrations/0010_revenue_totals.sql: per partner, quarter, tier and
# type at issue, region and currency, net of reversals) in the quarters asked for (the filters'
# dates are quarters' first days), of the partners, tier, type and region asked for. A credit
# closing on no real day (an infinite date, stored before the contracts refused it) is in no
# quarter's total: it was counted in none (its quarter was null, and the report a 500).
_TOTALS_COUNTED = f"""
    FROM revenue_totals t
    WHERE {_in_range("t.quarter")}
      AND {PARTNERS_NAMED.format(fact="t")}
      AND ($4::text IS NULL OR t.tier = $4::text)
      AND ($5::text IS NULL OR t.partner_type = $5::text)
      AND ($6::text IS NULL OR t.region = $6::text)"""


async def revenue(conn: Connection, f: Filters) -> list[Any]:
    return await conn.fetch(
        f"""SELECT to_char(t.quarter, 'YYYY-"Q"Q') AS quarter, t.tier, t.partner_type, t.region,
                   t.currency, sum(t.sourced) AS sourced, sum(t.influenced) AS influenced
            {_TOTALS_COUNTED}
            GROUP BY t.quarter, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5""",
        *f.args(),
    )


async def top_partners(conn: Connection, f: Filters) -> list[Any]:
    """Per currency, the TOP_PARTNERS partners with the most attributed revenue (a tie to the
    smaller id, byte by byte whatever the database's collation), with each one's tier now."""
    return await conn.fetch(
        f"""WITH totals AS (
                SELECT t.partner_id, t.currency,
                       sum(t.sourced) AS sourced, sum(t.influenced) AS influenced
                {_TOTALS_COUNTED}
                GROUP BY 1, 2),
            ranked AS (
                SELECT *, row_number() OVER (
                    PARTITION BY currency
                    ORDER BY sourced + influenced DESC, partner_id COLLATE "C") AS place
                FROM totals WHERE sourced + influenced > 0)
            SELECT t.partner_id, t.currency, coalesce(v.tier, 'unknown') AS tier,
                   t.sourced, t.influenced, t.sourced + t.influenced AS total
            FROM ranked t
            LEFT JOIN LATERAL (
                SELECT tier FROM partner_versions WHERE partner_id = t.partner_id
                ORDER BY version DESC LIMIT 1) v ON true
            WHERE t.place <= {TOP_PARTNERS}
            ORDER BY t.currency COLLATE "C", t.place""",
        *f.args(),
    )


async def spend(conn: Connection, f: Filters) -> list[Any]:
    """Spend per quarter and currency. An entry's region is its credit's customer country; an
    MDF claim belongs to no deal, so a region filter leaves claims out."""
    # The joins only filter: the partner's version in force (tier, type) and the entry's credit
    # (region) each match an entry at most once, so without their filter they change no sum and
    # are left out. Every entry meets every version of its partner in the hash join before the
    # time test: over two million entries and about nine versions a partner that join was 13 of
    # the report's 21 s. An unused filter's parameter is still named, as null.
    by_partner = f.tier is not None or f.partner_type is not None
    by_region = f.region is not None
    return await conn.fetch(
        f"""SELECT s.quarter, s.currency,
                   coalesce(sum(s.amount) FILTER (WHERE s.movement = 'incentive'), 0)
                       AS incentives,
                   coalesce(sum(s.amount) FILTER (WHERE s.movement = 'mdf_claim'), 0)
                       AS mdf_claimed,
                   coalesce(sum(s.amount) FILTER (WHERE s.movement = 'mdf_accrual'), 0)
                       AS mdf_accrued
            FROM spend_entries s
            {"LEFT JOIN credits c ON c.credit_id = s.credit_id" if by_region else ""}
            {_TAKEN_BACK if by_partner else ""}
            {partner_at("s", "coalesce(o.at, s.at)") if by_partner else ""}
            WHERE ($1::date IS NULL OR s.quarter >= to_char($1::date, 'YYYY-"Q"Q'))
              AND ($2::date IS NULL OR s.quarter < to_char($2::date, 'YYYY-"Q"Q'))
              AND {PARTNERS_NAMED.format(fact="s")}
              AND {version_filter(by_partner)}
              AND {_REGION_FILTER if by_region else "$6::text IS NULL"}
            GROUP BY 1, 2 ORDER BY 1, 2""",
        *f.args(),
    )


_REGION_FILTER = "coalesce(c.customer_country, 'unknown') = $6::text"
# A clawback counts under the tier and type of the entry it takes back (as of that entry), as
# the earning it cancels did; not under the partner's tier at the clawback.
_TAKEN_BACK = "LEFT JOIN spend_entries o ON o.entry_id = s.reverses"


async def onboarding_decisions(conn: Connection, f: Filters) -> list[Any]:
    """Each application decision: automatic or not, and the seconds since the application
    (null when the application's version is not known)."""
    return await conn.fetch(
        f"""SELECT d.change AS outcome, d.decision = 'automatic' AS automatic,
                   extract(epoch FROM d.changed_at - a.changed_at)::float8 AS waited
            FROM partner_versions d
            LEFT JOIN partner_versions a
                   ON a.partner_id = d.partner_id AND a.change = 'applied'
            {partner_at("d", "d.changed_at")}
            WHERE d.decision IS NOT NULL AND {_in_range("d.changed_at")}
              AND {PARTNER_FILTER.format(fact="d")}
              AND ($6::text IS NULL OR $6::text = ANY(d.regions))""",
        *f.args(),
    )


# Each registration decision: automatic or not, and the seconds it waited (none at submission;
# since it last entered review otherwise, null when that is not known). A region filter keeps
# the decisions of partners authorised in that country then. Two ways to find when a decision's
# registration last entered review, the same answer (tests/integration/
# test_programme_query_plans.py), each for the ranges it suits:
_DECISION_FILTERS = f"""{_in_range("m.at")}
  AND {PARTNER_FILTER.format(fact="m")}
  AND ($6::text IS NULL OR $6::text = ANY(p.regions))"""
_WAITED = """CASE WHEN m.at_submission THEN 0::float8
            ELSE extract(epoch FROM m.at - {})::float8 END AS waited"""

# From the first decision on (no start asked for): a window over every move, in one sort.
DECISIONS_SINCE_THE_FIRST_SQL = f"""
SELECT m.outcome, m.automatic, {_WAITED.format("m.pending_since")}
FROM (
    SELECT moves.*, max(moves.at) FILTER (WHERE moves.move = 'pending') OVER (
        PARTITION BY moves.registration_id ORDER BY moves.at, moves.move DESC
        ROWS UNBOUNDED PRECEDING) AS pending_since
    FROM registration_moves moves) m
{partner_at("m", "m.at")}
WHERE m.move = 'decision' AND {_DECISION_FILTERS}"""

# From a start on (a quarter, a year): the decisions found by time, each looking up its
# registration's last review entry. The window, filtered afterwards, hid such a range from the
# planner, which expected a handful of decisions and joined each to every partner version:
# 5.5 s for a quarter of 50,000 moves (benchmarks/programme_kpis.py), 21 ms this way. For all
# time this way costs more (0.82 s against 0.36 s for 300,000 moves): hence the two.
DECISIONS_FROM_A_START_SQL = f"""
SELECT m.outcome, m.automatic, {_WAITED.format("pending.since")}
FROM registration_moves m
LEFT JOIN LATERAL (
    SELECT max(x.at) AS since FROM registration_moves x
    WHERE x.registration_id = m.registration_id AND x.move = 'pending' AND x.at <= m.at
) pending ON true
{partner_at("m", "m.at")}
WHERE m.move = 'decision' AND {_DECISION_FILTERS}"""


async def registration_decisions(conn: Connection, f: Filters) -> list[Any]:
    sql = DECISIONS_SINCE_THE_FIRST_SQL if f.starts is None else DECISIONS_FROM_A_START_SQL
    return await conn.fetch(sql, *f.args())


# The partner's latest version, filtered as the other figures are (region: one it may sell in).
_LATEST = """
    SELECT DISTINCT ON (partner_id) partner_id, status, tier, partner_type, regions
    FROM partner_versions ORDER BY partner_id, version DESC"""


async def partner_counts(conn: Connection, f: Filters) -> Any:
    return await conn.fetchrow(
        f"""WITH latest AS ({_LATEST}),
            churned AS (
                SELECT DISTINCT x.partner_id FROM partner_versions x
                {partner_at("x", "x.changed_at")}
                WHERE x.change = 'expelled' AND {_in_range("x.changed_at")}
                  AND {PARTNER_FILTER.format(fact="x")}
                  AND ($6::text IS NULL OR $6::text = ANY(x.regions)))
            SELECT
              count(*) FILTER (WHERE l.status IN ('active', 'grace')) AS active,
              count(*) FILTER (WHERE l.status = 'suspended') AS suspended,
              (SELECT count(*) FROM churned) AS churned
            FROM latest l
            LEFT JOIN LATERAL (SELECT l.tier, l.partner_type) p ON true
            WHERE {PARTNER_FILTER.format(fact="l")}
              AND ($6::text IS NULL OR $6::text = ANY(l.regions))""",
        *f.args(),
    )


async def first_deal_waits(conn: Connection, f: Filters) -> list[Any]:
    """Seconds from each partner's activation (in range) to its first credit not reversed, 0 if
    credited before it (found in review: that was negative); partners without one: not measured."""
    return await conn.fetch(
        f"""WITH activated AS (
                SELECT DISTINCT ON (partner_id) partner_id, changed_at, regions, version
                FROM partner_versions WHERE change = 'activated'
                ORDER BY partner_id, version)
            SELECT greatest(extract(epoch FROM first.at - a.changed_at), 0)::float8 AS waited
            FROM activated a
            JOIN LATERAL (SELECT min(c.issued_at) AS at FROM credits c WHERE c.partner_id = a.partner_id
                AND NOT EXISTS (SELECT FROM credit_reversals r WHERE r.credit_id = c.credit_id)) first
              ON first.at IS NOT NULL
            {partner_at("a", "a.changed_at")}
            WHERE {_in_range("a.changed_at")} AND {PARTNER_FILTER.format(fact="a")}
              AND ($6::text IS NULL OR $6::text = ANY(a.regions))""",
        *f.args(),
    )


# ---- joint business plans and reviews


async def partner_status(conn: Connection, partner_id: str) -> str | None:
    """The partner's latest status as onboarding told it (None: never heard of)."""
    status: str | None = await conn.fetchval(
        "SELECT status FROM partner_versions WHERE partner_id = $1 ORDER BY version DESC LIMIT 1",
        partner_id,
    )
    return status


# A partner's own facts, each read by partner: credits through credits_by_partner, spend
# through spend_entries_by_partner (programme migration 0009).
PLAN_ACTUALS_SQL = """SELECT
             (SELECT coalesce(sum(c.amount - coalesce(r.amount, 0)), 0)
              FROM credits c LEFT JOIN credit_reversals r USING (credit_id)
              WHERE c.partner_id = $1 AND c.kind = 'sourced' AND c.currency = $4
                AND c.close_date >= $2 AND c.close_date < $3) AS sourced,
             (SELECT coalesce(cardinality(v.competencies), 0) FROM partner_versions v
              WHERE v.partner_id = $1 AND v.changed_at < $3
              ORDER BY v.version DESC LIMIT 1) AS certifications,
             (SELECT count(*) FROM (
                SELECT s.deal_key FROM spend_entries s
                WHERE s.partner_id = $1 AND s.movement = 'incentive'
                  AND s.rule = ANY($7::text[]) AND s.quarter >= $5 AND s.quarter <= $6
                GROUP BY s.deal_key
                HAVING count(*) FILTER (WHERE s.reverses IS NULL AND s.amount >= 0)
                     > count(*) FILTER (WHERE s.reverses IS NOT NULL OR s.amount < 0)
              ) logos) AS new_logos,
             (SELECT count(*) FROM campaigns c JOIN campaign_partners p USING (campaign_id)
              WHERE p.partner_id = $1 AND c.cancelled_at IS NULL
                AND c.ends_on >= $8 AND c.ends_on < $9) AS campaigns,
             (SELECT count(*) FROM spend_entries s
              WHERE s.partner_id = $1 AND s.movement = 'mdf_claim'
                AND s.at >= $2 AND s.at < $3) AS mdf_claims"""


async def plan_actuals(
    conn: Connection,
    partner_id: str,
    year: int,
    through: Quarter,
    currency: str,
    new_logo_rules: tuple[str, ...],
    today: date,
) -> Actuals:
    """The partner's year from 1 January to the end of `through`, each measure from the facts
    of the service that owns it (campaigns run: programme's own records), as of `today`."""
    first_end, past_end = campaigns_run_between(year, through, today)
    row = await conn.fetchrow(
        PLAN_ACTUALS_SQL,
        partner_id,
        date(year, 1, 1),
        through.next.first_day,
        currency,
        str(Quarter(year, 1)),
        str(through),
        list(new_logo_rules),
        first_end,
        past_end,
    )
    assert row is not None  # scalar subqueries: always one row
    return Actuals(
        sourced_revenue=row["sourced"],
        certifications=row["certifications"] or 0,
        new_logos=row["new_logos"],
        co_marketing_campaigns=row["campaigns"],
        mdf_claims_approved=row["mdf_claims"],
    )


def goals_of(row: Any) -> Goals:
    return Goals(
        sourced_revenue=row["sourced_revenue"],
        certifications=row["certifications"],
        new_logos=row["new_logos"],
        co_marketing_campaigns=row["campaigns"],
    )


def goals_out(goals: Goals) -> GoalsOut:
    return GoalsOut.model_validate(goals, from_attributes=True)  # the same four fields


def line_out(line: Line) -> LineOut:
    return LineOut(
        goal=line.goal_name,
        source=line.source,
        target=line.goal,
        actual=line.actual,
        attainment=line.attainment,
    )


def actuals_through(year: int, today: date) -> Quarter:
    """A plan's actuals so far: to the current quarter in the plan's year, else its last."""
    return Quarter.of(today) if today.year == year else Quarter(year, 4)


async def plans(
    conn: Connection,
    partner_id: str,
    year: int | None,
    today: date,
    new_logo_rules: tuple[str, ...],
) -> list[PlanOut]:
    rows = await conn.fetch(
        f"""SELECT {PLAN_COLUMNS} FROM business_plans
            WHERE partner_id = $1 AND ($2::int IS NULL OR year = $2) ORDER BY year""",
        partner_id,
        year,
    )
    history = await conn.fetch(
        """SELECT year, revision, state, goals, acted_by, note, at FROM business_plan_history
           WHERE partner_id = $1 AND ($2::int IS NULL OR year = $2) ORDER BY year, seq""",
        partner_id,
        year,
    )
    found = []
    for row in rows:
        through = actuals_through(row["year"], today)
        actuals = await plan_actuals(
            conn, partner_id, row["year"], through, row["currency"], new_logo_rules, today
        )
        goals = goals_of(row)
        found.append(
            from_row(
                PlanOut,
                row,
                partner_id=partner_id,
                goals=goals_out(goals),
                actuals_through=str(through),
                actuals=[line_out(line) for line in compare(goals, actuals)],
                mdf_claims_approved=actuals.mdf_claims_approved,
                history=[
                    from_row(PlanEventOut, h, goals=GoalsOut(**json.loads(h["goals"])))
                    for h in history
                    if h["year"] == row["year"]
                ],
            )
        )
    return found


def review_out(row: Any) -> ReviewOut:
    return from_row(
        ReviewOut,
        row,
        lines=[LineOut(**line) for line in json.loads(row["lines"])],
        actions=json.loads(row["actions"]),
    )


async def reviews(conn: Connection, partner_id: str, year: int) -> list[ReviewOut]:
    rows = await conn.fetch(
        """SELECT review_id, partner_id, year, quarter, plan_revision, lines,
                  mdf_claims_approved, summary, actions, recorded_by, recorded_at
           FROM business_reviews WHERE partner_id = $1 AND year = $2 ORDER BY quarter""",
        partner_id,
        year,
    )
    return [review_out(row) for row in rows]


# ---- partner voice


async def nps_answers(conn: Connection, f: Filters) -> list[Any]:
    """Each answer in range: its quarter, the tier it was given under, its score; by region,
    the answers of partners in the region when they answered (the version in force then, as
    every other figure reads a partner: any version ever in the region counted all of a
    partner's answers, found in review)."""
    return await conn.fetch(
        f"""SELECT {QUARTER_OF.format("a.answered_at")} AS quarter,
                   coalesce(a.tier, 'unknown') AS tier, a.score
            FROM survey_answers a
            LEFT JOIN LATERAL (SELECT a.tier, a.partner_type) p ON true
            WHERE {_in_range("a.answered_at")} AND {PARTNER_FILTER.format(fact="a")}
              AND ($6::text IS NULL OR EXISTS (
                  SELECT 1 FROM partner_spans s
                  WHERE s.partner_id = a.partner_id AND $6::text = ANY(s.regions)
                    AND a.answered_at >= s.valid_from AND a.answered_at < s.valid_to))
            ORDER BY 1, 2""",
        *f.args(),
    )


async def audience(conn: Connection, tiers: list[str], types: list[str]) -> list[str]:
    """The partners active now (or in grace) of the tiers and types (none listed: all)."""
    rows = await conn.fetch(
        f"""SELECT partner_id FROM ({_LATEST}) latest
            WHERE status IN ('active', 'grace')
              AND (cardinality($1::text[]) = 0 OR tier = ANY($1::text[]))
              AND (cardinality($2::text[]) = 0 OR partner_type = ANY($2::text[]))
            ORDER BY partner_id""",
        tiers,
        types,
    )
    return [row["partner_id"] for row in rows]


async def latest_version(conn: Connection, partner_id: str) -> Any:
    return await conn.fetchrow(
        """SELECT tier, partner_type, status FROM partner_versions WHERE partner_id = $1
           ORDER BY version DESC LIMIT 1""",
        partner_id,
    )


SURVEY_COLUMNS = "survey_id, question, closes_at, created_at"


async def survey_for(conn: Connection, survey_id: uuid.UUID, partner_id: str | None) -> Any:
    """The survey, if it exists and (for a partner) was sent to that partner."""
    return await conn.fetchrow(
        f"""SELECT {SURVEY_COLUMNS} FROM surveys s WHERE s.survey_id = $1
              AND ($2::text IS NULL OR EXISTS (
                  SELECT 1 FROM survey_recipients r
                  WHERE r.survey_id = s.survey_id AND r.partner_id = $2))""",
        survey_id,
        partner_id,
    )


def nps_out(scores: list[int]) -> NpsOut:
    measured = Nps.of(scores)
    return NpsOut(
        responses=measured.responses,
        promoters=measured.promoters,
        passives=measured.passives,
        detractors=measured.detractors,
        nps=measured.score,
    )


async def survey_out(conn: Connection, row: Any, who: Caller) -> SurveyOut:
    answered = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM survey_answers WHERE survey_id = $1 AND respondent = $2)",
        row["survey_id"],
        who.subject,
    )
    results = recipients = None
    if who.partner_id is None:
        scores = await conn.fetch(
            "SELECT score FROM survey_answers WHERE survey_id = $1", row["survey_id"]
        )
        results = nps_out([s["score"] for s in scores])
        recipients = await conn.fetchval(
            "SELECT count(*) FROM survey_recipients WHERE survey_id = $1", row["survey_id"]
        )
    return from_row(
        SurveyOut,
        row,
        answered=bool(answered),
        results=results,
        recipients=recipients,
    )


async def surveys(conn: Connection, who: Caller) -> SurveyList:
    """Channel managers: the latest 200 surveys; a partner's people: the latest 200 sent to
    their partner."""
    rows = await conn.fetch(
        f"""SELECT {SURVEY_COLUMNS} FROM surveys s
            WHERE $1::text IS NULL OR EXISTS (
                SELECT 1 FROM survey_recipients r
                WHERE r.survey_id = s.survey_id AND r.partner_id = $1)
            ORDER BY created_at DESC, survey_id LIMIT 200""",
        who.partner_id,
    )
    return SurveyList(items=[await survey_out(conn, row, who) for row in rows])


# A survey's answers in the order they came, a page after the answer a caller names.
ANSWERS_SQL = """
SELECT answer_id, survey_id, partner_id, respondent, score, comment, tier, answered_at
FROM survey_answers
WHERE survey_id = $1
  AND ($2::uuid IS NULL OR (answered_at, answer_id) > (
      SELECT answered_at, answer_id FROM survey_answers WHERE answer_id = $2))
ORDER BY answered_at, answer_id LIMIT $3
"""


async def answers(
    conn: Connection, survey_id: uuid.UUID, after: uuid.UUID | None, limit: int
) -> AnswerList:
    """A page of a survey's answers (422 if `after` is not one of them)."""
    if after is not None and not await conn.fetchval(
        "SELECT true FROM survey_answers WHERE answer_id = $1 AND survey_id = $2", after, survey_id
    ):
        raise Unprocessable(f"after names no answer to survey {survey_id}: {after}")
    rows = await conn.fetch(ANSWERS_SQL, survey_id, after, limit + 1)
    items = [AnswerOut(**dict(row), category=category(row["score"]).value) for row in rows]
    more = len(items) > limit
    return AnswerList(items=items[:limit], next_after=items[limit - 1].answer_id if more else None)


def meeting_out(row: dict[str, Any]) -> MeetingOut:
    decisions = json.loads(row.pop("decisions"))
    return MeetingOut(**row, decisions=[DecisionOut(**d) for d in decisions])


async def council(conn: Connection) -> CouncilOut:
    members = await conn.fetch(
        """SELECT partner_id, representative, role, joined_on, left_on FROM council_members
           ORDER BY joined_on, partner_id"""
    )
    meetings = await conn.fetch(
        """SELECT meeting_id, held_on, attendees, agenda, notes, decisions, recorded_by,
                  recorded_at
           FROM council_meetings ORDER BY held_on DESC, recorded_at DESC"""
    )
    return CouncilOut(
        members=[CouncilMemberOut(**dict(row)) for row in members],
        meetings=[meeting_out(dict(row)) for row in meetings],
    )
