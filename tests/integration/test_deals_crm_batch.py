"""The CRM projection's set-based handler on real Kafka + Postgres: a run of changes (the same
deal several times, stale fields, a close with linked registrations) gives exactly the rows and
events that one-at-a-time processing gives, a poison change in the middle of a run is
dead-lettered while the rest is applied once, a redelivered run changes nothing, and a run
costs a bounded number of statements. A webhook delivery projected at intake gives what the
consumer gives, the consumer then skips it, and a delivery the projection refuses there is
recorded all the same and left to the consumer."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import CollectorRegistry

from services.deals.adapters.hubspot import event_identity
from services.deals.crm_at_intake import ProjectionAtIntake, left_to_consumer_counter
from services.deals.crm_ingestion import Delivery, Item, record_items
from services.deals.crm_ingestion import Outcome as ItemOutcomeKind
from services.deals.repository import lock_deals, new_crm_deal, store_deals
from shared.consumer import EventConsumer, Outcome
from shared.db import Connection, Pool
from shared.events import Envelope
from shared.events.crm import CrmDealChanged, CrmSource, Customer, DealStage
from shared.topics import CRM_DEALS, DEAL_OPPORTUNITIES, DEAL_REGISTRATIONS
from tests.support.crm import HUBSPOT_PORTAL, hubspot_deal_webhook, hubspot_headers
from tests.support.deals import crm_projection, deals_outbox, deals_schema
from tests.support.infra import Infra, statements_sent
from tests.support.kafka import as_records, raw_records
from tests.support.outbox import event_bytes, event_json
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


@dataclass
class DealsDb:
    schema: str
    role: str
    pool: Pool

    def consumer(self) -> EventConsumer:
        """The deals CRM consumer with the handler the service registers."""
        return crm_projection(self.pool, backoff_initial_seconds=0.01)


@asynccontextmanager
async def deals_db(infra: Infra) -> AsyncIterator[DealsDb]:
    """A throw-away deals schema (its own role), migrated like the service's."""
    async with deals_schema(infra) as (service, pool):
        yield DealsDb(service.schema, f"{service.schema}_svc", pool)


T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def change(source_id: str, seconds: int, change_type: str = "updated", **fields: Any) -> Any:
    """A CrmDealChanged envelope as deals' ingestion records it, `seconds` after T0."""
    payload = CrmDealChanged(
        source=CrmSource.SALESFORCE,
        source_id=source_id,
        source_event_id=uuid.uuid4().hex,
        source_timestamp=T0 + timedelta(seconds=seconds),
        change_type=change_type,
        **fields,
    )
    return Envelope.wrap(payload, source="pollinate/deals", subject=payload.deal_key)


def out_of_bounds(source_id: str, seconds: int, change_type: str, amount: str) -> Any:
    """A change whose amount the contract refuses (at least 10^16; the projection's numeric
    column overflows on it), built without the contract's check: what a producer outside the
    platform's rules could publish. Decoded, it is refused; projected at intake, the write
    fails."""
    payload = CrmDealChanged.model_construct(
        source=CrmSource.SALESFORCE,
        source_id=source_id,
        source_event_id=uuid.uuid4().hex,
        source_timestamp=T0 + timedelta(seconds=seconds),
        change_type=change_type,
        amount=Decimal(amount),
    )
    return Envelope.wrap(payload, source="pollinate/deals", subject=payload.deal_key)


