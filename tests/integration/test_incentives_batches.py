"""The ledger consumer on real Kafka records and a real Postgres schema, batch by batch.

A batch of credits and reversals for the same partner, customer and region books exactly what
the same events book one at a time (running period caps, MDF caps and deficit, "new logo" and
"new region" first deals, a reversal parked before its credit, a reversal between credits); a
poison credit in the middle of a run is dead-lettered while the rest is applied once; a
redelivered batch changes nothing; the statements a run needs do not grow with its length; and
credits that overtake their partner's activation wait for it, then book what they would have.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.incentives import partner_projection, repository
from services.incentives.ledger_events import LedgerAnnouncements
from shared.consumer import Outcome
from shared.db import Pool
from shared.events import Envelope, EventPayload
from shared.events.attribution import CreditIssued
from shared.events.partners import PartnerStatus
from tests.support.factories import AT, credit_reversed
from tests.support.incentives import (
    PROGRAMS,
    credit,
    incentives_schema,
    ledger_consumer,
    partner_records,
    records_of,
    snapshot,
)
from tests.support.infra import Infra, statements_sent
from tests.support.locks import held_keys, waiter_of
from tests.support.outbox import event_json
from tests.support.polling import eventually

pytestmark = pytest.mark.integration
D = Decimal
EARLIER = AT.date() - timedelta(days=95)  # another quarter than the factories' close date


# Columns that hold the moment of processing, not a decision.
VOLATILE = {
    "seq",
    "created_at",
    "processed_at",
    "reversed_at",
    "first_seen_at",
    "received_at",
    "held_at",
}
VOLATILE_EVENT_FIELDS = {
    "earned_at",
    "accrued_at",
    "booked_at",
    "created_at",
    "reversed_at",
    "expires_at",
}


def without_volatile(data: Any) -> Any:
    """An event's data without processing timestamps, in the entries a booking carries too."""
    if isinstance(data, dict):
        return {k: without_volatile(v) for k, v in data.items() if k not in VOLATILE_EVENT_FIELDS}
    if isinstance(data, list):
        return [without_volatile(v) for v in data]
    return data


async def state(pool: Pool) -> dict[str, Any]:
    """Everything the ledger consumer wrote, in write order, without processing timestamps."""
    tables = {
        "credits": "credit_id",
        "customers": "customer_key",
        "partner_regions": "partner_id, region",
        "ledger_entries": "seq",
        "mdf_funds": "partner_id",
        "mdf_lots": "lot_id",
        "mdf_entries": "seq",
        "pending_reversals": "credit_id",
        "held_credits": "seq",
    }
    out: dict[str, Any] = {}
    for table, order in tables.items():
        rows = await pool.fetch(f"SELECT * FROM {table} ORDER BY {order}")
        out[table] = [
            {k: v for k, v in row.items() if k not in VOLATILE and k != "expires_at"}
            for row in rows
        ]
    events = []
    for row in await pool.fetch(
        "SELECT event_id, topic, message_key, event_type, value, value_codec FROM outbox ORDER BY position"
    ):
        data = event_json(row)["data"]
        if row["topic"].endswith(".dlq.v1"):
            data = {}  # the dead-lettered record as it came
        # Every id is deterministic: an entry's, a notification's (from what it is about).
        events.append(
            (
                row["event_id"],
                row["topic"],
                row["message_key"],
                row["event_type"],
                without_volatile(data),
            )
        )
    out["outbox"] = events
    return out


