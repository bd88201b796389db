"""The read side of the finance team's payouts view: per partner what a period booked and paid,
the balance still owed and its settlement state; the payouts made in the period."""

from __future__ import annotations

import base64
from decimal import Decimal

from services.incentives.domain.programs import IncentivePrograms
from services.incentives.domain.settlement import Settlement, settlement_of
from services.incentives.payout_schemas import PartnerPayoutsOut, PayoutEntryOut, PayoutsOut
from shared.db import Connection, from_row
from shared.errors import Unprocessable

# From the running totals per partner and period (incentives migration 0012), not the ledger's
# entries: earned there is every entry but payouts, so the period's earnings (accruals, kickers
# and SPIFFs) are it less its reversals. A partner is in a period it has a ledger entry in.
PARTNER_TOTALS_SQL = """
SELECT partner_id,
       coalesce(sum(earned - reversed) FILTER (WHERE in_period), 0) AS earned,
       coalesce(sum(reversed) FILTER (WHERE in_period), 0) AS reversed,
       coalesce(-sum(paid) FILTER (WHERE in_period), 0) AS paid,
       sum(earned + paid) AS balance,
       max(last_paid_at) AS last_paid_at
FROM (SELECT *, entries > 0 AND ($1::text IS NULL OR period = $1) AS in_period
      FROM period_totals) t
GROUP BY partner_id
HAVING bool_or(in_period)
ORDER BY sum(earned + paid) DESC, partner_id
"""
# Newest first, a page at a time after the payout made at `$3` with the id `$4` (the page
# before's last), through ledger_payouts_by_time; `$5` more than asked tells whether a page
# follows.
PAYOUTS_MADE_SQL = """SELECT entry_id, partner_id, -amount AS amount, reference, period, created_at
    FROM ledger_entries
    WHERE entry_type = 'payout' AND ($1::text IS NULL OR period = $1)
      AND ($2::text IS NULL OR partner_id = $2)
      AND ($3::timestamptz IS NULL OR created_at < $3
           OR (created_at = $3 AND entry_id > $4::text))
    ORDER BY created_at DESC, entry_id LIMIT $5"""
PAYOUTS_COUNTED_SQL = """SELECT count(*) FROM ledger_entries
    WHERE entry_type = 'payout' AND ($1::text IS NULL OR period = $1)
      AND ($2::text IS NULL OR partner_id = $2)"""
PERIODS_SQL = "SELECT DISTINCT period FROM period_totals WHERE entries > 0 ORDER BY period DESC"


def cursor_of(row: PartnerPayoutsOut) -> str:
    """Where a page of partners ends: the last one's balance and id, in the list's order
    (largest balance first, then by id)."""
    return base64.urlsafe_b64encode(f"{row.balance}\n{row.partner_id}".encode()).decode()


BALANCE_DIGITS_MAX = 40  # no balance a page ends on has more digits either side of the point


def page_cursor(after: str) -> tuple[Decimal, str]:
    """The balance and partner id an `after` names (422 for one no page gave)."""
    try:
        balance, partner_id = base64.urlsafe_b64decode(after.encode()).decode().split("\n", 1)
        value = Decimal(balance)
    except (ValueError, ArithmeticError, UnicodeError) as error:
        raise Unprocessable("after is not a `next_after` this list gave") from error
    # Found in review: NaN, sNaN or 1e999999999 parsed, then failed the page's comparison (500).
    if not value.is_finite() or abs(value.adjusted()) > BALANCE_DIGITS_MAX:
        raise Unprocessable("after is not a `next_after` this list gave")
    return value, partner_id


def partners_page(
    matching: list[PartnerPayoutsOut], after: str | None, offset: int, limit: int
) -> tuple[list[PartnerPayoutsOut], int, str | None]:
    """A page of the list (largest balance first, then by id): the partners past `after`
    (skipping `offset` more), how many come before it, and the next page's `after`. Found in
    review: pages were offsets, so partners a payment moved out of "owed" (or down the list)
    moved as many others past the next page, never shown."""
    past = matching
    if after is not None:
        balance, last = page_cursor(after)
        past = [p for p in matching if (-p.balance, p.partner_id) > (-balance, last)]
    page = past[offset : offset + limit]
    more = len(past) > offset + limit
    return page, len(matching) - len(past) + offset, cursor_of(page[-1]) if page and more else None


async def payouts(
    conn: Connection,
    programs: IncentivePrograms,
    *,
    period: str | None,
    state: Settlement | None,
    partner: str | None = None,
    after: str | None = None,
    offset: int,
    limit: int,
    payouts_before: str | None = None,
    payouts_limit: int = 100,
) -> PayoutsOut:
    rows = await conn.fetch(PARTNER_TOTALS_SQL, period)
    known = await conn.fetch(
        "SELECT partner_id, status FROM partners WHERE partner_id = ANY($1::text[])",
        [r["partner_id"] for r in rows],
    )
    statuses: dict[str, str] = {k["partner_id"]: k["status"] for k in known}
    everyone = [
        from_row(
            PartnerPayoutsOut,
            r,
            state=settlement_of(r["balance"]),
            partner_status=statuses.get(r["partner_id"]),
        )
        for r in rows
    ]
    matching = [
        p
        for p in everyone
        if (state is None or p.state is state) and (partner is None or p.partner_id == partner)
    ]
    page, before, next_after = partners_page(matching, after, offset, limit)
    after_moment = None
    if payouts_before is not None:
        after_moment = await conn.fetchval(
            "SELECT created_at FROM ledger_entries WHERE entry_id = $1 AND entry_type = 'payout'",
            payouts_before,
        )
        if after_moment is None:
            raise Unprocessable(f"payouts_before names no payout: {payouts_before}")
    made = await conn.fetch(
        PAYOUTS_MADE_SQL, period, partner, after_moment, payouts_before, payouts_limit + 1
    )
    more_made = len(made) > payouts_limit
    made = made[:payouts_limit]
    periods = await conn.fetch(PERIODS_SQL)
    return PayoutsOut(
        period=period,
        currency=programs.currency,
        periods=[r["period"] for r in periods],
        totals={
            "earned": sum((p.earned for p in everyone), Decimal(0)),
            "reversed": sum((p.reversed for p in everyone), Decimal(0)),
            "paid": sum((p.paid for p in everyone), Decimal(0)),
            "owed": sum((p.balance for p in everyone if p.balance > 0), Decimal(0)),
        },
        partners=page,
        total_partners=len(matching),
        partners_before=before,
        next_after=next_after,
        payouts=[
            PayoutEntryOut(
                entry_id=r["entry_id"],
                partner_id=r["partner_id"],
                amount=r["amount"],
                reference=r["reference"] or "",
                period=r["period"],
                paid_at=r["created_at"],
            )
            for r in made
        ],
        total_payouts=await conn.fetchval(PAYOUTS_COUNTED_SQL, period, partner),
        next_payouts_before=made[-1]["entry_id"] if more_made else None,
    )