def story(run: str) -> list[Any]:
    """Changes of three deals, interleaved; deal a arrives several times, one change stale."""
    a, b, c = f"a-{run}", f"b-{run}", f"c-{run}"
    customer = Customer(name=f"Q{run} Batch Industries", domain=f"batch-{run}.example")
    return [
        change(
            a,
            10,
            "created",
            stage=DealStage.QUALIFICATION,
            amount=Decimal("12000.00"),
            currency="USD",
            customer=customer,
            owner="rep-1",
            # Not UTC: the published state carries the stored (UTC) value.
            created_at=datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))),
        ),
        change(b, 10, "created", stage=DealStage.PROSPECTING),
        # Four decimals, what the contract and the column keep (five are refused at decode).
        change(a, 30, stage=DealStage.PROPOSAL, amount=Decimal("15000.1235")),
        # Stale for stage and amount (older than 30), new for the name: only the name lands.
        change(a, 20, stage=DealStage.QUALIFICATION, amount=Decimal("1"), name="Renewal"),
        # The stored amount again (a repeat): only the field time moves, nothing is published.
        change(a, 40, amount=Decimal("15000.1235")),
        change(c, 10, "created", stage=DealStage.NEGOTIATION, customer=customer, owner="rep-2"),
        change(a, 50, stage=DealStage.CLOSED_WON),
        change(a, 50, stage=DealStage.CLOSED_WON),  # the same change under another event id
        # Older than the amount's time 40: stale, nothing published.
        change(a, 35, amount=Decimal("9")),
        change(c, 20, stage=DealStage.CLOSED_LOST),
        change(b, 20, amount=Decimal("700"), currency="EUR"),
        change(c, 30, "deleted"),
    ]


async def link_registrations(db: DealsDb, run: str) -> None:
    """Registrations of deal c: one approved, one pending review, one already rejected."""
    await db.pool.execute(
        """
        INSERT INTO registrations (registration_id, partner_id, customer_name, customer_domain,
            name_key, products, amount, currency, status, reasons, conflicts, policy_version,
            inputs, submitted_at, decided_at, expires_at, crm_deal_key, updated_at)
        SELECT 'reg_' || s || '_' || $1, 'p-' || s, 'Customer', 'batch.example', 'customer',
            '{data}', 1000, 'USD', s, '{}', '[]', 'p1', '{}', $2::timestamptz + n * interval '1 minute', $2,
            $2::timestamptz + interval '90 days', $3, $2
        FROM unnest(ARRAY['approved', 'pending_review', 'rejected']) WITH ORDINALITY AS t(s, n)
        """,
        run,
        T0,
        f"salesforce:c-{run}",
    )


VOLATILE = {"changed_at"}  # now() when the event is built
# A notification's created_at is now() when it is built too (a deal state's is the CRM's).
VOLATILE_BY_TYPE = {
    "notification.partner.v1": {"created_at"},
    "notification.partner.v2": {"created_at"},
}


async def snapshot(db: DealsDb) -> dict[str, Any]:
    """Everything the handler writes, comparable across schemas (no random ids, no clocks)."""
    deals = [
        dict(r)
        for r in await db.pool.fetch(
            """SELECT deal_key, source, source_id, name, customer_name, customer_domain,
                   customer_country, name_key, products, amount::text AS amount, currency,
                   stage, status, close_date, owner, partner_ref, co_sell, created_at, deleted,
                   field_timestamps::jsonb AS field_timestamps, revision, ingested_at
               FROM crm_deals ORDER BY deal_key"""
        )
    ]
    registrations = [
        dict(r)
        for r in await db.pool.fetch(
            "SELECT registration_id, status, expires_at FROM registrations ORDER BY 1"
        )
    ]
    events = []
    for row in await db.pool.fetch(
        "SELECT topic, message_key, event_type, value, value_codec FROM outbox ORDER BY position"
    ):
        data = event_json(row)["data"]
        events.append(
            (
                row["topic"],
                row["message_key"],
                row["event_type"],
                {
                    k: v
                    for k, v in data.items()
                    if k not in VOLATILE | VOLATILE_BY_TYPE.get(row["event_type"], set())
                },
            )
        )
    return {"deals": deals, "registrations": registrations, "events": events}


def deal_states(events: list[Any], key: str) -> list[dict[str, Any]]:
    return [
        data
        for topic, subject, _, data in events
        if topic == DEAL_OPPORTUNITIES.name and subject == key
    ]