def scenario(run: str) -> tuple[list[EventPayload], dict[str, CreditIssued]]:
    """Credits and reversals of one gold partner P (and one registered partner Q) that lean on
    each other: the same customer, deal and region several times, caps crossed in two periods,
    a duplicate credit, a reversal that arrives before its credit, a reversal between credits."""
    p, q = f"p-{run}", f"q-{run}"
    ai = ("ai",)
    c = {
        # 12 %: 1 200.00; MDF 200.00 of which 150.00 repays P's deficit.
        "c1": credit(run, "c1", p, "d1", "10000.00", "x", "DE", products=ai, co_sell=True),
        # Same customer on another deal, same region: 8 %, cut to the 300.00 left of the cap.
        "c2": credit(run, "c2", p, "d2", "10000.00", "x", "FR", products=ai, co_sell=True),
        # Another credit on the customer's first deal: new logo and region again, cap reached.
        "c3": credit(run, "c3", p, "d1", "1000.00", "x", "DE", products=ai),
        # Another partner on the first deal: new logo, its own first region, default tier.
        "c4": credit(run, "c4", q, "d1", "10000.00", "x", "DE", products=ai, co_sell=True),
        # The previous quarter: its own caps.
        "c6": credit(
            run, "c6", p, "d6", "10000.00", "y", "US", close_date=EARLIER, products=ai, co_sell=True
        ),
        "c8": credit(run, "c8", p, "d8", "5000.00", "z", "US", close_date=EARLIER),
        "c9": credit(run, "c9", p, "d9", "2000.00", "w", "US", close_date=EARLIER),
        "c11": credit(run, "c11", p, "d11", "10000.00", "v", "DE"),
    }
    events: list[EventPayload] = [
        c["c1"],
        c["c2"],
        c["c3"],
        c["c4"],
        c["c1"],  # the same credit in a new event: paid once
        c["c6"],
        credit_reversed(c["c8"]),  # before its credit: parked
        c["c8"],  # booked, then reversed by the parked reversal
        c["c9"],  # sees the room the reversal freed
        credit_reversed(c["c2"]),
        c["c11"],  # sees the room the reversal of c2 freed
    ]
    return events, c


async def prepare(pool: Pool, run: str) -> None:
    """P is gold and owes 150.00 of MDF from an earlier clawback."""
    await pool.execute("INSERT INTO partners VALUES ($1, 'gold', 'active', 1, now())", f"p-{run}")
    # Q is active at the default tier (a partner unknown to incentives would earn nothing).
    await pool.execute(
        "INSERT INTO partners VALUES ($1, 'registered', 'active', 1, now())", f"q-{run}"
    )
    await pool.execute(
        "INSERT INTO mdf_funds (partner_id, deficit, created_at) VALUES ($1, 150.00, now())",
        f"p-{run}",
    )


async def test_a_batch_books_exactly_what_one_event_at_a_time_books(infra: Infra) -> None:
    run = uuid.uuid4().hex[:8]
    events, c = scenario(run)
    records = await records_of(infra, *events)
    async with incentives_schema(infra) as (batched, _), incentives_schema(infra) as (single, _):
        await prepare(batched, run)
        await prepare(single, run)

        outcomes = await ledger_consumer(batched).process_batch(records)
        one_by_one = ledger_consumer(single)
        singles = [await one_by_one.process(record) for record in records]

        assert outcomes == singles == [Outcome.PROCESSED] * len(records)
        booked = await state(batched)
        assert booked == await state(single)

        # And it is what the rules say, not merely the same mistake twice.
        rows = await batched.fetch(
            """SELECT credit_id, new_logo, new_region, reversal_id IS NOT NULL AS reversed,
                   (SELECT coalesce(sum(amount), 0) FROM ledger_entries l
                    WHERE l.credit_id = c.credit_id AND l.entry_type <> 'reversal') AS earned,
                   (SELECT amount FROM mdf_entries m
                    WHERE m.credit_id = c.credit_id AND m.entry_type = 'accrual') AS mdf
               FROM credits c"""
        )
        got = {r["credit_id"].split("-")[0]: tuple(r)[1:] for r in rows}
        assert got == {
            "c1": (True, True, False, D("1200.00"), D("200.00")),
            "c2": (False, False, True, D("300.00"), D("100.00")),
            "c3": (True, True, False, D("0.00"), D("0.00")),
            "c4": (True, True, False, D("800.00"), D("200.00")),
            "c6": (True, True, False, D("1200.00"), D("200.00")),
            "c8": (True, False, True, D("300.00"), D("100.00")),
            "c9": (True, False, False, D("160.00"), D("40.00")),
            "c11": (True, False, False, D("300.00"), D("100.00")),
        }
        p = f"p-{run}"
        assert await batched.fetchval("SELECT deficit FROM mdf_funds WHERE partner_id = $1", p) == 0
        assert await batched.fetchval(
            "SELECT remaining FROM mdf_lots WHERE credit_id = $1", c["c1"].credit_id
        ) == D("50.00")
        # One booking event per credit booked, carrying its earning lines in order.
        bookings = [e[4] for e in booked["outbox"] if e[3] == "incentive.credit_booked.v1"]
        assert [b["credit_id"].split("-")[0] for b in bookings] == [
            "c1", "c2", "c3", "c4", "c6", "c8", "c9", "c11"
        ]  # fmt: skip
        earned = [line for b in bookings for line in b["earnings"]]
        assert [e["credit_id"].split("-")[0] for e in earned] == (
            ["c1"] * 5
            + ["c2"] * 3
            + ["c3"] * 4
            + ["c4"] * 5
            + ["c6"] * 5
            + ["c8"] * 2
            + ["c9"] * 2
            + ["c11"] * 2
        )
        notes = [e[4]["body"] for e in booked["outbox"] if e[1] == "notifications.partner.v1"]
        assert len(notes) == 9  # 7 earnings (not c3: it earned 0.00) and 2 clawbacks

        # Redelivered: nothing changes.
        again = await ledger_consumer(batched).process_batch(records)
        assert again == [Outcome.DUPLICATE] * len(records)
        assert await state(batched) == booked


