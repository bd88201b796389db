"""Onboarding's credit consumer on real Kafka records and a real Postgres schema, driven through
`process_batch`: a run of credits and reversals (several per partner, interleaved with other
partners, duplicates, a reversal before its credit, a credit outside the revenue window) gives
exactly the rows and events the same records give one at a time; a poison record in the middle
of a run is dead-lettered while the rest is applied once; a redelivered batch changes nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from services.onboarding import handlers
from services.onboarding.domain.tiers import CertificationRole
from shared.consumer import EventConsumer, Outcome
from shared.db import Pool
from shared.events import EventPayload
from shared.events.attribution import CreditIssued, CreditReversed
from shared.outbox import Outbox
from shared.provisions import Provisions
from shared.topics import ATTRIBUTION_CREDITS, PARTNER_LIFECYCLE
from tests.support.factories import credit_issued, credit_reversed
from tests.support.infra import ROOT, Infra, ScratchService, migrated_pool, statements_sent
from tests.support.kafka import new_topic, publish, read_records
from tests.support.onboarding import SMALL, activated_partner
from tests.support.outbox import event_json

pytestmark = pytest.mark.integration

MIGRATIONS = Path(ROOT / "services" / "onboarding" / "migrations")
CONFIG = SMALL  # the small program: a few credits move tiers
# The outbox checks the producing service by name; its rows land in the scratch schema.
OUTBOX = Outbox("onboarding", "pollinate/onboarding")
TODAY = datetime.now(UTC).date()
INGESTED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@dataclass
class Harness:
    infra: Infra
    service: ScratchService
    pool: Pool
    consumer: EventConsumer


@pytest.fixture
async def harness(infra: Infra, scratch_service: ScratchService) -> AsyncIterator[Harness]:
    async with migrated_pool(scratch_service, "onboarding", MIGRATIONS) as pool:
        provisions = Provisions()
        provisions.provide(CONFIG)
        consumer = EventConsumer(
            name="credits",
            service="onboarding",
            topics=[ATTRIBUTION_CREDITS],
            pool=pool,
            outbox=OUTBOX,
            backoff_initial_seconds=0.01,
            provisions=provisions,
        )
        # The service's own handlers, registered as app.wire registers them.
        consumer.handles_batch(CreditIssued)(handlers.on_credits)
        consumer.handles_batch(CreditReversed)(handlers.on_reversals)
        yield Harness(infra, scratch_service, pool, consumer)


async def certify_behind_its_back(pool: Pool, partner_id: str, track: str) -> None:
    """Certifications onboarding has not re-evaluated yet: the next credit finds them."""
    at = datetime.now(UTC)
    for role in CertificationRole:
        await pool.execute(
            """INSERT INTO certifications (certification_id, partner_id, person, role, track,
                   issued_at, expires_at, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $6)""",
            f"cert_{uuid.uuid4().hex[:16]}",
            partner_id,
            f"{role.value}-{track}@{partner_id}.example",
            role.value,
            track,
            at - timedelta(days=1),
            at + timedelta(days=90),
        )


def credit(
    partner_id: str, credit_id: str, amount: str, close_date: date = TODAY, currency: str = "USD"
) -> CreditIssued:
    return credit_issued(
        credit_id=credit_id,
        partner_id=partner_id,
        amount=amount,
        currency=currency,
        close_date=close_date,
        issued_at=datetime.now(UTC),
        # A distinct ingestion time per credit: the snapshot it causes must carry it.
        ingested_at=INGESTED + timedelta(seconds=int(Decimal(amount))),
    )


def reversal(partner_id: str, reversal_id: str, credit_id: str, amount: str) -> CreditReversed:
    return credit_reversed(
        reversal_id=reversal_id,
        credit_id=credit_id,
        deal_key=f"deal-{credit_id}",
        partner_id=partner_id,
        amount=Decimal(amount),
        reason="deal amount corrected",
        deal_revision=2,
        reversed_at=datetime.now(UTC),
        ingested_at=INGESTED - timedelta(seconds=int(Decimal(amount))),
    )


def story(p1: str, p2: str) -> list[EventPayload]:
    """Credits and reversals for two partners, interleaved: runs of credits and runs of
    reversals, the same partner several times in a run."""
    t = uuid.uuid4().hex[:8]
    return [
        credit(p1, f"c1-{t}", "600.00"),  # finds the ai certifications: authorisations change
        credit(p2, f"d1-{t}", "1200.00"),  # p2 -> silver
        credit(p1, f"c1-{t}", "600.00"),  # the same credit re-sent: counted once
        credit(p1, f"c2-{t}", "400.1235"),  # four decimals, as kept: 1000.1235 -> silver
        credit(f"ptn_unknown_{t}", f"u1-{t}", "99999.00"),  # kept, moves nothing
        credit(p1, f"c3-{t}", "9000.00", close_date=TODAY - timedelta(days=400)),  # too old
        reversal(p1, f"r0-{t}", f"late-{t}", "700.00"),  # before its credit
        credit(p1, f"c4-{t}", "4000.00"),  # 5000.1235 -> gold
        reversal(p1, f"r4-{t}", f"c4-{t}", "4000.00"),  # 1000.1235: grace
        reversal(p1, f"r4-{t}", f"c4-{t}", "4000.00"),  # the same reversal re-sent
        reversal(p2, f"s1-{t}", f"d1-{t}", "1200.00"),  # p2: 0 -> grace
        credit(p1, f"late-{t}", "700.00"),  # already reversed: nets 0, nothing moves
        credit(p1, f"c5-{t}", "4500.00"),  # 5500.1235: grace cleared, still gold
        credit(p2, f"d2-{t}", "100.00"),  # p2: 100, still in grace
        credit(p1, f"c6-{t}", "1.00"),  # 5501.1235: revenue only
    ]


async def records_of(
    harness: Harness, payloads: list[EventPayload]
) -> list[ConsumerRecord[Any, Any]]:
    """The payloads as Kafka records (one partition: in order), each with its own event id."""
    topic = await new_topic(harness.infra.kafka, "attribution", partitions=1)
    await publish(harness.infra, topic, payloads, subject="deal", source="attribution")
    records = await read_records(harness.infra.kafka, topic.name, len(payloads))
    assert len(records) == len(payloads)
    return records


async def observed(pool: Pool, partner_id: str, since: int = 0) -> dict[str, Any]:
    """Everything onboarding keeps and announces about a partner (history and events after
    outbox position `since`), with the partner's own identity and wall-clock times taken out
    (so two partners' stories compare)."""
    row = await pool.fetchrow("SELECT * FROM partners WHERE partner_id = $1", partner_id)
    assert row is not None
    names = (row["domain"], partner_id, row["company_name"])

    def anonymous(value: Any) -> Any:
        text = json.dumps(value, default=str, sort_keys=True)
        for name in names:
            text = text.replace(name, "<partner>")
        return json.loads(text)

    volatile = {
        "agreement_valid_until",
        "updated_at",
        "applied_at",
        "checklist",
        "checklist_evidence",
        "domain_token",
        "application",
        "grace_until",
        "suspended_at",
    }
    partner = {k: v for k, v in dict(row).items() if k not in volatile}
    partner["in_grace_until"] = row["grace_until"] is not None
    history = await pool.fetch(
        """SELECT version, change, status, tier, reason, acted_by FROM partner_history
           WHERE partner_id = $1 ORDER BY version""",
        partner_id,
    )
    outbox = await pool.fetch(
        """SELECT topic, event_type, value, value_codec FROM outbox WHERE message_key = $1 AND position > $2
           ORDER BY position""",
        partner_id,
        since,
    )
    events = []
    for r in outbox:
        data = event_json(r)["data"]
        for key in ("changed_at", "created_at", "notification_id", "grace_until"):
            if key in data:
                data[key] = data[key] is not None
        events.append((r["topic"], r["event_type"], data))
    credits = await pool.fetch(
        """SELECT kind, amount, currency, close_date FROM credits WHERE partner_id = $1
           ORDER BY amount, close_date""",
        partner_id,
    )
    reversals = await pool.fetch(
        "SELECT amount FROM credit_reversals WHERE partner_id = $1 ORDER BY amount", partner_id
    )
    revenue = await pool.fetch(
        "SELECT close_date, net FROM revenue_days WHERE partner_id = $1 ORDER BY 1", partner_id
    )
    recomputed = await pool.fetch(
        """SELECT c.close_date, sum(c.amount - coalesce((SELECT sum(r.amount)
               FROM credit_reversals r WHERE r.credit_id = c.credit_id), 0)) AS net
           FROM credits c WHERE c.partner_id = $1 GROUP BY 1 ORDER BY 1""",
        partner_id,
    )
    # The trigger-kept revenue per day is what the credits and reversals add up to.
    assert [tuple(r) for r in revenue] == [tuple(r) for r in recomputed]
    return anonymous(
        {
            "partner": partner,
            "history": [dict(h) for h in history],
            "events": events,
            "credits": [dict(c) for c in credits],
            "reversals": [dict(r) for r in reversals],
            "revenue_days": [dict(r) for r in revenue],
        }
    )


def changes(state: dict[str, Any], since_version: int) -> list[tuple[str, str, str, Any]]:
    return [
        (e["change"], e["status"], e["tier"], e["ingested_at"])
        for topic, _, e in state["events"]
        if topic == PARTNER_LIFECYCLE.name and e["version"] > since_version
    ]


async def version_of(pool: Pool, partner_id: str) -> int:
    version: int = await pool.fetchval(
        "SELECT version FROM partners WHERE partner_id = $1", partner_id
    )
    return version


async def test_a_run_gives_exactly_what_one_event_at_a_time_gives(harness: Harness) -> None:
    pool = harness.pool
    batched = [await activated_partner(pool, OUTBOX, f"Batched {n}") for n in ("One", "Two")]
    single = [await activated_partner(pool, OUTBOX, f"Single {n}") for n in ("One", "Two")]
    for partner_id in (batched[0], single[0]):
        await certify_behind_its_back(pool, partner_id, "ai")
    setup_version = await version_of(pool, batched[0])
    assert setup_version == await version_of(pool, single[0])
    p2_version = await version_of(pool, batched[1])
    since = await pool.fetchval("SELECT max(position) FROM outbox")
    batch_story, single_story = story(*batched), story(*single)
    records = await records_of(harness, batch_story + single_story)
    batch_records, single_records = records[: len(batch_story)], records[len(batch_story) :]

    # One batch: the consumer hands runs of credits and runs of reversals to the handlers.
    assert await harness.consumer.process_batch(batch_records) == [Outcome.PROCESSED] * len(
        batch_records
    )
    # The same story one record (one transaction) at a time.
    for record in single_records:
        assert await harness.consumer.process(record) == Outcome.PROCESSED

    for b, s in zip(batched, single, strict=True):
        assert await observed(pool, b, since) == await observed(pool, s, since)

    # And what that is, spelled out: each change at the credit that caused it.
    first = await observed(pool, batched[0], since)

    def ingested(seconds: int) -> str:
        return (INGESTED + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")

    assert changes(first, setup_version) == [
        ("authorisations_changed", "active", "registered", ingested(600)),
        ("tier_changed", "active", "silver", ingested(400)),
        ("tier_changed", "active", "gold", ingested(4000)),
        ("grace_started", "grace", "gold", ingested(-4000)),
        ("updated", "active", "gold", ingested(4500)),
    ]
    lifecycle = [e for topic, _, e in first["events"] if topic == PARTNER_LIFECYCLE.name]
    assert [e["version"] for e in lifecycle] == list(range(setup_version + 1, setup_version + 6))
    assert lifecycle[-1]["products"] == ["ai", "data"]
    assert "attributed revenue 1000.1235 is below the gold minimum 5000" in lifecycle[-2]["reason"]
    assert [h["change"] for h in first["history"][setup_version:]] == [
        e["change"] for e in lifecycle
    ]
    assert Decimal(first["partner"]["revenue"]) == Decimal("5501.1235")
    assert (first["partner"]["status"], first["partner"]["tier"]) == ("active", "gold")
    assert len(first["credits"]) == 7  # c1 once, the one outside the window and `late` too
    assert len(first["reversals"]) == 2  # r0 (before its credit) and r4 once

    second = await observed(pool, batched[1], since)
    assert [c[:3] for c in changes(second, p2_version)] == [
        ("tier_changed", "active", "silver"),
        ("grace_started", "grace", "silver"),
    ]
    assert Decimal(second["partner"]["revenue"]) == Decimal(100)

    # Credits for partners onboarding does not know are kept, and move nothing.
    unknown = await pool.fetchval(
        "SELECT count(*) FROM credits WHERE partner_id LIKE 'ptn_unknown_%'"
    )
    assert unknown == 2


async def test_a_poison_record_in_a_run_is_dead_lettered_and_the_rest_applied_once(
    harness: Harness,
) -> None:
    pool = harness.pool
    partner_id = await activated_partner(pool, OUTBOX, "Poisoned")
    version = await version_of(pool, partner_id)
    t = uuid.uuid4().hex[:8]
    payloads: list[EventPayload] = [
        credit(partner_id, f"a-{t}", "300.00"),
        credit(partner_id, f"eur-{t}", "5000.00", currency="EUR"),
        credit(partner_id, f"b-{t}", "800.00"),  # 1100 -> silver
        reversal(partner_id, f"ra-{t}", f"a-{t}", "300.00"),  # 800 -> grace
    ]
    records = await records_of(harness, payloads)

    assert await harness.consumer.process_batch(records) == [
        Outcome.PROCESSED,
        Outcome.DEAD_LETTERED,
        Outcome.PROCESSED,
        Outcome.PROCESSED,
    ]

    state = await observed(pool, partner_id)
    assert [c[:3] for c in changes(state, version)] == [
        ("tier_changed", "active", "silver"),
        ("grace_started", "grace", "silver"),
    ]
    assert Decimal(state["partner"]["revenue"]) == Decimal(800)
    assert [Decimal(c["amount"]) for c in state["credits"]] == [Decimal(300), Decimal(800)]
    reason = await pool.fetchval(
        "SELECT headers->>'dlq.reason' FROM outbox WHERE topic = 'onboarding.dlq.v1'"
    )
    assert reason == (
        f"rejected by handler: credit eur-{t} is in EUR; onboarding's tier thresholds are in "
        "the reporting currency USD"
    )
    inbox = await pool.fetchval("SELECT count(*) FROM inbox")
    assert inbox == 3  # the poison record has no inbox row: a replay after a fix is processed


async def test_a_redelivered_batch_changes_nothing(harness: Harness) -> None:
    pool = harness.pool
    partners = [await activated_partner(pool, OUTBOX, f"Again {n}") for n in ("One", "Two")]
    payloads = story(*partners)
    records = await records_of(harness, payloads)
    assert set(await harness.consumer.process_batch(records)) == {Outcome.PROCESSED}
    before = [await observed(pool, p) for p in partners]
    outbox_rows = await pool.fetchval("SELECT count(*) FROM outbox")

    assert await harness.consumer.process_batch(records) == [Outcome.DUPLICATE] * len(records)
    # Re-sent under new event ids (attribution publishing again): the same credits and
    # reversals, recorded once, so nothing moves either.
    resent = await records_of(harness, payloads)
    assert set(await harness.consumer.process_batch(resent)) == {Outcome.PROCESSED}

    assert [await observed(pool, p) for p in partners] == before
    assert await pool.fetchval("SELECT count(*) FROM outbox") == outbox_rows


async def test_a_run_takes_a_bounded_number_of_statements_whatever_its_length(
    harness: Harness,
) -> None:
    pool = harness.pool
    partners = [await activated_partner(pool, OUTBOX, f"Bounded {n}") for n in range(4)]
    t = uuid.uuid4().hex[:8]
    # A first batch: the connection learns the types it sends (asyncpg asks once).
    warm_up = await records_of(harness, [credit(partners[0], f"w-{t}", "10.00")])
    assert await harness.consumer.process_batch(warm_up) == [Outcome.PROCESSED]
    # Twenty credits, five per partner, moving every partner up to silver and then gold.
    payloads: list[EventPayload] = [
        credit(partners[n % 4], f"b{n}-{t}", "1200.00") for n in range(20)
    ]
    records = await records_of(harness, payloads)
    role = f"{harness.service.schema}_svc"

    sent_before = await statements_sent(harness.infra, role)
    outcomes = await harness.consumer.process_batch(records)
    sent = await statements_sent(harness.infra, role) - sent_before

    assert outcomes == [Outcome.PROCESSED] * len(records)
    for partner_id in partners:
        assert (
            await pool.fetchval("SELECT tier FROM partners WHERE partner_id = $1", partner_id)
            == "gold"
        )
    # BEGIN, inbox, partners locked, certifications, revenue, credits inserted, partners
    # updated, audit rows, outbox, COMMIT: the same for a run of any length.
    assert sent <= 10, f"{sent} statements for a run of {len(records)} credits"