async def test_a_run_gives_exactly_what_one_change_at_a_time_gives(infra: Infra) -> None:
    run = uuid.uuid4().hex[:8]
    envelopes = story(run)
    records = await as_records(infra, envelopes)
    async with deals_db(infra) as batched, deals_db(infra) as single:
        for db in (batched, single):
            await link_registrations(db, run)
        assert await batched.consumer().process_batch(records) == [Outcome.PROCESSED] * 12
        one_at_a_time = single.consumer()
        for record in records:
            assert await one_at_a_time.process_batch([record]) == [Outcome.PROCESSED]
        together, alone = await snapshot(batched), await snapshot(single)

    assert together == alone
    a, b, c = (f"salesforce:{x}-{run}" for x in "abc")
    events = together["events"]
    # Deal a: created, moved on, renamed by a change stale for everything else, won; the repeat,
    # the same amount again and the stale amount publish nothing.
    states = deal_states(events, a)
    assert [s["revision"] for s in states] == [1, 2, 3, 4]
    assert [(s["stage"], s["status"], s["amount"], s["name"]) for s in states] == [
        ("qualification", "open", "12000.0000", None),
        ("proposal", "open", "15000.1235", None),
        ("proposal", "open", "15000.1235", "Renewal"),
        ("closed_won", "won", "15000.1235", "Renewal"),
    ]
    assert {s["created_at"] for s in states} == {"2026-03-01T10:00:00Z"}
    assert [s["ingested_at"] for s in states] == [
        envelopes[i].time.isoformat().replace("+00:00", "Z") for i in (0, 2, 3, 6)
    ]
    assert [s["revision"] for s in deal_states(events, b)] == [1, 2]
    # Deal c closes lost: the approved registration is lost, the pending one rejected, before
    # the state that lists them; then it is deleted.
    c_states = deal_states(events, c)
    assert [(s["revision"], s["status"], s["deleted"]) for s in c_states] == [
        (1, "open", False),
        (2, "lost", False),
        (3, "lost", True),
    ]
    assert [[r["status"] for r in s["registrations"]] for s in c_states] == [
        ["approved", "pending_review", "rejected"],
        # Awaiting review when the deal was lost: nothing left to protect (not rejected).
        ["lost", "lost", "rejected"],
        ["lost", "lost", "rejected"],
    ]
    streams = (DEAL_OPPORTUNITIES.name, DEAL_REGISTRATIONS.name)
    order = [
        (t, k, d.get("status")) for t, k, _, d in events if t in streams and (k in (c,) or "_" in k)
    ]
    assert order == [
        (DEAL_OPPORTUNITIES.name, c, "open"),
        (DEAL_REGISTRATIONS.name, f"reg_approved_{run}", "lost"),
        (DEAL_REGISTRATIONS.name, f"reg_pending_review_{run}", "lost"),
        (DEAL_OPPORTUNITIES.name, c, "lost"),
        (DEAL_OPPORTUNITIES.name, c, "lost"),
    ]
    rows = {r["deal_key"]: r for r in together["deals"]}
    assert (rows[a]["revision"], rows[a]["stage"], rows[a]["amount"]) == (
        4,
        "closed_won",
        "15000.1235",
    )
    assert (
        json.loads(rows[a]["field_timestamps"])["amount"]
        == (T0 + timedelta(seconds=40)).isoformat()
    )
    assert (rows[b]["revision"], rows[b]["amount"], rows[b]["currency"]) == (2, "700.0000", "EUR")