async def test_what_a_booking_writes_is_named_after_its_credits_issue_time(infra: Infra) -> None:
    """Earning lines, MDF lots and accruals, and booking events carry ids that begin with
    their credit's issue time (which the credit's event carries), so the ledgers' keys grow
    at their right edge; booking a credit again names the same rows (the test above)."""
    run = uuid.uuid4().hex[:8]
    events, c = scenario(run)
    records = await records_of(infra, *events)
    millis = {
        credit.credit_id: (credit.issued_at - datetime(1970, 1, 1, tzinfo=UTC))
        // timedelta(milliseconds=1)
        for credit in c.values()
    }
    async with incentives_schema(infra) as (pool, _):
        await prepare(pool, run)
        await ledger_consumer(pool).process_batch(records)
        rows = await pool.fetch(
            """SELECT credit_id, entry_id AS id FROM ledger_entries WHERE entry_type <> 'reversal'
               UNION ALL SELECT credit_id, lot_id FROM mdf_lots
               UNION ALL SELECT credit_id, entry_id FROM mdf_entries WHERE entry_type = 'accrual'"""
        )
        booked = await pool.fetch(
            """SELECT event_id, value, value_codec FROM outbox
               WHERE event_type = 'incentive.credit_booked.v1'"""
        )
    named = [(row["credit_id"], row["id"]) for row in rows] + [
        (event_json(row)["data"]["credit_id"], str(row["event_id"])) for row in booked
    ]
    assert len(named) == 28 + 8 + 8 + 8  # the earning lines counted above, then per credit
    for credit_id, named_id in named:
        made = uuid.UUID(named_id)
        assert (made.version, made.int >> 80) == (8, millis[credit_id])


async def test_during_an_upgrade_the_entries_of_each_booking_can_go_out_alone(
    infra: Infra,
) -> None:
    """INCENTIVES_LEDGER_ENTRIES_ALONE: the same rows, and each entry a booking carries
    announced alone instead, as the version before bookings did (identified by its entry)."""
    run = uuid.uuid4().hex[:8]
    events, _ = scenario(run)
    records = await records_of(infra, *events)
    alone = LedgerAnnouncements(entries_alone=True)
    async with incentives_schema(infra) as (grouped, _), incentives_schema(infra) as (split, _):
        await prepare(grouped, run)
        await prepare(split, run)
        await ledger_consumer(grouped).process_batch(records)
        await ledger_consumer(split, announcements=alone).process_batch(records)

        booked, entries = await state(grouped), await state(split)
        assert {k: v for k, v in booked.items() if k != "outbox"} == {
            k: v for k, v in entries.items() if k != "outbox"
        }
        kinds = ("incentive.earned.v1", "incentive.mdf_accrued.v1", "incentive.credit_booked.v1")
        carried = []
        for _id, _topic, _key, kind, data in booked["outbox"]:
            if kind == "incentive.credit_booked.v1":
                carried += [("incentive.earned.v1", line) for line in data["earnings"]]
                if data["mdf_accrued"] is not None:
                    carried += [("incentive.mdf_accrued.v1", data["mdf_accrued"])]
        assert len(carried) == 36  # 28 earnings, 8 accruals
        assert [(e[3], e[4]) for e in entries["outbox"] if e[3] in kinds] == carried
        assert all(e[0] == uuid.UUID(e[4]["entry_id"]) for e in entries["outbox"] if e[3] in kinds)
        # Everything else the same, in the same order.
        assert [e for e in booked["outbox"] if e[3] not in kinds] == [
            e for e in entries["outbox"] if e[3] not in kinds
        ]


