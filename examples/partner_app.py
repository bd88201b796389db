"""A partner app: subscribe to one partner's notifications from Pollinate.

    .venv/bin/python -m examples.partner_app --partner ptn_1234abcd [--from-beginning]

Notifications are on `notifications.partner.v1`, keyed by partner id, so one partner's messages
are ordered. A real partner app runs its own consumer group and commits offsets as it handles
messages (here: after printing), so a restart resumes where it stopped; it filters by key
(or, in production, reads a per-partner topic or a webhook fed from this one). Messages are
CloudEvents; unknown fields and unknown event types are ignored, so newer platform versions do
not break the app (`notification.partner.v2` carries the kinds v1 cannot name).

The broker is not open to partners: this reads as the principal the `KAFKA_*` variables name
(an operator's, `deploy/local-stack.sh env`), so it shows what a partner would receive.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.events.notifications import PartnerNotification, PartnerNotificationV2
from shared.kafka_client import KafkaConnection
from shared.topics import PARTNER_NOTIFICATIONS

# Read by event type: v2 carries the kinds v1 cannot name (a v1-only app skips v2 messages).
CONTRACTS: dict[str, type[PartnerNotification | PartnerNotificationV2]] = {
    PartnerNotification.event_type: PartnerNotification,
    PartnerNotificationV2.event_type: PartnerNotificationV2,
}


async def notifications(
    kafka: KafkaConnection,
    partner_ids: Iterable[str],
    *,
    group_id: str | None = None,
    since: datetime | None = None,
    idle_seconds: float | None = None,
) -> AsyncIterator[PartnerNotification | PartnerNotificationV2]:
    """Yield the partners' notifications in order. With `since`, start at that moment; with
    `idle_seconds`, stop once nothing new arrived for that long (for summaries)."""
    wanted = {p.encode() for p in partner_ids}
    consumer = AIOKafkaConsumer(
        **kafka.aiokafka_options(),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        topic = PARTNER_NOTIFICATIONS.name
        if group_id is not None:
            consumer.subscribe([topic])
        else:
            partitions = [TopicPartition(topic, p) for p in range(PARTNER_NOTIFICATIONS.partitions)]
            consumer.assign(partitions)
            if since is not None:
                starts = await consumer.offsets_for_times(
                    {tp: int(since.timestamp() * 1000) for tp in partitions}
                )
                ends = await consumer.end_offsets(partitions)
                for tp in partitions:
                    found = starts.get(tp)
                    consumer.seek(tp, found.offset if found is not None else ends[tp])
        while True:
            timeout_ms = int((idle_seconds or 1.0) * 1000)
            batch = await consumer.getmany(timeout_ms=timeout_ms)
            if not batch and idle_seconds is not None:
                return
            for records in batch.values():
                for record in records:
                    if record.key in wanted:
                        envelope: dict[str, Any] = json.loads(record.value)
                        contract = CONTRACTS.get(envelope.get("type", ""))
                        if contract is not None:  # a type this app does not know is skipped
                            yield contract.model_validate(envelope["data"])
            if group_id is not None:
                await consumer.commit()
    finally:
        await consumer.stop()


async def main(partner: str, from_beginning: bool) -> None:
    kafka = KafkaConnection.from_env(os.environ)
    group = None if from_beginning else f"partner-app-{partner}"
    print(f"listening for {partner}'s notifications on {PARTNER_NOTIFICATIONS.name} (Ctrl-C stops)")
    async for note in notifications(kafka, [partner], group_id=group):
        print(f"{note.created_at:%H:%M:%S} [{note.kind}] to {note.recipient}: {note.subject}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Print one partner's Pollinate notifications.")
    parser.add_argument("--partner", required=True)
    parser.add_argument("--from-beginning", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.partner, args.from_beginning))
