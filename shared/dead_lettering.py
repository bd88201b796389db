"""Writing a dead letter: the record as it came (value, key, headers) with the `dlq.*` headers
saying why and from where, through the outbox in the consumer's transaction.

A dead letter must be storable whatever a producer sent, or the record that could not be
processed cannot be parked either: its batch fails, Kafka delivers it again, and its partition
stops for good. The outbox keeps the key and the event type as `text` and the headers as
`jsonb`, and Postgres refuses a NUL in either, and a lone surrogate (half a UTF-16 pair, which a
JSON `\\ud800` escape decodes to) in `jsonb`; asyncpg cannot even encode one into `text`. So
every text of a letter is written with those escaped (`storable`): a NUL as `\\x00`, a lone
surrogate as `\\udXXX`, key bytes that are not UTF-8 as `\\xNN`. The value, `bytea`, is kept
byte for byte. (A text that already held such an escape reads the same: letters are for people
and for replay, where a forged key is refused again by the consumer's provenance check.)
"""

from __future__ import annotations

import json
import logging
import traceback
import uuid
from collections.abc import Mapping
from decimal import DecimalException
from typing import Any

from aiokafka import ConsumerRecord

from shared.clock import now
from shared.db import DATABASE_UNAVAILABLE, TRANSACTION_COLLISIONS, Connection
from shared.events.envelope import CLOUDEVENTS_CONTENT_TYPE, header_text, header_texts
from shared.name_ids import NameIds
from shared.outbox import Outbox

log = logging.getLogger(__name__)

DLQ_IDS = NameIds(uuid.UUID("5b0f6f57-3b8e-4a53-9a52-7c1f1d0c9e11"))

# Header names on dead-lettered records (the original headers are kept beside them).
DLQ_REASON = "dlq.reason"
DLQ_ORIGIN_TOPIC = "dlq.origin.topic"
DLQ_ORIGIN_PARTITION = "dlq.origin.partition"
DLQ_ORIGIN_OFFSET = "dlq.origin.offset"
DLQ_CONSUMER = "dlq.consumer"
DLQ_FAILED_AT = "dlq.failed_at"
# On a record replayed from a dead-letter topic: `<dlq topic>:<offset>` of the letter it was.
DLQ_REPLAYED_FROM = "dlq.replayed_from"
DLQ_HEADERS = (
    DLQ_REASON,
    DLQ_ORIGIN_TOPIC,
    DLQ_ORIGIN_PARTITION,
    DLQ_ORIGIN_OFFSET,
    DLQ_CONSUMER,
    DLQ_FAILED_AT,
)
REASON_MAX = 4000
EVENT_TYPE_MAX = 200


def storable(text: str) -> str:
    """`text` with what Postgres' `text` and `jsonb` cannot hold escaped: NUL as `\\x00`, a
    lone surrogate as `\\udXXX`. Text without them (nearly all) is returned as it is."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode()
    except UnicodeEncodeError:
        text = text.encode(errors="backslashreplace").decode()
    return text


def key_text(key: bytes | None) -> str:
    """A record's key as storable text: its UTF-8 with other bytes as `\\xNN` and NUL escaped."""
    return storable((key or b"").decode(errors="backslashreplace"))


def dead_letter_id(group_id: str, record: ConsumerRecord[Any, Any]) -> uuid.UUID:
    """The id of a record's dead letter, from its coordinates: a redelivered poison record is
    parked once. A record replayed in place from a dead letter (same coordinates) names that
    letter in `dlq.replayed_from`, so failing again parks it anew, with its new reason."""
    coordinates = f"{group_id}/{record.topic}/{record.partition}/{record.offset}"
    replayed_from = header_text(record.headers, DLQ_REPLAYED_FROM)
    if replayed_from:
        coordinates += f"/replayed-from/{replayed_from}"
    return DLQ_IDS.uuid(coordinates)


async def park_kept_event(
    outbox: Outbox,
    conn: Connection,
    value: bytes,
    reason: str,
    *,
    topic: str,
    consumer: str,
    dead_letter_topic: str,
) -> None:
    """Dead-letter an event the consumer group `consumer` took in earlier and kept (`value`:
    its envelope as stored), found unprocessable only now (by any consumer of the service): a
    letter as that group's own, so a replay runs it through that group, at the event's original
    coordinates where the group's inbox still has them (so its letter id is the one that record
    would get). Its inbox row goes, as a dead letter keeps none: a replay after a fix is
    processed."""
    try:
        head = json.loads(value)
    except ValueError:
        head = None
    head = head if isinstance(head, dict) else {}
    event_id, event_type, subject = (str(head.get(k, "")) for k in ("id", "type", "subject"))
    known = await conn.fetchrow(
        """DELETE FROM inbox WHERE consumer = $1 AND event_id::text = $2
           RETURNING kafka_partition, kafka_offset, processed_at""",
        consumer,
        event_id,
    )
    partition, offset = (None, None) if known is None else (known[0], known[1])
    coordinates = (
        f"{consumer}/{topic}/{partition}/{offset}"
        if partition is not None and offset is not None
        else f"{consumer}/{topic}/kept/{event_id}"
    )
    original = {"ce_id": event_id, "ce_type": event_type, "content-type": CLOUDEVENTS_CONTENT_TYPE}
    headers = letter_headers(
        original, reason=reason, topic=topic, partition=partition, offset=offset, consumer=consumer
    )
    log.warning(
        "dead-lettering a kept event",
        extra={"consumer": consumer, "topic": topic, "event_id": event_id, "reason": reason},
    )

    async def write(letter_id: uuid.UUID) -> bool:
        return await write_letter(
            outbox,
            conn,
            dead_letter_topic=dead_letter_topic,
            letter_id=letter_id,
            key=subject.encode(),
            value=value,
            headers=headers,
        )

    if not await write(DLQ_IDS.uuid(coordinates)) and known is not None:
        # A letter at these coordinates exists: the event was parked, replayed in place (its
        # coordinates again) and failed again. This processing's moment makes a new letter
        # (the coordinates alone named the first one, and the second was dropped). Without an
        # inbox row it is the same parking again, rightly one letter.
        await write(DLQ_IDS.uuid(f"{coordinates}/processed-at/{known[2].isoformat()}"))