async def test_a_poison_credit_in_a_run_is_dead_lettered_and_the_rest_applied_once(
    infra: Infra,
) -> None:
    run = uuid.uuid4().hex[:8]
    p = f"p-{run}"
    first = credit(run, "a", p, "da", "10000.00", "a", "DE")
    euro = credit(run, "e", p, "de", "10.00", "e", "DE", currency="EUR")
    # The same customer and region as the first: no kickers, and the cap counts the first.
    second = credit(run, "b", p, "db", "30000.00", "a", "DE")
    records = await records_of(infra, first, euro, second)
    async with incentives_schema(infra) as (pool, _):
        await prepare(pool, run)
        consumer = ledger_consumer(pool)

        assert await consumer.process_batch(records) == [
            Outcome.PROCESSED,
            Outcome.DEAD_LETTERED,
            Outcome.PROCESSED,
        ]
        rows = await pool.fetch(
            "SELECT credit_id, rule, amount FROM ledger_entries ORDER BY seq",
        )
        assert [(r["credit_id"], r["rule"], r["amount"]) for r in rows] == [
            (first.credit_id, "base:gold", D("500.00")),
            (first.credit_id, "kicker:new_logo", D("300.00")),
            (first.credit_id, "kicker:new_region", D("100.00")),
            (second.credit_id, "base:gold", D("600.00")),  # 1 500.00 cap - 900.00
        ]
        assert await pool.fetchval("SELECT count(*) FROM credits") == 2
        reason = await pool.fetchval(
            "SELECT headers->>'dlq.reason' FROM outbox WHERE topic = 'incentives.dlq.v1'"
        )
        assert reason.startswith(f"rejected by handler: credit {euro.credit_id} is in EUR")
        booked = await state(pool)

        # Redelivered: the good ones are duplicates, the poison one is parked once.
        assert await consumer.process_batch(records) == [
            Outcome.DUPLICATE,
            Outcome.DEAD_LETTERED,
            Outcome.DUPLICATE,
        ]
        assert await state(pool) == booked
        # The same credit in a new event, in a later batch: dropped by its credit id.
        assert await consumer.process_batch(await records_of(infra, second)) == [Outcome.PROCESSED]
        assert await state(pool) == booked


async def statements_of(infra: Infra, role: str, work: Callable[[], Any]) -> tuple[int, Any]:
    """Statements `role` sent during `work` (top-level: not the foreign-key checks they run),
    from pg_stat_statements when it is loaded."""
    before = await statements_sent(infra, role)
    result = await work()
    return await statements_sent(infra, role) - before, result


async def test_statements_per_run_do_not_grow_with_its_length(infra: Infra) -> None:
    """Measured with pg_stat_statements (skipped where it is not loaded)."""
    run = uuid.uuid4().hex[:8]

    def credits(n: int, tag: str) -> list[EventPayload]:
        # Each credit for a partner, customer and region of its own, earning and accruing MDF.
        return [
            credit(
                run, f"{tag}{i}", f"{tag}p{i % 5}-{run}", f"{tag}d{i}", "1000.00", f"{tag}{i}", "DE"
            )
            for i in range(n)
        ]

    short, long = (
        await records_of(infra, *credits(2, "s")),
        await records_of(infra, *credits(40, "l")),
    )
    async with incentives_schema(infra) as (pool, role):
        await pool.executemany(
            "INSERT INTO partners VALUES ($1, 'registered', 'active', 1, now())",
            [(f"{tag}p{i}-{run}",) for tag in ("s", "l", "w") for i in range(5)],
        )
        consumer = ledger_consumer(pool)
        warm = await records_of(infra, *credits(1, "w"))
        await consumer.process_batch(warm)  # connection set-up and type introspection
        n_short, outcomes = await statements_of(infra, role, lambda: consumer.process_batch(short))
        assert outcomes == [Outcome.PROCESSED] * 2
        n_long, outcomes = await statements_of(infra, role, lambda: consumer.process_batch(long))
        assert outcomes == [Outcome.PROCESSED] * 40
        print(f"statements: run of 2 -> {n_short}, run of 40 -> {n_long}")
        assert n_long == n_short
        assert await pool.fetchval("SELECT count(*) FROM mdf_lots") == 43


