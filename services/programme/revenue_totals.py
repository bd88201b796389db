"""Write side of the revenue totals (migrations/0010_revenue_totals.sql): the credits, their
reversals and the partner versions recorded, each with what it changes in the running totals
the KPI report's revenue and top partners sum, in the same transaction.

A partner's facts are written under its advisory lock (`lock_partners`; the consumers take a
batch's locks first, shared/consumer.py), so a credit, its reversal and a version of its
partner written at once by different transactions are added in some order, each seeing the
others that committed before it: a reversal whose credit is not there yet is taken off when the
credit comes (the credit counts net of it), and a version that arrives after credits it
applies to sums its partner's totals again from its credits."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from shared.db import Connection, advisory_key, columns, lock_in_order
from shared.events.attribution import CreditIssued, CreditReversed
from shared.events.partners import PartnerStateChanged


def partner_lock_keys(partner_ids: Iterable[str]) -> set[int]:
    return {advisory_key("programme", "revenue", partner_id) for partner_id in partner_ids}


async def lock_partners(conn: Connection, partner_ids: Iterable[str]) -> None:
    """Hold the partners' facts for this transaction (a lock already held is granted at once)."""
    await lock_in_order(conn, partner_lock_keys(partner_ids))


# The partner's tier and type when the credit was issued: the version in force then (the
# latest changed at or before it, the highest of versions changed at the same moment), or the
# first one known for a credit older than any; 'unknown' before any version. The same answer
# as migration 0005's spans, looked up a credit at a time (a few credits a batch) instead of
# spanning every partner's versions.
_TIER_AT_ISSUE = """
LEFT JOIN LATERAL (
    SELECT v.tier, v.partner_type FROM partner_versions v
    WHERE v.partner_id = c.partner_id
    ORDER BY v.changed_at <= c.issued_at DESC,
             CASE WHEN v.changed_at <= c.issued_at THEN v.changed_at END DESC,
             CASE WHEN v.changed_at <= c.issued_at THEN v.version END DESC,
             v.changed_at, v.version
    LIMIT 1) p ON true"""

_KEY = """c.partner_id, date_trunc('quarter', c.close_date)::date,
       coalesce(p.tier, 'unknown'), coalesce(p.partner_type, 'unknown'),
       coalesce(c.customer_country, 'unknown'), c.currency"""


def _totals(credits: str, amount: str, which: str = "true") -> str:
    """`credits` (rows naming credits as `c`, joined to what `amount` reads), those `which`
    holds for, summed by the totals' key: `amount` of each, per kind. A credit closing on no
    real day (an infinite date, stored before the contracts refused it) lies in no quarter: it
    counts nowhere."""
    return f"""SELECT {_KEY},
       coalesce(sum({amount}) FILTER (WHERE c.kind = 'sourced'), 0),
       coalesce(sum({amount}) FILTER (WHERE c.kind = 'influenced'), 0)
    FROM {credits}
    {_TIER_AT_ISSUE}
    WHERE isfinite(c.close_date) AND {which}
    GROUP BY 1, 2, 3, 4, 5, 6"""


_ADD = """
INSERT INTO revenue_totals (partner_id, quarter, tier, partner_type, region, currency, sourced,
    influenced)
{}
ON CONFLICT (partner_id, quarter, tier, partner_type, region, currency) DO UPDATE SET
    sourced = revenue_totals.sourced + EXCLUDED.sourced,
    influenced = revenue_totals.influenced + EXCLUDED.influenced"""

_NET = "c.amount - coalesce(r.amount, 0)"

RECORD_CREDITS_SQL = f"""
WITH c AS (
    INSERT INTO credits (credit_id, deal_key, partner_id, kind, amount, currency,
        customer_country, close_date, issued_at)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[],
                         $6::text[], $7::text[], $8::date[], $9::timestamptz[])
    ON CONFLICT (credit_id) DO NOTHING
    RETURNING *)
{_ADD.format(_totals("c LEFT JOIN credit_reversals r USING (credit_id)", _NET))}"""

RECORD_REVERSALS_SQL = f"""
WITH r AS (
    INSERT INTO credit_reversals (credit_id, reversal_id, amount, reversed_at)
    SELECT * FROM unnest($1::text[], $2::text[], $3::numeric[], $4::timestamptz[])
    ON CONFLICT DO NOTHING
    RETURNING credit_id, amount)
{_ADD.format(_totals("r JOIN credits c USING (credit_id)", "-r.amount"))}"""

# A partner's totals summed again from its credits (a version may move credits between tiers).
SUM_PARTNERS_AGAIN_SQL = [
    "DELETE FROM revenue_totals WHERE partner_id = ANY($1::text[])",
    _ADD.format(
        _totals(
            "credits c LEFT JOIN credit_reversals r USING (credit_id)",
            _NET,
            "c.partner_id = ANY($1::text[])",
        )
    ),
]


async def record_credits(conn: Connection, credits: Sequence[CreditIssued]) -> None:
    """The credits not held yet, each added to its totals net of a reversal already held."""
    if not credits:
        return
    await lock_partners(conn, (c.partner_id for c in credits))
    await conn.execute(
        RECORD_CREDITS_SQL,
        *columns(
            [
                (
                    c.credit_id,
                    c.deal_key,
                    c.partner_id,
                    c.kind.value,
                    c.amount,
                    c.currency,
                    c.customer.country,
                    c.close_date,
                    c.issued_at,
                )
                for c in credits
            ]
        ),
    )


async def record_reversals(conn: Connection, reversals: Sequence[CreditReversed]) -> None:
    """The reversals not held yet, each taken off its credit's totals if the credit is held
    (else the credit, when it comes, counts net of it)."""
    if not reversals:
        return
    await lock_partners(conn, (r.partner_id for r in reversals))
    await conn.execute(
        RECORD_REVERSALS_SQL,
        [r.credit_id for r in reversals],
        [r.reversal_id for r in reversals],
        [r.amount for r in reversals],
        [r.reversed_at for r in reversals],
    )


async def sum_partners_again(conn: Connection, partner_ids: Sequence[str]) -> None:
    """The partners' totals from their credits, after a version of theirs was recorded: a
    version that arrives late (or the first one known) moves credits to its tier and type."""
    if not partner_ids:
        return
    await lock_partners(conn, partner_ids)
    for statement in SUM_PARTNERS_AGAIN_SQL:
        await conn.execute(statement, sorted(set(partner_ids)))


def partners_of(versions: Sequence[tuple[PartnerStateChanged, str | None]]) -> list[str]:
    return sorted({version.partner_id for version, _ in versions})
