"""Payouts once per (partner, reference) on a real Postgres schema: finance's concurrent retries
of one payout book one ledger entry and announce it once, a retry answers with the recorded
payout, another amount under the reference is a conflict, the table's key refuses a second
payout under one reference whatever the timing, and a ledger written before holding two payouts
under one reference still migrates (both stay as paid)."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from services.incentives import payouts
from services.incentives.domain.ledger import PayoutConflict, PayoutHeld, PayoutRefused
from services.incentives.domain.programs import IncentivePrograms
from shared.db import Pool, create_pool
from shared.events.incentives import PayoutRecorded
from tests.support.factories import credit_issued
from tests.support.incentives import MIGRATIONS, OUTBOX, apply_credit
from tests.support.infra import (
    ScratchService,
    migrations_before,
    scratch_pool_fixture,
)
from tests.support.outbox import event_json

pytestmark = pytest.mark.integration
D = Decimal
PROGRAMS = IncentivePrograms()


pool = scratch_pool_fixture("incentives", MIGRATIONS, max_size=20)


async def earning_partner(pool: Pool) -> tuple[str, Decimal]:
    """A gold partner with a credit booked: its id and its balance."""
    partner = f"p-{uuid.uuid4().hex[:8]}"
    await pool.execute("INSERT INTO partners VALUES ($1, 'gold', 'active', 1, now())", partner)
    await apply_credit(pool, PROGRAMS, credit_issued(partner_id=partner, amount="10000.00"))
    balance = await pool.fetchval(
        "SELECT sum(amount) FROM ledger_entries WHERE partner_id = $1", partner
    )
    assert balance > 0
    return partner, balance


async def pay(
    pool: Pool, partner: str, amount: str | None, reference: str
) -> tuple[PayoutRecorded, bool]:
    """A payout as the route records it (one transaction)."""
    async with pool.acquire() as conn, conn.transaction():
        return await payouts.record_payout(
            conn, OUTBOX, PROGRAMS, partner, None if amount is None else D(amount), reference
        )


async def booked(pool: Pool, partner: str, reference: str) -> list[Decimal]:
    rows = await pool.fetch(
        """SELECT amount FROM ledger_entries
           WHERE partner_id = $1 AND entry_type = 'payout' AND reference = $2""",
        partner,
        reference,
    )
    return [r["amount"] for r in rows]


async def announced(pool: Pool, partner: str) -> list[dict[str, str]]:
    rows = await pool.fetch(
        """SELECT value, value_codec FROM outbox WHERE event_type = 'incentive.payout_recorded.v1'
           AND message_key = $1 ORDER BY position""",
        partner,
    )
    return [event_json(r)["data"] for r in rows]


async def test_concurrent_retries_of_a_payout_book_it_once(pool: Pool) -> None:
    """Twenty copies of one request at once on twenty connections (finance's client retrying
    "wire-1"): one ledger entry, one announcement, every answer the same payout."""
    partner, balance = await earning_partner(pool)
    answers = await asyncio.gather(*(pay(pool, partner, "0.01", "wire-1") for _ in range(20)))
    assert sorted(new for _, new in answers) == [False] * 19 + [True]
    assert len({paid.entry_id for paid, _ in answers}) == 1
    assert {(paid.amount, paid.balance_after) for paid, _ in answers} == {
        (D("0.01"), balance - D("0.01"))
    }
    assert await booked(pool, partner, "wire-1") == [D("-0.01")]
    assert [(e["entry_id"], e["amount"]) for e in await announced(pool, partner)] == [
        (answers[0][0].entry_id, "0.01")
    ]
    left = await pool.fetchval(
        "SELECT sum(amount) FROM ledger_entries WHERE partner_id = $1", partner
    )
    assert left == balance - D("0.01")


async def test_a_reference_names_one_payout(pool: Pool) -> None:
    partner, balance = await earning_partner(pool)
    first, new = await pay(pool, partner, "1e1", "wire-2")  # as stored: 10.00
    assert new
    assert (str(first.amount), str(first.balance_after)) == ("10.00", str(balance - 10))
    again, new = await pay(pool, partner, "10", "wire-2")
    assert (again, new) == (first, False)
    with pytest.raises(
        PayoutConflict,
        match=(
            rf"^reference wire-2 already names payout {first.entry_id} of 10\.00 USD "
            r"\(asked for 10\.00 USD\); this request asks for 10\.01 USD: a new payout needs "
            r"a new reference$"
        ),
    ):
        await pay(pool, partner, "10.01", "wire-2")
    with pytest.raises(PayoutConflict, match=r"this request asks for the whole balance"):
        await pay(pool, partner, None, "wire-2")

    # The whole balance, retried once the balance is gone: the recorded payout, not a refusal.
    rest, new = await pay(pool, partner, None, "wire-3")
    assert (new, rest.amount, rest.balance_after) == (True, balance - 10, D("0.00"))
    assert await pay(pool, partner, None, "wire-3") == (rest, False)
    assert await pay(pool, partner, str(balance - 10), "wire-3") == (rest, False)
    with pytest.raises(PayoutRefused, match=r"^nothing to pay: the balance is 0\.00$"):
        await pay(pool, partner, None, "wire-4")
    # Another partner's reference is its own.
    other, _ = await earning_partner(pool)
    assert (await pay(pool, other, "10.00", "wire-2"))[0].entry_id != first.entry_id

    assert [e["reference"] for e in await announced(pool, partner)] == ["wire-2", "wire-3"]
    # The table's key refuses a second payout under a reference, whatever the timing; the
    # references are as append-only as the ledger.
    with pytest.raises(asyncpg.exceptions.UniqueViolationError):
        await pool.execute(
            """INSERT INTO payout_references (partner_id, reference, entry_id, balance_after)
               SELECT partner_id, 'wire-2', entry_id, 0 FROM ledger_entries
               WHERE partner_id = $1 AND entry_type = 'accrual' LIMIT 1""",
            partner,
        )
    with pytest.raises(asyncpg.exceptions.RestrictViolationError, match="append-only"):
        await pool.execute(
            "UPDATE payout_references SET reference = 'x' WHERE partner_id = $1", partner
        )


async def test_a_ledger_with_two_payouts_under_one_reference_still_migrates(
    scratch_service: ScratchService, tmp_path: Path
) -> None:
    """Before the references, a retried payout was paid twice: both stay in the append-only
    ledger, and the first answers a retry from now on."""
    before = migrations_before(MIGRATIONS, "0008_payout_references.sql", tmp_path / "migrations")
    assert sorted(p.name for p in before.iterdir())[-1] == "0007_campaigns.sql"
    await scratch_service.migrate("incentives", before)
    pool = await create_pool(scratch_service.dsn, scratch_service.schema, max_size=2)
    try:
        for entry, amount in (("old-1", "-5.00"), ("old-2", "-5.00"), ("old-3", "-7.00")):
            await pool.execute(
                """INSERT INTO ledger_entries (entry_id, partner_id, entry_type, rule, period,
                       amount, currency, programs_version, reference, created_at)
                   VALUES ($1, 'p-old', 'payout', 'payout', '2026-Q4', $2, 'USD', 'v', $3,
                       now())""",
                entry,
                D(amount),
                "wire-9" if entry != "old-3" else "wire-10",
            )
        await scratch_service.migrate("incentives", MIGRATIONS)
        kept = await pool.fetch(
            """SELECT reference, entry_id, requested, balance_after FROM payout_references
               ORDER BY reference"""
        )
        assert [tuple(r) for r in kept] == [
            ("wire-10", "old-3", D("7.00"), D("-17.00")),
            ("wire-9", "old-1", D("5.00"), D("-5.00")),
        ]
        async with pool.acquire() as conn, conn.transaction():
            paid, new = await payouts.record_payout(
                conn, OUTBOX, PROGRAMS, "p-old", D("5.00"), "wire-9"
            )
        assert (paid.entry_id, new) == ("old-1", False)
    finally:
        await pool.close()


@pytest.mark.parametrize("status", ["suspended", "expelled", "rejected"])
async def test_a_partner_that_lost_access_is_not_paid_its_balance_is_held(
    pool: Pool, status: str
) -> None:
    """Found in review: finance saw an expelled partner's balance as owed and paid it in full;
    nothing held it. Reinstated, it is paid."""
    partner, balance = await earning_partner(pool)
    await pool.execute("UPDATE partners SET status = $2 WHERE partner_id = $1", partner, status)
    with pytest.raises(PayoutHeld, match=f"partner is {status}: its balance is held"):
        await pay(pool, partner, None, "held-1")
    paid = await pool.fetchval(
        "SELECT count(*) FROM ledger_entries WHERE partner_id = $1 AND entry_type = 'payout'",
        partner,
    )
    assert paid == 0
    await pool.execute("UPDATE partners SET status = 'active' WHERE partner_id = $1", partner)
    payout, new = await pay(pool, partner, None, "held-1")
    assert (payout.amount, new) == (balance, True)
