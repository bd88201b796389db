"""Credits held for a partner that cannot be booked when it settles: the credit's failure, not
the partner's. Found from outside: incentives held credit.issued.v1 events of an unknown
partner with amounts 1E+999999, 40 nines and 18 decimals (before the contract bounded them);
the partner's valid activation then failed to book them (InvalidOperation) and was itself
dead-lettered, with its projection rolled back, and so was every later state of that partner.
GET /credits/held answered 500 for every caller (the stored amount cast to numeric)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from services.incentives import handlers, views
from shared.consumer import EventConsumer, Outcome
from shared.dead_lettering import (
    DLQ_CONSUMER,
    DLQ_ORIGIN_OFFSET,
    DLQ_ORIGIN_PARTITION,
    DLQ_ORIGIN_TOPIC,
)
from shared.events import Envelope
from shared.events.partners import PartnerStateChanged, PartnerStatus
from shared.topics import ATTRIBUTION_CREDITS
from tests.support.incentives import (
    credit,
    incentives_schema,
    ledger_consumer,
    partner_records,
    records_of,
    scratch_consumer,
    snapshot,
)
from tests.support.infra import Infra
from tests.support.outbox import event_json

pytestmark = pytest.mark.integration

HOSTILE_AMOUNTS = ("1E+999999", "9" * 40, "1.123456789012345678")


def partner_consumer(pool: Any) -> EventConsumer:
    """The service's partner-projection consumer (app.py): another group than the ledger's,
    which took the credits in."""
    consumer = scratch_consumer(pool, "partner-projection")
    consumer.handles(PartnerStateChanged)(handlers.on_partner)
    consumer.locks_first(handlers.batch_locks)
    return consumer


async def test_a_held_credit_that_cannot_be_booked_is_dead_lettered_and_its_partner_applied(
    infra: Infra,
) -> None:
    run = uuid.uuid4().hex[:8]
    p = f"p-{run}"
    good = credit(run, "good", p, "dg", "10000.00", "g", "DE")
    async with incentives_schema(infra) as (pool, _):
        consumer = ledger_consumer(pool)
        assert await consumer.process_batch(await records_of(infra, good)) == [Outcome.PROCESSED]
        # Held before the contract bounded amounts: stored as the consumer stored them then,
        # with the inbox rows it wrote at their coordinates on attribution.credits.v1.
        hostile = []
        for offset, amount in enumerate(HOSTILE_AMOUNTS, start=40):
            event = json.loads(
                Envelope.wrap(
                    credit(run, f"h{offset}", p, f"d{offset}", "1.00", "h", "DE"),
                    source="pollinate/attribution",
                    subject=f"d{offset}-{run}",
                ).to_bytes()
            )
            event["data"]["amount"] = amount
            hostile.append(event)
            await pool.execute(
                """INSERT INTO held_credits (credit_id, partner_id, event, reason, held_at)
                   VALUES ($1, $2, $3::jsonb, 'partner not yet known', $4)""",
                event["data"]["credit_id"],
                p,
                json.dumps(event),
                datetime.now(UTC),
            )
            await pool.execute(
                """INSERT INTO inbox (consumer, event_id, event_type, topic, kafka_partition,
                       kafka_offset) VALUES ($1, $2, 'credit.issued.v1', $3, 2, $4)""",
                consumer.group_id,
                uuid.UUID(event["id"]),
                ATTRIBUTION_CREDITS.name,
                offset,
            )

        # The held list answers, each credit shown; the unreadable amounts say why.
        listed = await views.held_credits(pool, p, 10)
        assert [c.amount for c in listed] == [good.amount, None, None, None]
        assert "is not one a credit may carry (Input should be less than" in listed[1].reason

        activation = await partner_records(infra, snapshot(p, PartnerStatus.ACTIVE, 1))
        assert await partner_consumer(pool).process_batch(activation) == [Outcome.PROCESSED]

        assert await pool.fetchval("SELECT status FROM partners WHERE partner_id = $1", p) == (
            "active"
        )
        assert await pool.fetchval("SELECT count(*) FROM held_credits") == 0
        booked = await pool.fetch("SELECT credit_id FROM credits")
        assert [r["credit_id"] for r in booked] == [good.credit_id]
        letters = await pool.fetch(
            """SELECT event_id, message_key, value, value_codec, headers FROM outbox
               WHERE topic = 'incentives.dlq.v1' ORDER BY position"""
        )
        assert len(letters) == len(HOSTILE_AMOUNTS)
        for letter, event, offset in zip(letters, hostile, range(40, 43), strict=True):
            headers = json.loads(letter["headers"])
            assert headers[DLQ_ORIGIN_TOPIC] == ATTRIBUTION_CREDITS.name
            assert headers[DLQ_CONSUMER] == "incentives.ledger"  # replayed there, booked there
            assert (headers[DLQ_ORIGIN_PARTITION], headers[DLQ_ORIGIN_OFFSET]) == ("2", str(offset))
            assert headers["ce_type"] == "credit.issued.v1"
            assert letter["message_key"] == event["subject"]
            assert event_json(letter) == event
        reasons = [json.loads(letter["headers"])["dlq.reason"] for letter in letters]
        assert reasons[0].startswith(
            f"held credit h40-{run} not booked when its partner settled: invalid "
            "credit.issued.v1 payload: amount: Input should be less than 10000000000000000"
        )
        assert reasons[2].endswith("amount: at most 4 decimal places")
        # A dead letter keeps no inbox row: a replay after a fix is processed.
        assert (
            await pool.fetchval(
                "SELECT count(*) FROM inbox WHERE event_id = ANY($1::uuid[])",
                [uuid.UUID(event["id"]) for event in hostile],
            )
            == 0
        )

        # Later states of the partner apply as any other.
        later = await partner_records(infra, snapshot(p, PartnerStatus.ACTIVE, 2))
        assert await partner_consumer(pool).process_batch(later) == [Outcome.PROCESSED]
        assert await pool.fetchval("SELECT version FROM partners WHERE partner_id = $1", p) == 2


async def test_a_held_credit_the_programs_refuse_is_dead_lettered_and_the_rest_booked(
    infra: Infra,
) -> None:
    """A credit held while the programs paid in EUR, released after they moved to USD: the
    programs refuse it, and before, that refusal failed the whole activation (its partner
    dead-lettered, the other held credits left waiting)."""
    run = uuid.uuid4().hex[:8]
    p = f"p-{run}"
    euros = credit(run, "eur", p, "de", "500.00", "e", "DE", currency="EUR")
    dollars = credit(run, "usd", p, "du", "10000.00", "u", "DE")
    async with incentives_schema(infra) as (pool, _):
        consumer = ledger_consumer(pool)
        assert await consumer.process_batch(await records_of(infra, dollars)) == [Outcome.PROCESSED]
        held_in_eur = Envelope.wrap(euros, source="pollinate/attribution", subject="de")
        await pool.execute(
            """INSERT INTO held_credits (credit_id, partner_id, event, reason, held_at)
               VALUES ($1, $2, $3::jsonb, 'partner not yet known', $4)""",
            euros.credit_id,
            p,
            held_in_eur.model_dump_json(),
            datetime.now(UTC),
        )

        activation = await partner_records(infra, snapshot(p, PartnerStatus.ACTIVE, 1))
        assert await partner_consumer(pool).process_batch(activation) == [Outcome.PROCESSED]

        booked = await pool.fetch("SELECT credit_id FROM credits")
        assert [r["credit_id"] for r in booked] == [dollars.credit_id]
        reason = await pool.fetchval(
            "SELECT headers->>'dlq.reason' FROM outbox WHERE topic = 'incentives.dlq.v1'"
        )
        assert reason == (
            f"held credit {euros.credit_id} not booked when its partner settled: credit "
            f"{euros.credit_id} is in EUR; the incentive programs pay in USD (attribution "
            "credits in the reporting currency)"
        )
        assert await pool.fetchval("SELECT count(*) FROM held_credits") == 0
