"""A kept event dead-lettered, replayed in place, and failing again: a second letter, with
its own reason, on a scratch service's outbox and inbox (real Postgres)."""

from __future__ import annotations

import json
import uuid

import pytest

from shared.dead_lettering import park_kept_event
from shared.outbox import Outbox
from tests.support.counter import Components

pytestmark = pytest.mark.integration

CONSUMER, TOPIC, LETTERS = "deals.crm-writeback", "deals.registrations.v1", "deals.dlq.v1"


async def take_in(components: Components, event_id: uuid.UUID) -> None:
    """The consumer group took the event in at partition 3, offset 42 (as a replay in place
    of its letter takes it in again, at the same coordinates)."""
    await components.pool.execute(
        """INSERT INTO inbox (consumer, event_id, event_type, topic, kafka_partition, kafka_offset)
           VALUES ($1, $2, 'registration.decided.v1', $3, 3, 42)""",
        CONSUMER,
        event_id,
        TOPIC,
    )


async def park(components: Components, outbox: Outbox, event_id: uuid.UUID, reason: str) -> None:
    value = json.dumps({"id": str(event_id), "type": "registration.decided.v1", "subject": "r"})
    async with components.pool.acquire() as conn, conn.transaction():
        await park_kept_event(
            outbox,
            conn,
            value.encode(),
            reason,
            topic=TOPIC,
            consumer=CONSUMER,
            dead_letter_topic=LETTERS,
        )


async def test_a_kept_event_that_fails_again_after_its_replay_is_a_new_letter(
    components: Components,
) -> None:
    """Its letter's id came from the inbox row's coordinates only, which a replay in place
    takes again: the second letter was the first's id, dropped, and the event neither applied
    nor parked."""
    outbox, event_id = components.outbox, uuid.uuid4()
    await take_in(components, event_id)
    await park(components, outbox, event_id, "the CRM refused the write: 400")
    await take_in(components, event_id)  # replayed in place after a fix that did not hold
    await park(components, outbox, event_id, "the CRM refused the write again: 403")
    reasons = await components.pool.fetch(
        "SELECT headers->>'dlq.reason' AS reason FROM outbox WHERE topic = $1 ORDER BY position",
        LETTERS,
    )
    assert [r["reason"] for r in reasons] == [
        "the CRM refused the write: 400",
        "the CRM refused the write again: 403",
    ]