def letter_headers(
    original: Mapping[str, str],
    *,
    reason: str,
    topic: str,
    partition: int | None,
    offset: int | None,
    consumer: str,
) -> dict[str, str]:
    """The original headers (a forged `dlq.*` one left out) and the letter's own, storable."""
    headers = {
        storable(name): storable(value)
        for name, value in original.items()
        if name not in DLQ_HEADERS
    }
    headers[DLQ_REASON] = storable(reason)[:REASON_MAX]
    headers[DLQ_ORIGIN_TOPIC] = storable(topic)
    if partition is not None and offset is not None:
        headers[DLQ_ORIGIN_PARTITION] = str(partition)
        headers[DLQ_ORIGIN_OFFSET] = str(offset)
    headers[DLQ_CONSUMER] = consumer
    headers[DLQ_FAILED_AT] = now().isoformat()
    return headers


async def write_letter(
    outbox: Outbox,
    conn: Connection,
    *,
    dead_letter_topic: str,
    letter_id: uuid.UUID,
    key: bytes | None,
    value: bytes,
    headers: Mapping[str, str],
) -> bool:
    """Record the letter in the outbox (False: this letter was recorded before)."""
    return await outbox.publish_raw(
        conn,
        topic_name=dead_letter_topic,
        key=key_text(key),
        event_id=letter_id,
        event_type=headers.get("ce_type", "unknown")[:EVENT_TYPE_MAX],
        value=value,
        headers=headers,
    )


def describe_failure(error: BaseException) -> str:
    """What failed, for a reason a person reads: the exception's type and message and the
    platform code it was raised in. A decimal signal's own text is only its class list
    (`[<class 'decimal.InvalidOperation'>]`), which says neither what nor where."""
    kind = type(error).__name__
    message = str(error)
    if isinstance(error, DecimalException) and message.startswith("[<class"):
        message = "a decimal operation had no exact result in its context (a value too large?)"
    where = _raised_in(error)
    text = f"{kind}: {message}" if message else kind
    return f"{text} (in {where})" if where else text


def _raised_in(error: BaseException) -> str:
    """The innermost frame of the platform's own code (services/ or shared/) in the traceback."""
    found = ""
    for frame in traceback.extract_tb(error.__traceback__):
        for root in ("/services/", "/shared/"):
            at = frame.filename.rfind(root)
            if at >= 0:
                found = f"{frame.filename[at + 1 :]}:{frame.lineno} {frame.name}"
    return found


async def park_record(
    outbox: Outbox,
    conn: Connection,
    record: ConsumerRecord[Any, Any],
    reason: str,
    *,
    consumer: str,
    dead_letter_topic: str,
) -> None:
    """Write the record's dead letter. Should Postgres still refuse it, a letter without the
    original headers (the type aside) is written instead, saying so: a letter that cannot be
    written fails its batch, which Kafka delivers again, for ever."""
    log.warning(
        "dead-lettering record",
        extra={
            "consumer": consumer,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "reason": reason,
        },
    )
    letter_id = dead_letter_id(consumer, record)
    original = header_texts(record.headers)

    async def write(headers: Mapping[str, str], why: str) -> None:
        await write_letter(
            outbox,
            conn,
            dead_letter_topic=dead_letter_topic,
            letter_id=letter_id,
            key=record.key,
            value=record.value or b"",
            headers=letter_headers(
                headers,
                reason=why,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                consumer=consumer,
            ),
        )

    try:
        async with conn.transaction():  # a savepoint: a refused letter leaves the batch as it was
            await write(original, reason)
    except (*DATABASE_UNAVAILABLE, *TRANSACTION_COLLISIONS):
        raise  # the batch's own trouble: retried as any other
    except Exception as error:
        log.exception(
            "dead letter refused; parking the record without its headers",
            extra={
                "consumer": consumer,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
            },
        )
        kept = {"ce_type": original["ce_type"]} if "ce_type" in original else {}
        await write(kept, f"{reason} [its headers were not kept: {describe_failure(error)}]")
