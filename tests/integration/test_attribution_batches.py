"""Attribution's deal-credits consumer on batches (real Kafka records, real Postgres): a run with
several snapshots of one deal (revisions in and out of order, a correction reversing credits
issued earlier in the same run, the lock period, FX at the close date) leaves exactly the rows
and events that one-at-a-time processing leaves; a poison snapshot in the middle of a run is
dead-lettered while the rest is applied once; a redelivered batch changes nothing; and a run
costs a bounded number of statements, however many events it holds."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.attribution import repository
from services.attribution.app import NAME, definition
from services.attribution.domain.config import AttributionConfig
from shared.consumer import EventConsumer, Outcome
from shared.db import Pool
from shared.events import Envelope
from shared.events.crm import CrmSource, Customer, DealStatus
from shared.events.opportunities import DealStateChanged
from shared.events.registrations import RegistrationDecided
from tests.support.attribution import (
    CrmDeal,
    approved_registration,
    closed_won,
    confirmed_links,
    deal_credits_consumer,
    from_deals,
)
from tests.support.factories import registration_decided
from tests.support.infra import Infra, migrated_pool, scratch_schema, statements_sent
from tests.support.kafka import as_records, raw_records
from tests.support.locks import held_keys, waiter_of
from tests.support.outbox import event_json

pytestmark = pytest.mark.integration

TODAY = datetime.now(UTC).date()
# Two EUR rates: a deal closed before the second one takes the first (FX at the close date).
CONFIG = AttributionConfig.model_validate(
    {
        "version": "test-batch-1",
        "model": "linear",
        "lock_period_days": 90,
        "rates": {
            "EUR": {
                (TODAY - timedelta(days=400)).isoformat(): "1.10",
                (TODAY - timedelta(days=60)).isoformat(): "1.20",
            }
        },
    }
)
# Written with now() or the service's clock: left out when two runs are compared.
VOLATILE = {"updated_at", "received_at", "issued_at", "reversed_at", "created_at"}


@dataclass
class Attribution:
    """The deal-credits consumer of attribution on a throw-away schema and role."""

    infra: Infra
    role: str
    pool: Pool
    consumer: EventConsumer


@asynccontextmanager
async def attribution_schema(infra: Infra) -> AsyncIterator[Attribution]:
    async with (
        scratch_schema(infra) as scratch,
        migrated_pool(scratch, NAME, definition.migrations) as pool,
    ):
        # The real consumer group of attribution, wired by the service, writing into the
        # scratch schema.
        consumer = deal_credits_consumer(pool, CONFIG)
        yield Attribution(infra, f"{scratch.schema}_svc", pool, consumer)


@pytest.fixture
async def attribution(infra: Infra) -> AsyncIterator[Attribution]:
    async with attribution_schema(infra) as service:
        yield service


class Deal(CrmDeal):
    def __init__(self, run: str, name: str, source: CrmSource = CrmSource.SALESFORCE) -> None:
        super().__init__(f"{name}-{run}", source)
        self.changed_at = datetime.now(UTC) - timedelta(hours=1)
        self.created_at = datetime.now(UTC) - timedelta(days=20)

    def snapshot(self, revision: int, **fields: Any) -> DealStateChanged:
        self.changed_at += timedelta(minutes=1)
        moments = {
            "changed_at": self.changed_at,
            "ingested_at": self.changed_at,
            "created_at": self.created_at,
        }
        return self.state(revision, **(moments | fields))


# Ids that begin with the moment of what they name (a credit's issue time, which depends on
# the clock). A credit's id is compared by the part its settlement names (the deal, the
# calculation, the partner and the kind); a reversal's and a notification's are named by a
# credit's whole id, so two runs compare them by a label given in the order ids first appear
# (what refers to what, not when it happened).
CREDIT_IDS = {"credit_id", "replaces"}
LABELLED_IDS = {"notification_id", "reversal_id"}


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    return value


def _named_part(ordered_id: str) -> int:
    """An id (a UUID, or a credit's or reversal's id: a prefix and 32 hex digits) without the
    moment it begins with: the part its occurrence names."""
    return int(uuid.UUID(ordered_id.split("_")[-1])) & ((1 << 80) - 1)


def _labelled(value: Any, labels: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _compared_id(k, v, labels) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_labelled(v, labels) for v in value)
    return value


def _compared_id(key: str, value: Any, labels: dict[str, str]) -> Any:
    if value is None:
        return None
    if key in CREDIT_IDS:
        return _named_part(value)
    if key in LABELLED_IDS:
        return labels.setdefault(value, f"id-{len(labels)}")
    return _labelled(value, labels)


async def state(pool: Pool) -> dict[str, Any]:
    """Everything the consumer wrote, without what depends on the clock or random ids."""
    deals = [_stable(dict(r)) for r in await pool.fetch("SELECT * FROM deals ORDER BY deal_key")]
    touchpoints = [
        _stable(dict(r)) for r in await pool.fetch("SELECT * FROM touchpoints ORDER BY 1")
    ]
    credits = [
        _stable(dict(r)) | {"reversed": r["reversed_at"] is not None}
        for r in sorted(
            await pool.fetch("SELECT * FROM credits"),
            key=lambda row: _named_part(row["credit_id"]),
        )
    ]
    events = [
        (r["topic"], r["message_key"], r["event_type"], _stable(event_json(r)["data"]))
        for r in await pool.fetch(
            "SELECT topic, message_key, event_type, value, value_codec FROM outbox ORDER BY position"
        )
    ]
    written = {"deals": deals, "touchpoints": touchpoints, "credits": credits, "events": events}
    return _labelled(written, {})


def credit_events(current: dict[str, Any], deal_key: str) -> list[tuple[str, str, Decimal]]:
    """The deal's credit events in order; within a settlement reversals go by credit id (its
    issue time, then a hash), so each run of reversals is sorted by partner to compare."""
    events = [
        (event_type, data["partner_id"], Decimal(data["amount"]))
        for topic, key, event_type, data in current["events"]
        if topic == "attribution.credits.v1" and key == deal_key
    ]
    runs: list[list[tuple[str, str, Decimal]]] = []
    for event in events:
        if runs and runs[-1][0][0] == event[0]:
            runs[-1].append(event)
        else:
            runs.append([event])
    return [event for run in runs for event in sorted(run)]


def story(run: str) -> tuple[list[Envelope[Any]], Deal, Deal, Deal]:
    """Several snapshots of three deals, interleaved, with a registration event in between."""
    sourcer, seller, other, late = (f"{p}-{run}" for p in ("src", "mkt", "oth", "late"))
    main, locked, shuffled = Deal(run, "main"), Deal(run, "locked"), Deal(run, "shuffled")
    registration = approved_registration(f"reg-{run}", sourcer, days_ago=40)
    won = closed_won("10000", "EUR", seller, close_date=TODAY, registrations=(registration,))
    old_close = TODAY - timedelta(days=120)  # FX 1.10; the lock period is over
    created_at = datetime.now(UTC) - timedelta(days=150)
    locked_won = closed_won("500", "EUR", other, close_date=old_close, created_at=created_at)
    first_won = main.snapshot(2, **won)
    decided = registration_decided(
        registration_id=f"reg-late-{run}",
        partner_id=late,
        customer=Customer(name="Contoso"),
        amount=Decimal("1"),
        currency="EUR",
        decided_at=datetime.now(UTC) - timedelta(days=10),
        crm_deal_key=main.key,
    )
    envelopes = [
        from_deals(main.snapshot(1, registrations=(registration,), partner_ref=seller), main.key),
        from_deals(locked.snapshot(1, **locked_won), locked.key),
        from_deals(first_won, main.key),
        from_deals(shuffled.snapshot(2, **{**locked_won, "close_date": TODAY}), shuffled.key),
        # a correction in the same run: the amount and the CRM partner change
        from_deals(
            main.snapshot(3, **{**won, "amount": Decimal("12000"), "partner_ref": other}), main.key
        ),
        from_deals(shuffled.snapshot(1, **locked_won), shuffled.key),  # older: dropped
        from_deals(first_won, main.key),  # the same snapshot again under a new id: dropped
        from_deals(locked.snapshot(2, **{**locked_won, "amount": Decimal("100")}), locked.key),
        from_deals(decided, decided.registration_id),
        from_deals(
            main.snapshot(4, **{**won, "amount": Decimal("12000"), "partner_ref": other}), main.key
        ),
        from_deals(main.snapshot(5, **{**won, "status": DealStatus.LOST}), main.key),
        from_deals(main.snapshot(6, **{**won, "partner_ref": other}), main.key),  # re-won
    ]
    return envelopes, main, locked, shuffled


async def test_a_batch_leaves_exactly_what_one_at_a_time_processing_leaves(infra: Infra) -> None:
    run = uuid.uuid4().hex[:8]
    envelopes, main, locked, shuffled = story(run)
    records = await as_records(infra, envelopes)
    async with attribution_schema(infra) as batched, attribution_schema(infra) as one_by_one:
        for schema in (batched, one_by_one):
            await confirmed_links(schema.pool, CrmSource.SALESFORCE, f"mkt-{run}", f"oth-{run}")
        outcomes = await batched.consumer.process_batch(records)
        singles = [await one_by_one.consumer.process(record) for record in records]
        assert outcomes == singles == [Outcome.PROCESSED] * len(records)
        together, apart = await state(batched.pool), await state(one_by_one.pool)

    assert together == apart
    # and what that is, spelled out
    src, mkt, oth, late = (f"{p}-{run}" for p in ("src", "mkt", "oth", "late"))
    assert credit_events(together, main.key) == [
        # revision 2: won, 10000 EUR at 1.20 across the sourcer and the marketplace seller
        ("credit.issued.v1", mkt, Decimal("6000.00")),
        ("credit.issued.v1", src, Decimal("6000.00")),
        # revision 3: 12000 EUR, the CRM names another partner: both reversed, two re-issued
        ("credit.reversed.v1", mkt, Decimal("6000.00")),
        ("credit.reversed.v1", src, Decimal("6000.00")),
        ("credit.issued.v1", oth, Decimal("7200.00")),
        ("credit.issued.v1", src, Decimal("7200.00")),
        # the registration event: a third partner
        ("credit.reversed.v1", oth, Decimal("7200.00")),
        ("credit.reversed.v1", src, Decimal("7200.00")),
        ("credit.issued.v1", late, Decimal("4800.00")),
        ("credit.issued.v1", oth, Decimal("4800.00")),
        ("credit.issued.v1", src, Decimal("4800.00")),
        # revision 4 changes nothing that matters; revision 5: lost, everything reversed
        ("credit.reversed.v1", late, Decimal("4800.00")),
        ("credit.reversed.v1", oth, Decimal("4800.00")),
        ("credit.reversed.v1", src, Decimal("4800.00")),
        # revision 6: won again
        ("credit.issued.v1", late, Decimal("4000.00")),
        ("credit.issued.v1", oth, Decimal("4000.00")),
        ("credit.issued.v1", src, Decimal("4000.00")),
    ]
    # closed 120 days ago: FX of that day (1.10), and the change after the lock period is ignored
    assert credit_events(together, locked.key) == [("credit.issued.v1", oth, Decimal("550.00"))]
    # revision 2 came first: revision 1 was dropped, FX of today (1.20)
    assert credit_events(together, shuffled.key) == [("credit.issued.v1", oth, Decimal("600.00"))]
    deals = {d["deal_key"]: d for d in together["deals"]}
    assert (deals[main.key]["revision"], deals[main.key]["calculation"]) == (6, 5)
    assert "ignored, credits are final since" in deals[locked.key]["last_note"]
    assert deals[shuffled.key]["revision"] == 2
    crm = {t["touchpoint_id"]: t["active"] for t in together["touchpoints"] if t["origin"] == "crm"}
    assert crm == {
        f"crm:{main.key}:{mkt}": False,
        f"crm:{main.key}:{oth}": True,
        f"crm:{locked.key}:{oth}": True,
        f"crm:{shuffled.key}:{oth}": True,
    }
    assert mkt not in {c["partner_id"] for c in together["credits"] if not c["reversed"]}
    # what the registration event caused entered Pollinate when that event was written
    decided = next(e for e in envelopes if isinstance(e.data, RegistrationDecided))
    caused = [
        data
        for _, _, event_type, data in together["events"]
        if data["partner_id"] == late and event_type != "credit.reversed.v1"
    ][:2]  # the late partner's first credit and its notification
    assert [data.get("kind") for data in caused] == ["sourced", "credit_issued"]
    assert {datetime.fromisoformat(data["ingested_at"]) for data in caused} == {decided.time}


async def test_credits_and_reversals_are_named_after_their_moment(infra: Infra) -> None:
    """A credit's id begins with its issue time and a reversal's with its reversal time (to the
    millisecond), so the keys that every service holds credits by grow at their right edge."""
    run = uuid.uuid4().hex[:8]
    envelopes, *_ = story(run)
    records = await as_records(infra, envelopes)
    async with attribution_schema(infra) as service:
        await confirmed_links(service.pool, CrmSource.SALESFORCE, f"mkt-{run}", f"oth-{run}")
        await service.consumer.process_batch(records)
        rows = await service.pool.fetch(
            "SELECT credit_id, issued_at, reversal_id, reversed_at FROM credits"
        )
    named = [("cr", r["credit_id"], r["issued_at"]) for r in rows] + [
        ("rv", r["reversal_id"], r["reversed_at"]) for r in rows if r["reversal_id"] is not None
    ]
    assert len(named) == 12 + 7  # the credits and reversals of the test above
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for prefix, named_id, moment in named:
        made = uuid.UUID(named_id.removeprefix(f"{prefix}_"))
        millis = (moment - epoch) // timedelta(milliseconds=1)
        assert (made.version, made.int >> 80) == (8, millis)


async def test_a_poison_snapshot_in_a_run_is_dead_lettered_and_the_rest_applied_once(
    infra: Infra, attribution: Attribution
) -> None:
    run = uuid.uuid4().hex[:8]
    good, poison, other = Deal(run, "good"), Deal(run, "poison"), Deal(run, "other")
    won = closed_won("100", "USD", f"p-{run}", close_date=TODAY)
    envelopes = [
        from_deals(good.snapshot(1, **won), good.key),
        from_deals(poison.snapshot(1, **{**won, "currency": "CHF"}), poison.key),  # no CHF rate
        from_deals(good.snapshot(2, **{**won, "amount": Decimal("300")}), good.key),
        from_deals(other.snapshot(1, **won), other.key),
    ]
    records = await as_records(infra, envelopes)
    await confirmed_links(attribution.pool, CrmSource.SALESFORCE, f"p-{run}")

    outcomes = await attribution.consumer.process_batch(records)

    assert outcomes == [
        Outcome.PROCESSED,
        Outcome.DEAD_LETTERED,
        Outcome.PROCESSED,
        Outcome.PROCESSED,
    ]
    current = await state(attribution.pool)
    partner = f"p-{run}"
    assert credit_events(current, good.key) == [
        ("credit.issued.v1", partner, Decimal("100.00")),
        ("credit.reversed.v1", partner, Decimal("100.00")),
        ("credit.issued.v1", partner, Decimal("300.00")),
    ]
    assert credit_events(current, other.key) == [("credit.issued.v1", partner, Decimal("100.00"))]
    assert [d["deal_key"] for d in current["deals"]] == sorted([good.key, other.key])
    reason = await attribution.pool.fetchval(
        "SELECT headers->>'dlq.reason' FROM outbox WHERE topic = 'attribution.dlq.v1'"
    )
    assert reason.startswith(
        f"rejected by handler: deal {poison.key} revision 1: no CHF->USD rate on or before"
    )
    inbox = await attribution.pool.fetch("SELECT event_id FROM inbox ORDER BY kafka_offset")
    assert [r["event_id"] for r in inbox] == [envelopes[i].id for i in (0, 2, 3)]


async def test_an_amount_beyond_the_contract_is_refused_at_once_and_its_neighbours_applied(
    infra: Infra, attribution: Attribution
) -> None:
    """Found from outside: a snapshot of amount 1E+999999 passed the contract and attribution
    wrote it out with int() (85 s of its event loop: kicked from its group, the batch back
    again, for ever). A hostile amount is now refused at decode, with its reason, in no
    time, and the deals beside it are credited."""
    run = uuid.uuid4().hex[:8]
    good, hostile = Deal(run, "good"), Deal(run, "hostile")
    won = closed_won("100", "USD", f"p-{run}", close_date=TODAY)
    huge = json.loads(from_deals(hostile.snapshot(1, **won), hostile.key).to_bytes())
    huge["data"]["amount"] = "1E+300000"  # int() of it alone takes seconds
    first = from_deals(good.snapshot(1, **won), good.key)
    records = await raw_records(
        infra,
        [
            (good.key.encode(), first.to_bytes()),
            (hostile.key.encode(), json.dumps(huge).encode()),
            (good.key.encode(), from_deals(good.snapshot(2, **won), good.key).to_bytes()),
        ],
    )
    await confirmed_links(attribution.pool, CrmSource.SALESFORCE, f"p-{run}")

    started = time.perf_counter()
    outcomes = await attribution.consumer.process_batch(records)
    assert time.perf_counter() - started < 2.0
    assert outcomes == [Outcome.PROCESSED, Outcome.DEAD_LETTERED, Outcome.PROCESSED]
    reason = await attribution.pool.fetchval(
        "SELECT headers->>'dlq.reason' FROM outbox WHERE topic = 'attribution.dlq.v1'"
    )
    assert reason == (
        "invalid deal.state_changed.v1 payload: amount: Input should be less than 10000000000000000"
    )
    assert credit_events(await state(attribution.pool), good.key) == [
        ("credit.issued.v1", f"p-{run}", Decimal("100.00"))
    ]


async def test_a_redelivered_batch_changes_nothing(infra: Infra, attribution: Attribution) -> None:
    envelopes, *_ = story(uuid.uuid4().hex[:8])
    records = await as_records(infra, envelopes)
    assert await attribution.consumer.process_batch(records) == [Outcome.PROCESSED] * len(records)
    before = await state(attribution.pool)
    rows = await attribution.pool.fetchval("SELECT count(*) FROM outbox")

    assert await attribution.consumer.process_batch(records) == [Outcome.DUPLICATE] * len(records)
    # the same snapshots again under new ids: every revision is already applied
    again = await as_records(
        infra,
        [
            Envelope.wrap(e.data, source=e.source, subject=e.subject or "")
            for e in envelopes
            if isinstance(e.data, DealStateChanged)
        ],
    )
    assert await attribution.consumer.process_batch(again) == [Outcome.PROCESSED] * len(again)

    assert await state(attribution.pool) == before
    assert await attribution.pool.fetchval("SELECT count(*) FROM outbox") == rows


def won_deals(run: str, count: int) -> list[Envelope[Any]]:
    """Each deal won (a registration and a CRM partner: two credits), then its amount changed
    (two reversals, two new credits)."""
    envelopes = []
    for i in range(count):
        deal = Deal(run, f"d{i}")
        registration = approved_registration(f"reg-{run}-{i}", f"src-{run}-{i % 3}", days_ago=30)
        fields = closed_won(
            "1000", "EUR", f"mkt-{run}-{i % 4}", close_date=TODAY, registrations=(registration,)
        )
        envelopes.append(from_deals(deal.snapshot(1, **fields), deal.key))
        envelopes.append(
            from_deals(deal.snapshot(2, **{**fields, "amount": Decimal("2000")}), deal.key)
        )
    return envelopes


async def test_a_run_of_snapshots_costs_a_bounded_number_of_statements(
    infra: Infra, attribution: Attribution
) -> None:
    run = uuid.uuid4().hex[:8]
    sellers = [f"mkt-{r}-{i}" for r in (run, f"w{run}") for i in range(4)]
    await confirmed_links(attribution.pool, CrmSource.SALESFORCE, *sellers)
    # A first batch: the connection learns the types it sends (asyncpg asks once).
    await attribution.consumer.process_batch(await as_records(infra, won_deals(f"w{run}", 1)))
    records = await as_records(infra, won_deals(run, 20))

    sent_before = await statements_sent(infra, attribution.role)
    outcomes = await attribution.consumer.process_batch(records)
    sent = await statements_sent(infra, attribution.role) - sent_before

    assert outcomes == [Outcome.PROCESSED] * len(records)
    print(f"{len(records)} snapshots in one batch: {sent} statements sent")
    # BEGIN, inbox, the batch's CRM references, the run's (granted at once), deals' locks, 3
    # loads, the CRM links, 3-5 writes, outbox, COMMIT
    assert sent <= 15  # whatever the run's length; one snapshot at a time took about 20 each


async def test_a_batch_takes_every_crm_reference_before_any_deal(
    attribution: Attribution,
) -> None:
    """A link confirmed over HTTP takes its CRM reference, then the deals naming it. A batch
    of several runs (snapshots, a registration, snapshots) that took each run's references
    only when the run began would hold the first run's deal while waiting for a later run's
    reference: the opposite order, a deadlock. So while the batch waits for a reference held
    elsewhere, it holds no deal."""
    run = uuid.uuid4().hex[:8]
    first, later = Deal(run, "first"), Deal(run, "later")
    first_ref, later_ref = f"ref-a-{run}", f"ref-b-{run}"
    decided = registration_decided(
        registration_id=f"reg-{run}", partner_id=f"p-{run}", crm_deal_key=first.key
    )
    records = await as_records(
        attribution.infra,
        [
            from_deals(first.snapshot(1, partner_ref=first_ref), first.key),
            from_deals(decided, decided.registration_id),
            from_deals(later.snapshot(1, partner_ref=later_ref), later.key),
        ],
    )
    blocked = min(repository.reference_lock_keys([later_ref]))
    async with attribution.pool.acquire() as holder:
        async with holder.transaction():
            await holder.execute("SELECT pg_advisory_xact_lock($1)", blocked)
            batch = asyncio.create_task(attribution.consumer.process_batch(records))
            pid = await waiter_of(holder, blocked, what="the batch waiting for the reference")
            held = await held_keys(holder, pid)
            deals = [
                key for key in held if key in repository.deal_lock_keys([first.key, later.key])
            ]
            assert deals == [], f"held deal locks {deals} while waiting for a CRM reference"
            references = repository.reference_lock_keys([first_ref, later_ref])
            assert set(held) <= references, f"held {held}: not only the batch's references"
        outcomes = await batch
    assert Outcome.DEAD_LETTERED not in outcomes