async def ledger_of(pool: Pool) -> list[tuple[Any, ...]]:
    rows = await pool.fetch(
        """SELECT credit_id, entry_type, rule, amount FROM ledger_entries
           ORDER BY credit_id, entry_type, rule"""
    )
    return [tuple(r) for r in rows]


async def test_credits_before_their_partner_is_active_wait_and_then_book_what_they_would_have(
    infra: Infra,
) -> None:
    """Credits that overtake their partner's activation (different topics, no order between
    them) are held, not refused: booked when the partner is active exactly as if the partner
    had been active first (its tier, kickers, a reversal that came meanwhile), or refused with
    the reason when the partner is rejected instead."""
    run = uuid.uuid4().hex[:8]
    p, q = f"p-{run}", f"q-{run}"
    c1 = credit(run, "c1", p, "d1", "10000.00", "x", "DE", products=("ai",), co_sell=True)
    c2 = credit(run, "c2", p, "d2", "10000.00", "y", "FR")
    cq = credit(run, "cq", q, "dq", "5000.00", "z", "US")
    credits = await records_of(infra, c1, c2, c1, cq)
    reversal = await records_of(infra, credit_reversed(c2))
    onboarding = await partner_records(infra, snapshot(p, PartnerStatus.ONBOARDING, 1))
    active = await partner_records(infra, snapshot(p, PartnerStatus.ACTIVE, 2))
    rejected = await partner_records(infra, snapshot(q, PartnerStatus.REJECTED, 1))

    async with incentives_schema(infra) as (held, _), incentives_schema(infra) as (known, _):
        consumer = ledger_consumer(held)
        assert await consumer.process_batch(credits) == [Outcome.PROCESSED] * 4
        assert await consumer.process_batch(reversal) == [Outcome.PROCESSED]
        assert await consumer.process_batch(onboarding) == [Outcome.PROCESSED]
        assert await held.fetchval("SELECT count(*) FROM credits") == 0
        waiting = await held.fetch("SELECT credit_id, reason FROM held_credits ORDER BY seq")
        assert [tuple(r) for r in waiting] == [
            (c1.credit_id, "partner not yet known to incentives: held until it is active"),
            (c2.credit_id, "partner not yet known to incentives: held until it is active"),
            (cq.credit_id, "partner not yet known to incentives: held until it is active"),
        ]
        assert (
            await held.fetchval("SELECT count(*) FROM outbox WHERE topic <> 'incentives.dlq.v1'")
            == 0
        )

        assert await consumer.process_batch(active) == [Outcome.PROCESSED]
        assert await consumer.process_batch(rejected) == [Outcome.PROCESSED]
        assert await held.fetchval("SELECT count(*) FROM held_credits") == 0

        # The same events with the partners known first book the same ledger.
        first = ledger_consumer(known)
        for batch in (onboarding, active, rejected, credits, reversal):
            await first.process_batch(batch)
        assert await ledger_of(held) == await ledger_of(known)
        assert (c1.credit_id, "kicker", "kicker:new_logo", D("300.00")) in await ledger_of(held)
        reversed_ = await held.fetchval(
            "SELECT reversal_id IS NOT NULL FROM credits WHERE credit_id = $1", c2.credit_id
        )
        assert reversed_
        notes = await held.fetchval("SELECT notes FROM credits WHERE credit_id = $1", cq.credit_id)
        assert notes == ["partner is rejected: not eligible"]
        # Redelivered after booking: nothing is held or booked again.
        before = await state(held)
        assert await consumer.process_batch(credits) == [Outcome.DUPLICATE] * 4
        assert await state(held) == before