async def test_a_poison_change_in_a_run_is_dead_lettered_and_the_rest_applied_once(
    infra: Infra,
) -> None:
    run = uuid.uuid4().hex[:8]
    a, poison = f"a-{run}", f"poison-{run}"
    envelopes = [
        change(a, 10, "created", stage=DealStage.QUALIFICATION, amount=Decimal("10")),
        change(poison, 10, "created", stage=DealStage.PROSPECTING),
        change(a, 20, stage=DealStage.PROPOSAL),
        # Beyond the contract's bound, so beyond the projection's column: refused at decode.
        out_of_bounds(poison, 20, "updated", "1e17"),
        change(a, 30, amount=Decimal("20")),
    ]
    records = await as_records(infra, envelopes)
    async with deals_db(infra) as db:
        consumer = db.consumer()
        outcomes = await consumer.process_batch(records)
        assert outcomes == [
            Outcome.PROCESSED,
            Outcome.PROCESSED,
            Outcome.PROCESSED,
            Outcome.DEAD_LETTERED,
            Outcome.PROCESSED,
        ]
        after = await snapshot(db)
        parked = await db.pool.fetch(
            "SELECT message_key, headers->>'dlq.reason' AS reason FROM outbox WHERE topic = 'deals.dlq.v1'"
        )
        # Redelivered: the processed ones are duplicates; the poison one is parked once.
        again = await consumer.process_batch(records)
        assert again == [Outcome.DUPLICATE] * 3 + [Outcome.DEAD_LETTERED, Outcome.DUPLICATE]
        assert await snapshot(db) == after
        inbox = await db.pool.fetch("SELECT event_id FROM inbox ORDER BY kafka_offset")

    assert [r["event_id"] for r in inbox] == [envelopes[i].id for i in (0, 1, 2, 4)]
    assert [r["message_key"] for r in parked] == [f"salesforce:{poison}"]
    assert "amount" in parked[0]["reason"]
    assert "less than 10000000000000000" in parked[0]["reason"]
    events = after["events"]
    states = deal_states(events, f"salesforce:{a}")
    assert [(s["revision"], s["stage"], s["amount"]) for s in states] == [
        (1, "qualification", "10.0000"),
        (2, "proposal", "10.0000"),
        (3, "proposal", "20.0000"),
    ]
    assert [s["revision"] for s in deal_states(events, f"salesforce:{poison}")] == [1]
    rows = {r["deal_key"]: r for r in after["deals"]}
    assert rows[f"salesforce:{poison}"]["amount"] is None


async def test_a_redelivered_run_changes_nothing(infra: Infra) -> None:
    run = uuid.uuid4().hex[:8]
    records = await as_records(infra, story(run))
    async with deals_db(infra) as db:
        await link_registrations(db, run)
        consumer = db.consumer()
        assert await consumer.process_batch(records) == [Outcome.PROCESSED] * 12
        before = await snapshot(db)
        assert await consumer.process_batch(records) == [Outcome.DUPLICATE] * 12
        assert await consumer.process_batch(records[5:]) == [Outcome.DUPLICATE] * 7
        assert await snapshot(db) == before


