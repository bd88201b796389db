"""Transactional outbox: events are rows written in the same transaction as the state change,
and a relay (shared.relay) publishes them to Kafka afterwards.

Crash anywhere and nothing is lost: an event committed but not published is published when a
relay next runs; an event published but not yet marked is published again, and the consumers'
inbox drops the duplicate (same CloudEvents id).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from aiokafka import AIOKafkaProducer

from shared import outbox_codec
from shared.db import Connection
from shared.events import Envelope, EventPayload
from shared.kafka_client import KafkaConnection
from shared.topics import Topic
from shared.tracing import current_traceparent


def make_producer(kafka: KafkaConnection, client_id: str) -> AIOKafkaProducer:
    """The only way the platform produces to Kafka: idempotent, acknowledged by all replicas."""
    return AIOKafkaProducer(
        **kafka.aiokafka_options(),
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        # No linger: the relay enqueues a whole outbox batch before it yields (send() only
        # suspends when a batch is full, and full batches go at once anyway), so waiting for
        # more records only added the wait: relay lag p50 went from about 7.2 to 5.2 ms.
        linger_ms=0,
        request_timeout_ms=30_000,
    )


def notify_channel(schema: str) -> str:
    return f"pollinate_outbox_{schema}"


# When the upstream change behind the work in progress entered the platform: set by the HTTP
# edge for a request, by the consumer for an event it handles, by a periodic job for its run.
_ingested_at: ContextVar[datetime | None] = ContextVar("pollinate_ingested_at", default=None)


@contextmanager
def ingestion(moment: datetime | None) -> Iterator[None]:
    """Events recorded inside this block without a cause are stamped `ingested_at=moment`."""
    token = _ingested_at.set(moment)
    try:
        yield
    finally:
        _ingested_at.reset(token)


def ingested_at_of(cause: Envelope[Any]) -> datetime:
    """When the change behind `cause` entered the platform: the time its payload carries on,
    or else the moment the event itself was written."""
    carried = getattr(cause.data, "ingested_at", None)
    return carried if isinstance(carried, datetime) else cause.time


@dataclass(frozen=True)
class OutgoingEvent:
    """One event to record with `Outbox.publish_many` (or `HandlerContext.emit_all`).

    The platform stamps what every event carries: its id (random unless the use case gives a
    deterministic one, which makes a repeated write a no-op), the trace it continues and
    `ingested_at` (on payloads that have the field and leave it empty), both taken from
    `cause`, the consumed event that caused this one; without a cause, from the request, event
    or job being served."""

    topic: Topic
    payload: EventPayload
    subject: str  # the aggregate id: the Kafka key
    event_id: uuid.UUID | None = None
    cause: Envelope[Any] | None = None


class Outbox:
    """Writes events into the service's outbox table, inside the caller's transaction.

    `compress`: keep each event's value compressed (shared/outbox_codec.py): 14-35% of its
    bytes, and under half of the row's insert WAL. Off only while a version older than the
    codec may still relay this outbox (README, Reliability): it would send the compressed
    bytes."""

    def __init__(self, schema: str, source: str, *, compress: bool = True) -> None:
        self.schema = schema
        self.source = source
        self.channel = notify_channel(schema)
        self.compress = compress
        if compress:
            outbox_codec.load()  # a broken installation fails here, at the service's start

    async def publish(
        self,
        conn: Connection,
        topic: Topic,
        payload: EventPayload,
        *,
        subject: str,
        event_id: uuid.UUID | None = None,
    ) -> Envelope[Any] | None:
        """Record `payload` for publication on `topic`, keyed by `subject` (the aggregate id).

        Returns None when an event with `event_id` was recorded before (a repeated delivery)."""
        recorded = await self.publish_many(conn, [OutgoingEvent(topic, payload, subject, event_id)])
        return recorded[0] if recorded else None

    async def publish_many(
        self,
        conn: Connection,
        events: Sequence[OutgoingEvent],
        traceparents: Mapping[uuid.UUID, str] | None = None,
    ) -> list[Envelope[Any]]:
        """Record several events in one statement, in the given order (their relay order).

        `traceparents` maps a consumed event's id to its processing span, for events whose
        `cause` is that event. Returns the envelopes recorded now: an event whose id was
        recorded before (or earlier in the same call) is left out."""
        if not events:
            return []
        if not conn.is_in_transaction():
            raise RuntimeError("outbox writes must share the caller's transaction")
        envelopes: list[Envelope[Any]] = []
        # The trace of the work in progress, read once for all the events of the call that do
        # not continue a consumed event's span (OpenTelemetry's lookup and formatting, per
        # event, were a few per cent of a service's CPU).
        ambient = cache(current_traceparent)
        for event in events:
            if self.schema not in event.topic.producing_services:
                raise ValueError(f"{self.schema} does not produce to {event.topic.name}")
            # Its consumers park a type their topic does not list (a newer producer's).
            kind = event.payload.event_type
            if event.topic.events and kind not in event.topic.events:
                raise ValueError(f"{event.topic.name} does not carry {kind}")
            envelopes.append(
                Envelope.wrap(
                    _stamped(event),
                    source=self.source,
                    subject=event.subject,
                    event_id=event.event_id,
                    traceparent=_traceparent(event, traceparents, ambient),
                )
            )
        # One round trip for the rows and the relay's wake-up call (delivered to listeners only
        # if and when this transaction commits). WITH ORDINALITY ... ORDER BY keeps the given
        # order in `position`. The row keeps no Kafka headers: the relay builds CloudEvents'
        # binary-mode attributes from its columns and the trace (migration 0011).
        values, codecs = self._stored([envelope.to_bytes() for envelope in envelopes])
        inserted = await conn.fetch(
            """
            INSERT INTO outbox
                (event_id, topic, message_key, event_type, value, value_codec, traceparent)
            SELECT e.event_id, e.topic, e.message_key, e.event_type, e.value, e.value_codec,
                   e.traceparent
            FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bytea[],
                        $6::smallint[], $7::text[])
                WITH ORDINALITY
                AS e(event_id, topic, message_key, event_type, value, value_codec, traceparent, n)
            ORDER BY e.n
            ON CONFLICT (event_id) DO NOTHING
            RETURNING event_id, pg_notify($8, '')
            """,
            [envelope.id for envelope in envelopes],
            [event.topic.name for event in events],
            [event.subject for event in events],
            [envelope.type for envelope in envelopes],
            values,
            codecs,
            [envelope.traceparent or None for envelope in envelopes],
            self.channel,
        )
        recorded = {row["event_id"] for row in inserted}
        fresh = []
        for envelope in envelopes:
            if envelope.id in recorded:
                recorded.discard(envelope.id)  # the same id twice in one call: recorded once
                fresh.append(envelope)
        return fresh

    def _stored(self, values: list[bytes]) -> tuple[list[bytes], list[int | None]]:
        """The events' values as the rows keep them, and the codec of each (None: as is)."""
        if not self.compress:
            return values, [None] * len(values)
        packed = [outbox_codec.pack(value) for value in values]
        return [value for value, _ in packed], [codec for _, codec in packed]

    async def publish_raw(
        self,
        conn: Connection,
        *,
        topic_name: str,
        key: str,
        event_id: uuid.UUID,
        event_type: str,
        value: bytes,
        headers: Mapping[str, str],
    ) -> bool:
        """Record an already-serialised message, as it is (a dead letter's record: kept as it
        came, never compressed). Returns False if `event_id` was recorded before."""
        if not conn.is_in_transaction():
            raise RuntimeError("outbox writes must share the caller's transaction")
        # One round trip: the row and the relay's wake-up call (delivered to listeners only if
        # and when this transaction commits; nothing to announce when the id was recorded).
        inserted = await conn.fetchrow(
            """
            INSERT INTO outbox (event_id, topic, message_key, event_type, value, headers)
            VALUES ($1, $2, $3, $4, $5, $6::jsonb)
            ON CONFLICT (event_id) DO NOTHING
            RETURNING pg_notify($7, '')
            """,
            event_id,
            topic_name,
            key,
            event_type,
            value,
            json.dumps(dict(headers)),
            self.channel,
        )
        return inserted is not None


def _stamped(event: OutgoingEvent) -> EventPayload:
    """The payload with `ingested_at` filled in from its cause (or the work in progress), when
    the contract has the field and the use case left it empty."""
    payload = event.payload
    # (A pydantic model keeps its field values in its __dict__.)
    if "ingested_at" not in type(payload).model_fields or vars(payload)["ingested_at"]:
        return payload
    moment = ingested_at_of(event.cause) if event.cause is not None else _ingested_at.get()
    if moment is None:
        return payload
    return payload.model_copy(update={"ingested_at": moment})


def _traceparent(
    event: OutgoingEvent,
    traceparents: Mapping[uuid.UUID, str] | None,
    ambient: Callable[[], str | None],
) -> str | None:
    if event.cause is not None and traceparents and event.cause.id in traceparents:
        return traceparents[event.cause.id]
    return ambient()