async def test_a_credit_held_while_its_partner_activates_is_not_left_waiting(
    infra: Infra,
) -> None:
    """The activation reads the partner's held credits before it takes the locks; a credit held
    in between (by a run that had the partner's lock first) makes it retry, not strand that
    credit on hold with nobody left to book it."""
    run = uuid.uuid4().hex[:8]
    p = f"p-{run}"
    late = credit(run, "late", p, "dl", "10000.00", "l", "DE")
    [late_record] = await records_of(infra, late)
    late_event = Envelope[CreditIssued].model_validate_json(late_record.value)
    async with incentives_schema(infra) as (pool, _):
        async with pool.acquire() as booking, booking.transaction():
            # A run of credits in flight: it has the partner's lock and holds `late`.
            await repository.lock_run(booking, [], partners=[p])
            await repository.hold_credits(booking, [(late_event, "partner not yet known")])

            async def activate() -> None:
                async with pool.acquire() as conn, conn.transaction():
                    await partner_projection.project_partner(
                        conn, PROGRAMS, snapshot(p, PartnerStatus.ACTIVE, 1)
                    )

            activation = asyncio.create_task(activate())

            key = repository.partner_lock(p) & 0xFFFF_FFFF_FFFF_FFFF

            async def activation_waits_for_the_lock() -> bool:
                return bool(
                    await pool.fetchval(
                        """SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
                           AND NOT granted AND classid::bigint = $1 AND objid::bigint = $2""",
                        key >> 32,
                        key & 0xFFFF_FFFF,
                    )
                )

            await eventually(activation_waits_for_the_lock)
        # The run committed; the activation saw no held credit when it started.
        with pytest.raises(partner_projection.HeldMeanwhile):
            await activation
        # Nothing half-written, and the retry books the credit.
        assert await pool.fetchval("SELECT count(*) FROM partners") == 0
        async with pool.acquire() as conn, conn.transaction():
            booked = await partner_projection.project_partner(
                conn, PROGRAMS, snapshot(p, PartnerStatus.ACTIVE, 1)
            )
        assert booked.outcomes == ["credit booked"]
        assert await pool.fetchval("SELECT count(*) FROM held_credits") == 0
        assert (
            await pool.fetchval("SELECT tier FROM credits WHERE credit_id = $1", late.credit_id)
            == "gold"
        )


async def test_a_batch_of_several_runs_takes_its_locks_in_one_ascending_order(
    infra: Infra,
) -> None:
    """Credits, a reversal, credits: three runs in one transaction. Had each run taken its own
    locks, the batch could hold a partner's lock while waiting for a lower one, and a partner
    snapshot's transaction (which takes the same keys in ascending order) could deadlock with
    it. So while the batch waits for a lock held elsewhere, it holds no key above that one."""
    run = uuid.uuid4().hex[:8]
    # A first partner whose key is above the blocked one's, so a run-by-run batch would hold it.
    first, blocked = f"pa-{run}", f"pb-{run}"
    while repository.partner_lock(first) < repository.partner_lock(blocked):
        first = f"pa-{uuid.uuid4().hex[:8]}-{run}"
    first_credit = credit(run, "c1", first, "d1", "100.00", "one", "US")
    records = await records_of(
        infra,
        first_credit,
        credit_reversed(credit(run, "c0", f"pz-{run}", "d0", "100.00", "zero", "US")),
        credit(run, "c2", blocked, "d2", "100.00", "two", "US"),
    )
    async with incentives_schema(infra) as (pool, _), pool.acquire() as holder:
        consumer = ledger_consumer(pool)
        async with holder.transaction():
            await holder.execute(
                "SELECT pg_advisory_xact_lock($1)", repository.partner_lock(blocked)
            )
            batch = asyncio.create_task(consumer.process_batch(records))
            blocked_key = repository.partner_lock(blocked)
            pid = await waiter_of(holder, blocked_key, what="the batch waiting for the lock")
            keys = await held_keys(holder, pid)
            above = [key for key in keys if key > blocked_key]
            assert above == [], f"held {above} while waiting for {blocked_key}"
            assert repository.partner_lock(first) not in keys
        outcomes = await batch
    assert Outcome.DEAD_LETTERED not in outcomes
