"""Inspect dead letters, and see what a service's relay parked.

    python -m shared.dlq list   --service deals
    python -m shared.dlq parked --service deals [--database-url postgresql://...]

Replays go through the service (shared/dead_letters.py: the console's Dead letters page, or
`POST /admin/dead-letters/{offset}/replay` and `POST /admin/dead-letters/replay`), which
records each letter replayed once, with who replayed it. `replay` here is retired (found in
review: it was recorded nowhere, so the console still offered the letter and a later
replay-all sent it again, and its first run without --offset replayed the whole topic).

`parked` lists the outbox rows never sendable (Kafka refused them for good: too large, an
invalid topic; or their stored value does not unpack), with the reason, read from the
service's own schema with its own role (`DATABASE_URL`).

`list` connects to Kafka as the principal the `KAFKA_*` variables name (an operator's; a
service's own principal may read its dead letters too).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from dataclasses import dataclass
from typing import Any, NamedTuple

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaTimeoutError

from shared import outbox_codec
from shared.dead_lettering import DLQ_ORIGIN_TOPIC, DLQ_REASON
from shared.events import header_texts
from shared.kafka_client import KafkaConnection
from shared.settings import ServiceSettings
from shared.topics import dead_letter_topic


@dataclass(frozen=True)
class DeadLetter:
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]

    @property
    def reason(self) -> str:
        return self.headers.get(DLQ_REASON, "")

    @property
    def origin_topic(self) -> str:
        return self.headers[DLQ_ORIGIN_TOPIC]


def _to_dead_letter(record: Any) -> DeadLetter:
    return DeadLetter(record.offset, record.key, record.value or b"", header_texts(record.headers))


async def read_dead_letters(
    kafka: KafkaConnection, service: str, *, group_id: str | None = None
) -> tuple[list[DeadLetter], AIOKafkaConsumer]:
    """Everything in the service's DLQ (from the group's committed offset when group_id is set).

    Returns the consumer too (started) so the caller can commit progress and must stop it.
    """
    topic = dead_letter_topic(service).name
    consumer = AIOKafkaConsumer(
        **kafka.aiokafka_options(),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or {0})]
    consumer.assign(partitions)
    if group_id is None:
        await consumer.seek_to_beginning(*partitions)
    end = await consumer.end_offsets(partitions)
    letters: list[DeadLetter] = []
    for tp in partitions:
        while await consumer.position(tp) < end[tp]:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            for record in batch.get(tp, []):
                letters.append(_to_dead_letter(record))
    return letters, consumer


PAGE_PATIENCE_SECONDS = 20.0


class Page(NamedTuple):
    letters: list[DeadLetter]
    first: int  # the oldest offset the topic still keeps (retention deletes older ones)
    end: int  # the offset the next letter will get


async def read_page(
    kafka: KafkaConnection,
    service: str,
    start: int,
    limit: int,
    *,
    patience_seconds: float = PAGE_PATIENCE_SECONDS,
) -> Page:
    """Up to `limit` dead letters of the service from offset `start` on, with the topic's first
    and end offsets. Reads with no consumer group: nothing is committed, and a service's own
    principal may read its dead-letter topic (shared/topics.py grants).

    Letters known to be there (before the end offset) are waited for, up to `patience_seconds`:
    a busy broker's first fetch can take longer than one poll, and a page that quietly left them
    out would tell an operator there is nothing to replay. Past it, KafkaTimeoutError."""
    topic = dead_letter_topic(service).name
    consumer = AIOKafkaConsumer(
        **kafka.aiokafka_options(),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)  # a dead-letter topic has one partition: one order
        consumer.assign([tp])
        first = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, max(start, first))
        letters: list[DeadLetter] = []
        deadline = asyncio.get_running_loop().time() + patience_seconds
        while len(letters) < limit and (position := await consumer.position(tp)) < end:
            if asyncio.get_running_loop().time() >= deadline:
                raise KafkaTimeoutError(
                    f"{topic}: offsets {position}..{end - 1} not read within {patience_seconds:g} s"
                )
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=limit - len(letters))
            letters += [_to_dead_letter(record) for record in batch.get(tp, [])]
        return Page(letters, first, end)
    finally:
        await consumer.stop()


async def parked_rows(database_url: str, service: str) -> list[dict[str, Any]]:
    """The outbox rows of `service` its relay parked, oldest first, with their reasons and
    their events' sizes (as sent, not as stored)."""
    conn = await asyncpg.connect(database_url, server_settings={"search_path": service})
    try:
        rows = await conn.fetch(
            """SELECT position, event_id, topic, message_key, event_type, value, value_codec,
                      parked_at, park_reason
               FROM outbox WHERE parked_at IS NOT NULL AND published_at IS NULL
               ORDER BY position"""
        )
    finally:
        await conn.close()
    return [{**dict(row), "size": _event_size(row)} for row in rows]


def _event_size(row: asyncpg.Record) -> int:
    try:
        return len(outbox_codec.unpack(row["value"], row["value_codec"]))
    except ValueError:  # not readable here (damaged, or a newer codec): what is stored
        return len(row["value"])


def _print_parked(database_url: str, service: str) -> None:
    rows = asyncio.run(parked_rows(database_url, service))
    for row in rows:
        print(
            f"position={row['position']} topic={row['topic']} key={row['message_key']} "
            f"type={row['event_type']} bytes={row['size']} parked_at={row['parked_at']:%FT%T%z}"
            f"\n  reason: {row['park_reason']}"
        )
    print(f"{len(rows)} parked row(s)")


RETIRED = (
    "python -m shared.dlq replay is retired: a replay from here was recorded nowhere (the"
    " console still offered the letter, a later replay-all sent it again) and named no one."
    " Replay through the service, which records each letter once with who replayed it: the"
    " portal's Dead letters page, or POST /admin/dead-letters/{offset}/replay, or POST"
    ' /admin/dead-letters/replay {"since": N, "through": M}, with a channel manager\'s token'
    " (python -m shared.identity issue --role channel_manager --subject <you>)."
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="List or replay a service's dead letters; list its parked outbox rows."
    )
    parser.add_argument("command", choices=["list", "replay", "parked"])
    parser.add_argument("--service", required=True)
    parser.add_argument("--offset", type=int, action="append", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    args = parser.parse_args()
    if args.command == "replay":
        raise SystemExit(RETIRED)
    if args.command == "parked":
        database_url = args.database_url or ServiceSettings(service_name=args.service).database_url
        _print_parked(database_url, args.service)
        return
    # An operator's principal (the KAFKA_* variables; `deploy/local-stack.sh env` prints them).
    kafka = KafkaConnection.from_env(os.environ)
    if args.command == "list":  # the only one left

        async def list_all() -> list[DeadLetter]:
            letters, consumer = await read_dead_letters(kafka, args.service)
            await consumer.stop()
            return letters

        for letter in asyncio.run(list_all()):
            h = letter.headers
            origin = f"{h.get(DLQ_ORIGIN_TOPIC)}[{h.get('dlq.origin.partition')}]"
            origin += f"@{h.get('dlq.origin.offset')}"
            print(
                f"offset={letter.offset} origin={origin} type={h.get('ce_type', '?')} "
                f"consumer={h.get('dlq.consumer')}\n  reason: {letter.reason}"
            )


if __name__ == "__main__":
    main()