async def test_a_run_costs_a_bounded_number_of_statements(infra: Infra) -> None:
    """40 new deals, each created then moved on twice: 120 changes in one run; then a run
    moving them on again beside 40 more new ones."""
    run = uuid.uuid4().hex[:8]
    stages = (DealStage.QUALIFICATION, DealStage.PROPOSAL, DealStage.CLOSED_WON)
    envelopes = [
        change(f"d{i}-{run}", 10 * step, stage=stage, amount=Decimal(1000 + step))
        for step, stage in enumerate(stages, start=1)
        for i in range(40)
    ]
    more = [change(f"d{i}-{run}", 40, amount=Decimal(2000)) for i in range(40)]
    more += [change(f"e{i}-{run}", 40, stage=DealStage.QUALIFICATION) for i in range(40)]
    warming = change(f"w-{run}", 10, stage=DealStage.QUALIFICATION, amount=Decimal(1000))
    sent = await as_records(infra, [warming, *envelopes, *more])
    warm, records, mixed = sent[0], sent[1:121], sent[121:]
    async with deals_db(infra) as db:
        consumer = db.consumer()
        await consumer.process_batch([warm])  # warm the connection (type introspection)
        before = await statements_sent(infra, db.role)
        assert await consumer.process_batch(records) == [Outcome.PROCESSED] * 120
        after = await statements_sent(infra, db.role)
        print(f"\nstatements for 120 CRM changes of new deals in one run: {after - before}")
        # BEGIN, inbox, the opportunities' advisory locks, lock and load, linked
        # registrations, store (the new inserted with their merged state), outbox, COMMIT: 8,
        # whatever the run's length.
        assert after - before <= 8
        # Held and new together: the held are updated, the new inserted, a statement each.
        assert await consumer.process_batch(mixed) == [Outcome.PROCESSED] * 80
        then = await statements_sent(infra, db.role)
        print(f"statements for 40 held and 40 new deals' changes in one run: {then - after}")
        assert then - after <= 9
        # Redelivered, all duplicates (as a webhook's changes reach the consumer): nothing to
        # lock or apply, so BEGIN, inbox, COMMIT.
        assert await consumer.process_batch(records) == [Outcome.DUPLICATE] * 120
        again = await statements_sent(infra, db.role)
        print(f"statements for the same 120 changes again: {again - then}")
        assert again - then <= 3


async def test_a_new_opportunity_starts_from_what_the_table_would_make_of_it(
    infra: Infra,
) -> None:
    """A new opportunity is merged from `new_crm_deal` and written once, so that row must be
    the one the table's defaults give a row created with only its key."""
    async with deals_db(infra) as db:
        created = await db.pool.fetchrow(
            """INSERT INTO crm_deals (deal_key, source, source_id)
               VALUES ('salesforce:006X', 'salesforce', '006X') RETURNING *"""
        )
    assert created is not None
    assert new_crm_deal("salesforce:006X", "salesforce", "006X") == dict(created)


async def test_an_opportunity_created_meanwhile_without_its_key_is_a_collision_not_overwritten(
    infra: Infra,
) -> None:
    """Whoever creates opportunities holds their advisory keys first; should a writer not, the
    run's insert of what it found new fails (and is retried) rather than replacing the row
    that writer committed with a state merged from nothing."""
    async with deals_db(infra) as db, db.pool.acquire() as conn:
        key = "salesforce:006COLLIDE"
        async with conn.transaction():
            rows, created = await lock_deals(conn, [key], {key: ("salesforce", "006COLLIDE")})
            assert created == {key}
            await db.pool.execute(
                """INSERT INTO crm_deals (deal_key, source, source_id, name)
                   VALUES ($1, 'salesforce', '006COLLIDE', 'committed meanwhile')""",
                key,
            )
            with pytest.raises(asyncpg.UniqueViolationError):
                await store_deals(conn, list(rows.values()), created)
        assert await db.pool.fetchval("SELECT name FROM crm_deals") == "committed meanwhile"


async def record_at_intake(
    db: DealsDb, changes: list[Any], intake: ProjectionAtIntake | None = None
) -> list[Any]:
    """The changes as one webhook delivery, recorded and projected at intake as the service
    does it, each item also kept as delivered on the raw topic (after the projection); answers
    the envelopes recorded on crm.deals.v1 and each item's outcome."""
    async with db.pool.acquire() as conn, conn.transaction():
        outcomes = await record_in(conn, db, changes, intake)
    rows = await db.pool.fetch(
        "SELECT value, value_codec FROM outbox WHERE topic = $1 ORDER BY position", CRM_DEALS.name
    )
    recorded = [Envelope[CrmDealChanged].model_validate_json(event_bytes(row)) for row in rows]
    return [recorded, outcomes]


