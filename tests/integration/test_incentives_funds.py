"""MDF fund mechanics on a real Postgres schema: expiry of unused funds, clawback after expiry,
clawback of spent funds turning into a deficit repaid by the next accrual, and the fund
invariant (MDF ledger balance = what is left in the lots - deficit) after every step."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.incentives import views
from services.incentives.clawbacks import reverse_credit
from services.incentives.domain.claims import ClaimAsk, ClaimConflict
from services.incentives.domain.programs import IncentivePrograms, Mdf
from services.incentives.mdf_claims import ClaimRequested, decide_claim, request_claim
from services.incentives.mdf_expiry import expire_due
from services.incentives.mdf_repository import SUMMARY_LOT, lock_funds, lock_funds_summarised
from shared.db import Pool
from shared.events import Envelope
from shared.events.attribution import CreditReversed
from tests.support.factories import credit_issued, credit_reversed
from tests.support.incentives import MIGRATIONS, OUTBOX, apply_credit, fund_state
from tests.support.infra import scratch_pool_fixture

pytestmark = pytest.mark.integration
D = Decimal


pool = scratch_pool_fixture("incentives", MIGRATIONS)


async def apply_reversal(
    pool: Pool, programs: IncentivePrograms, reversed_: CreditReversed
) -> None:
    """Claw a credit back as the ledger consumer does (one transaction)."""
    cause = Envelope.wrap(reversed_, source="pollinate/attribution", subject=reversed_.deal_key)
    async with pool.acquire() as conn, conn.transaction():
        clawed = await reverse_credit(conn, programs, reversed_, cause=cause, ingested_at=None)
        await OUTBOX.publish_many(conn, clawed.events)


async def claim(
    pool: Pool, programs: IncentivePrograms, partner: str, amount: str, proof: str
) -> ClaimRequested:
    """`partner` asks for `amount` of its fund, as the claims route does (one transaction)."""
    async with pool.acquire() as conn, conn.transaction():
        return await request_claim(
            conn, programs, ClaimAsk(partner, D(amount), "trade show", proof)
        )


async def test_spent_funds_clawed_back_become_a_deficit_repaid_by_the_next_accrual(
    pool: Pool,
) -> None:
    programs = IncentivePrograms()  # gold MDF 2 %
    partner = f"p-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO partners VALUES ($1, 'gold', 'active', 1, now())", partner)
    first = credit_issued(partner_id=partner, amount="100000.00")
    await apply_credit(pool, programs, first)
    assert (await fund_state(pool, partner))["available"] == "2000.00"

    requested = await claim(pool, programs, partner, "1500.00", "INV-1")
    async with pool.acquire() as conn, conn.transaction():
        await decide_claim(conn, OUTBOX, programs, requested.claim_id, approve=True, note="")
    assert await fund_state(pool, partner) == {
        "available": "500.00",
        "ledger_balance": "500.00",
        "deficit": "0.00",
    }

    await apply_reversal(pool, programs, credit_reversed(first))
    assert await fund_state(pool, partner) == {
        "available": "-1500.00",
        "ledger_balance": "-1500.00",
        "deficit": "1500.00",
    }
    with pytest.raises(ClaimConflict) as refused:
        await claim(pool, programs, partner, "1.00", "INV-2")
    assert refused.value.message == "claim of 1.00 exceeds the available fund of -1500.00"

    await apply_credit(pool, programs, credit_issued(partner_id=partner, amount="100000.00"))
    assert await fund_state(pool, partner) == {
        "available": "500.00",
        "ledger_balance": "500.00",
        "deficit": "0.00",
    }


async def test_unused_funds_expire_and_a_later_clawback_restores_only_the_expired_part(
    pool: Pool,
) -> None:
    programs = IncentivePrograms(mdf=Mdf(expiry_days=0))  # every lot is due at once
    partner = f"p-{uuid.uuid4().hex[:8]}"
    await pool.execute(
        "INSERT INTO partners VALUES ($1, 'registered', 'active', 1, now())", partner
    )
    issued = credit_issued(partner_id=partner, amount="50000.00")  # registered: MDF 2 %
    await apply_credit(pool, programs, issued)
    assert await fund_state(pool, partner) == {
        "available": "0.00",  # already past its expiry, not yet swept
        "ledger_balance": "1000.00",
        "deficit": "0.00",
    }
    # The lot ended a second before a quarter did: its expiry is that quarter's, whenever the
    # sweep runs (it was booked in the sweep's own).
    ended = datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC)
    await pool.execute("UPDATE mdf_lots SET expires_at = $2 WHERE partner_id = $1", partner, ended)
    async with pool.acquire() as conn:
        assert await expire_due(conn, OUTBOX, programs) >= 1
        assert await expire_due(conn, OUTBOX, programs) == 0  # nothing twice
    booked = await pool.fetchval(
        "SELECT period FROM mdf_entries WHERE partner_id = $1 AND entry_type = 'expiry'", partner
    )
    assert booked == "2026-Q1"
    assert await fund_state(pool, partner) == {
        "available": "0.00",
        "ledger_balance": "0.00",
        "deficit": "0.00",
    }
    await apply_reversal(pool, programs, credit_reversed(issued))
    # The expired remainder is restored, then the accrual reversed in full: no deficit for
    # funds the partner never used.
    assert await fund_state(pool, partner) == {
        "available": "0.00",
        "ledger_balance": "0.00",
        "deficit": "0.00",
    }
    async with pool.acquire() as conn:
        types = [
            r["entry_type"]
            for r in await conn.fetch(
                "SELECT entry_type FROM mdf_entries WHERE partner_id = $1 ORDER BY seq", partner
            )
        ]
    assert types == ["accrual", "expiry", "expiry_reversal", "reversal"]


async def test_a_summarised_fund_reads_the_same_available_amount_as_its_lots(pool: Pool) -> None:
    """Accruals read a fund's lots as one summary (their cost must not grow with history);
    the amount available must be exactly what the lots one by one give, at any time in the
    window, including when a lot expires inside the window."""
    start = datetime(2026, 6, 1, 12, tzinfo=UTC)
    end = start + timedelta(seconds=1)
    lots = {
        "old": ("100.00", start - timedelta(days=1)),  # expired: never counts
        "soon": ("20.00", start + timedelta(milliseconds=500)),  # expires inside the window
        "later": ("30.00", start + timedelta(days=30)),
        "last": ("40.00", start + timedelta(days=90)),
    }
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO mdf_funds VALUES ('steady', 5.00, $1), ('expiring', 0, $1)", start
        )
        for partner in ("steady", "expiring"):
            for name, (remaining, expires_at) in lots.items():
                if partner == "steady" and name == "soon":
                    continue
                await conn.execute(
                    "INSERT INTO mdf_lots (lot_id, partner_id, credit_id, amount, remaining,"
                    " expires_at, created_at) VALUES ($1, $2, $1, $3, $3, $4, $5)",
                    f"{partner}-{name}",
                    partner,
                    D(remaining),
                    expires_at,
                    start,
                )
        # Lots change after they are written (claims and clawbacks take from them, the expiry
        # job zeroes them): the fund's kept total follows updates and deletes too.
        await conn.execute(
            "INSERT INTO mdf_lots (lot_id, partner_id, credit_id, amount, remaining, expires_at,"
            " created_at) VALUES ('steady-gone', 'steady', 'steady-gone', 7, 7, $1, $1)",
            start + timedelta(days=10),
        )
        await conn.execute("DELETE FROM mdf_lots WHERE lot_id = 'steady-gone'")
        await conn.execute(
            "UPDATE mdf_lots SET remaining = remaining - 10 WHERE lot_id LIKE '%-last'"
        )
        kept = await conn.fetch(
            """SELECT f.partner_id, f.lots_remaining, sum(l.remaining) AS lots
               FROM mdf_funds f JOIN mdf_lots l USING (partner_id) GROUP BY 1, 2"""
        )
        assert all(r["lots_remaining"] == r["lots"] for r in kept), kept
        full = await lock_funds(conn, ["steady", "expiring"])
        summarised = await lock_funds_summarised(conn, ["steady", "expiring"], start, end)

    assert [lot.lot_id for lot in summarised["steady"].lots] == [SUMMARY_LOT]
    assert len(summarised["expiring"].lots) == 4  # one by one: a lot expires in the window
    for partner in ("steady", "expiring"):
        for at in (start, start + timedelta(milliseconds=700), end):
            assert summarised[partner].available(at) == full[partner].available(at)
    assert summarised["steady"].available(end) == D("55.00")  # 30 + (40 - 10) - 5 deficit
    assert summarised["expiring"].available(start) == D("80.00")
    assert summarised["expiring"].available(end) == D("60.00")


async def test_a_fund_lists_the_lots_holding_money_and_those_ended_in_the_last_90_days(
    pool: Pool,
) -> None:
    """A lot per MDF accrual, kept for years: the fund's list is bounded by time, never by the
    partner's history, and still has every lot the fund's figures come from."""
    at = datetime.now(UTC)
    lots = {  # remaining, expired (of 100), expiry
        "spent-long-ago": (0, 0, at - timedelta(days=200)),
        "lapsed-long-ago": (0, 100, at - timedelta(days=100)),
        "lapsed-lately": (0, 60, at - timedelta(days=30)),
        "live-past-due": (25, 0, at - timedelta(days=200)),  # the expiry job has not run
        "spent-live": (0, 0, at + timedelta(days=100)),
        "live": (40, 0, at + timedelta(days=10)),
    }
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO mdf_funds (partner_id, created_at) VALUES ('p', $1)", at)
        for lot_id, (remaining, expired, expires_at) in lots.items():
            await conn.execute(
                """INSERT INTO mdf_lots (lot_id, partner_id, credit_id, amount, remaining,
                       expired, expires_at, created_at) VALUES ($1, 'p', $1, 100, $2, $3, $4, $5)""",
                lot_id,
                remaining,
                expired,
                expires_at,
                at - timedelta(days=400),
            )
        shown = await views.fund(conn, "p")
    assert [lot.lot_id for lot in shown.lots] == [
        "live-past-due",
        "lapsed-lately",
        "live",
        "spent-live",
    ]
    assert shown.available == D(40)
    assert at - timedelta(days=91) < shown.lots_since < at - timedelta(days=89)