async def record_in(
    conn: Connection, db: DealsDb, changes: list[Any], intake: ProjectionAtIntake | None = None
) -> list[ItemOutcomeKind]:
    items = [
        Item(index, {"event": envelope.data.source_event_id}, (envelope.data,))
        for index, envelope in enumerate(changes)
    ]
    outcomes = await record_items(
        conn,
        deals_outbox(),
        CrmSource.SALESFORCE,
        items,
        T0 + timedelta(minutes=5),
        Delivery("http", "/crm/salesforce", None),
        intake or ProjectionAtIntake(db.consumer().group_id),
    )
    return [outcome.outcome for outcome in outcomes]


def projected(shot: dict[str, Any]) -> dict[str, Any]:
    """A snapshot without what only the intake writes (the CRM changes, the items as sent)."""
    intake_only = {CRM_DEALS.name, "crm.raw.salesforce.v1"}
    return {**shot, "events": [e for e in shot["events"] if e[0] not in intake_only]}


async def test_a_delivery_projected_at_intake_gives_what_the_consumer_gives_and_is_skipped_by_it(
    infra: Infra,
) -> None:
    run = uuid.uuid4().hex[:8]
    async with deals_db(infra) as at_intake, deals_db(infra) as consumed:
        for db in (at_intake, consumed):
            await link_registrations(db, run)
        recorded, outcomes = await record_at_intake(at_intake, story(run))
        assert outcomes == [ItemOutcomeKind.ACCEPTED] * 12
        projected_at_intake = await snapshot(at_intake)
        records = await as_records(infra, recorded)
        # The consumer reads what the intake recorded, and finds it handled already...
        consumer = at_intake.consumer()
        assert await consumer.process_batch(records) == [Outcome.DUPLICATE] * 12
        assert await snapshot(at_intake) == projected_at_intake
        offsets = await at_intake.pool.fetch(
            "SELECT kafka_partition, kafka_offset FROM inbox WHERE consumer = $1",
            consumer.group_id,
        )
        # ...while a service projecting only through its consumer ends the same.
        assert await consumed.consumer().process_batch(records) == [Outcome.PROCESSED] * 12
        through_the_consumer = await snapshot(consumed)

    assert [tuple(row) for row in offsets] == [(None, None)] * 12
    assert projected(projected_at_intake) == projected(through_the_consumer)
    states = deal_states(projected_at_intake["events"], f"salesforce:a-{run}")
    assert [s["revision"] for s in states] == [1, 2, 3, 4]


async def test_a_change_the_projection_refuses_at_intake_is_recorded_and_left_to_the_consumer(
    infra: Infra,
) -> None:
    run = uuid.uuid4().hex[:8]
    a, poison = f"a-{run}", f"poison-{run}"
    delivery = [
        change(a, 10, "created", stage=DealStage.QUALIFICATION, amount=Decimal("10")),
        # Too large for the projection (and the contract): fails at the write, then at decode.
        out_of_bounds(poison, 20, "created", "1e17"),
        change(a, 30, amount=Decimal("20")),
    ]
    registry = CollectorRegistry()
    left = left_to_consumer_counter(registry)
    async with deals_db(infra) as db:
        intake = ProjectionAtIntake(db.consumer().group_id, left_to_consumer=left)
        async with db.pool.acquire() as conn, conn.transaction():
            outcomes = await record_in(conn, db, delivery, intake)
        assert outcomes == [ItemOutcomeKind.ACCEPTED] * 3
        at_intake = await snapshot(db)
        # Read back as recorded (the poison one no envelope of today's contract could be).
        recorded = await db.pool.fetch(
            "SELECT message_key, value, value_codec FROM outbox WHERE topic = $1 ORDER BY position",
            CRM_DEALS.name,
        )
        records = await raw_records(
            infra, [(r["message_key"].encode(), event_bytes(r)) for r in recorded]
        )
        assert await db.consumer().process_batch(records) == [
            Outcome.DUPLICATE,
            Outcome.DEAD_LETTERED,
            Outcome.DUPLICATE,
        ]
        after = await snapshot(db)

    # The delivery went on after the refusal: its neighbours projected, every item kept as sent.
    assert registry.get_sample_value("pollinate_crm_changes_left_to_consumer_total") == 1
    assert [d["deal_key"] for d in at_intake["deals"]] == [f"salesforce:{a}"]
    states = deal_states(at_intake["events"], f"salesforce:{a}")
    assert [(s["revision"], s["amount"]) for s in states] == [(1, "10.0000"), (2, "20.0000")]
    assert [e[0] for e in at_intake["events"]].count("crm.raw.salesforce.v1") == 3
    parked = [e for e in after["events"] if e[0] == "deals.dlq.v1"]
    assert [e[1] for e in parked] == [f"salesforce:{poison}"]
    assert projected(after)["events"] == projected(at_intake)["events"] + parked


async def test_a_change_recorded_again_after_the_outbox_forgot_it_is_not_projected_again(
    infra: Infra,
) -> None:
    """The outbox keeps a day of events, the inbox a week: a CRM redelivering a change after
    the outbox forgot it records it again, and the inbox keeps it from being applied twice
    (applied again, it would win over a later change of the same source time)."""
    run = uuid.uuid4().hex[:8]
    first = change(f"a-{run}", 10, "created", amount=Decimal("10"))
    same_moment = change(f"a-{run}", 10, amount=Decimal("20"))
    async with deals_db(infra) as db:
        await record_at_intake(db, [first])
        await record_at_intake(db, [same_moment])
        await db.pool.execute("DELETE FROM outbox WHERE topic = $1", CRM_DEALS.name)
        _, outcomes = await record_at_intake(db, [first])
        shot = await snapshot(db)

    assert outcomes == [ItemOutcomeKind.ACCEPTED]
    states = deal_states(shot["events"], f"salesforce:a-{run}")
    assert [(s["revision"], s["amount"]) for s in states] == [(1, "10.0000"), (2, "20.0000")]
    assert [d["amount"] for d in shot["deals"]] == ["20.0000"]


async def test_the_consumer_waits_for_an_intake_creating_the_same_opportunity(
    infra: Infra,
) -> None:
    """Both take the opportunities' advisory locks first: the consumer neither races the
    intake's insert of a new opportunity nor fails on it."""
    run = uuid.uuid4().hex[:8]
    first = change(f"x-{run}", 10, "created", stage=DealStage.QUALIFICATION)
    later = change(f"x-{run}", 20, amount=Decimal("5"))
    records = await as_records(infra, [later])
    async with deals_db(infra) as db, db.pool.acquire() as conn:
        consumer = db.consumer()
        intake = conn.transaction()
        await intake.start()
        await record_in(conn, db, [first])
        consuming = asyncio.create_task(consumer.process_batch(records))

        async def consumer_waits_on_the_opportunity_lock() -> bool:
            return bool(
                await infra_admin_fetchval(
                    infra,
                    """SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                       WHERE NOT l.granted AND l.locktype = 'advisory' AND a.usename = $1""",
                    db.role,
                )
            )

        try:
            await eventually(consumer_waits_on_the_opportunity_lock, what="the consumer waiting")
        finally:
            await intake.commit()
        assert await consuming == [Outcome.PROCESSED]
        shot = await snapshot(db)

    states = deal_states(shot["events"], f"salesforce:x-{run}")
    assert [(s["revision"], s["stage"], s["amount"]) for s in states] == [
        (1, "qualification", None),
        (2, "qualification", "5.0000"),
    ]


async def test_a_collision_inside_the_projection_at_intake_fails_the_delivery_for_a_retry(
    infra: Infra,
) -> None:
    """A lock not granted in time (like a deadlock's victim) is no refusal of the change: left
    to the consumer, it would be applied after whatever the CRM sends next. The delivery fails
    whole instead (503: the sender retries), and nothing of it is recorded."""
    run = uuid.uuid4().hex[:8]
    created = change(f"x-{run}", 10, "created", stage=DealStage.QUALIFICATION)
    registry = CollectorRegistry()
    async with deals_db(infra) as db:
        await record_at_intake(db, [created])
        intake = ProjectionAtIntake(
            db.consumer().group_id, left_to_consumer=left_to_consumer_counter(registry)
        )
        async with db.pool.acquire() as holder, holder.transaction():
            await holder.execute(
                "SELECT 1 FROM crm_deals WHERE deal_key = $1 FOR UPDATE", f"salesforce:x-{run}"
            )
            async with db.pool.acquire() as conn:

                async def deliver_waiting_200ms_at_most() -> None:
                    async with conn.transaction():
                        await conn.execute("SET LOCAL lock_timeout = '200ms'")
                        await record_in(conn, db, [change(f"x-{run}", 20, amount=1)], intake)

                with pytest.raises(asyncpg.exceptions.LockNotAvailableError):
                    await deliver_waiting_200ms_at_most()
        recorded = await db.pool.fetchval(
            "SELECT count(*) FROM outbox WHERE topic = $1", CRM_DEALS.name
        )

    assert recorded == 1
    assert registry.get_sample_value("pollinate_crm_changes_left_to_consumer_total") == 0


async def infra_admin_fetchval(infra: Infra, query: str, *args: Any) -> Any:
    admin = await asyncpg.connect(infra.admin_dsn)
    try:
        return await admin.fetchval(query, *args)
    finally:
        await admin.close()


async def test_crm_ingestion_counts_only_what_it_records_now(
    infra: Infra, deals_instances: list[str]
) -> None:
    """A webhook batch is recorded at once; a repeat inside the request or a redelivered
    request is not recorded (or counted) again."""
    object_id, batch = hubspot_deal_webhook()
    with_repeat, once = json.dumps([*batch, batch[1]]).encode(), json.dumps(batch).encode()
    async with httpx.AsyncClient(timeout=30) as client:
        first = await client.post(
            f"{deals_instances[0]}/crm/hubspot",
            content=with_repeat,
            headers=hubspot_headers(with_repeat),
        )
        again = await client.post(
            f"{deals_instances[1]}/crm/hubspot", content=once, headers=hubspot_headers(once)
        )
    assert (first.status_code, first.json()["accepted"], first.json()["duplicate"]) == (202, 3, 1)
    assert [item["outcome"] for item in first.json()["items"]] == [
        "accepted",
        "accepted",
        "accepted",
        "duplicate",
    ]
    assert (again.status_code, again.json()["accepted"], again.json()["duplicate"]) == (202, 0, 3)
    admin = await asyncpg.connect(infra.admin_dsn)
    try:
        recorded = await admin.fetch(
            """SELECT event_id, value, value_codec FROM deals.outbox WHERE message_key = $1 AND topic = $2
               ORDER BY position""",
            f"hubspot:{HUBSPOT_PORTAL}:{object_id}",
            CRM_DEALS.name,
        )
        # Projected by the delivery's own transaction: the consumer's inbox rows for the
        # changes were written before Kafka placed them (no offset), and the state is there.
        handled = await admin.fetch(
            """SELECT kafka_offset FROM deals.inbox
               WHERE consumer = 'deals.crm-projection' AND event_id = ANY($1::uuid[])""",
            [r["event_id"] for r in recorded],
        )
        states = await admin.fetchval(
            "SELECT count(*) FROM deals.outbox WHERE message_key = $1 AND topic = $2",
            f"hubspot:{HUBSPOT_PORTAL}:{object_id}",
            DEAL_OPPORTUNITIES.name,
        )
    finally:
        await admin.close()
    assert [
        Envelope[CrmDealChanged].model_validate_json(event_bytes(r)).data.source_event_id
        for r in recorded
    ] == [event_identity(str(HUBSPOT_PORTAL), str(event["eventId"]), event) for event in batch]
    assert [r["kafka_offset"] for r in handled] == [None] * 3
    assert states >= 1
