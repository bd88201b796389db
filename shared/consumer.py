"""Idempotent event consumption: inbox + effects in one transaction, offsets after the commit.

Records arrive in batches (whatever is waiting, up to a bound); a batch is processed in order
in one Postgres transaction. A handler takes one event (`handles`) or, set-based, a run of
consecutive events of its type (`handles_batch`: a few statements for the whole run instead of
a few per event). If any handler fails, the batch is rolled back and redone with each record in
its own savepoint, so only the failing record is dead-lettered. For each record:
1. decode the CloudEvents envelope and validate the payload; an invalid event is dead-lettered
   with a precise reason (through the outbox, so it is never lost) and the consumer moves on;
   a type it does not handle is skipped, one its topic does not carry in this version (a
   newer producer's, mid-upgrade) dead-lettered, to be replayed once this service knows it;
2. in one Postgres transaction: insert (consumer, event id) into the inbox — if it is already
   there this is a redelivery and nothing else happens — then run the handler, whose writes
   and outbox events commit together with the inbox row;
3. only then does FastStream commit the offset (AckPolicy.NACK_ON_ERROR: ack after the handler
   returns; on an exception, seek back so the record is delivered again).
Transient failures (database unreachable, serialisation conflicts, deadlocks) are retried with
backoff, then nacked and redelivered; any other failure is dead-lettered with the error.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.exceptions import NackMessage
from faststream.kafka import KafkaBroker
from opentelemetry import trace

from shared.batch_locks import BatchLocks, LocksRefused, take_batch_locks
from shared.db import (
    DATABASE_UNAVAILABLE,
    TRANSACTION_COLLISIONS,
    Connection,
    Pool,
)
from shared.dead_lettering import describe_failure, park_kept_event, park_record
from shared.events import Envelope, EventPayload, InvalidEvent, decode_envelope
from shared.events.envelope import header_text
from shared.outbox import Outbox, OutgoingEvent, ingested_at_of, ingestion
from shared.provenance import provenance_mismatch
from shared.provisions import Provisions
from shared.subscriber import parsed_whatever_the_headers, poll_without_idle_sleep, raw_records
from shared.topics import Topic, dead_letter_topic, group_id_of
from shared.tracing import context_from_traceparent, traceparent_of, tracer

log = logging.getLogger(__name__)

P = TypeVar("P", bound=EventPayload)
T = TypeVar("T")


class _IsolateRecords(Exception):
    """A handler failed on the batch's fast path: redo the batch with a savepoint per record."""


class TransientError(Exception):
    """Raised by a handler for a failure that may succeed on retry (e.g. a dependency is down)."""


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientError,
    *DATABASE_UNAVAILABLE,
    *TRANSACTION_COLLISIONS,
)


class Outcome(StrEnum):
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    DEAD_LETTERED = "dead_lettered"


@dataclass
class HandlerContext:
    """What a handler may touch: its transaction's connection and the outbox in it."""

    conn: Connection
    outbox: Outbox
    topic: str
    partition: int
    offset: int
    # Consumed event id -> traceparent of its processing span (batch handlers).
    traceparents: dict[uuid.UUID, str] = field(default_factory=dict)

    # What the service's wiring provides (its policy, its config), by type.
    provisions: Provisions = field(default_factory=Provisions)
    # The consumer group and its dead-letter topic ("": a context made outside a consumer).
    consumer: str = ""
    dead_letter_topic: str = ""

    def provided(self, kind: type[T]) -> T:
        return self.provisions.get(kind)

    async def emit(
        self, topic: Topic, payload: EventPayload, *, subject: str
    ) -> Envelope[Any] | None:
        return await self.outbox.publish(self.conn, topic, payload, subject=subject)

    async def dead_letter_kept(
        self, topic: str, value: bytes, reason: str, *, taken_in_by: str
    ) -> None:
        """Dead-letter an event of `topic` this service's consumer `taken_in_by` (a name:
        `ledger`) kept (`value`), no longer processable: dead_lettering.park_kept_event."""
        if not self.consumer:
            raise RuntimeError("a handler context made outside a consumer has no dead letters")
        service = self.consumer.split(".", 1)[0]
        await park_kept_event(
            self.outbox,
            self.conn,
            value,
            reason,
            topic=topic,
            consumer=f"{service}.{taken_in_by}",
            dead_letter_topic=self.dead_letter_topic,
        )

    async def emit_all(self, events: Sequence[OutgoingEvent]) -> list[Envelope[Any]]:
        """Record events in one statement, each continuing the trace of its `cause` (the
        consumed event that caused it) with `ingested_at` carried on from it. Returns those
        recorded now (an event id recorded before is a repeat)."""
        return await self.outbox.publish_many(self.conn, events, self.traceparents)


Handler = Callable[[HandlerContext, Envelope[P]], Awaitable[None]]
BatchHandler = Callable[[HandlerContext, list[Envelope[P]]], Awaitable[None]]


@dataclass
class _Route(Generic[P]):
    model: type[P]
    handler: Handler[P] | None = None
    batch_handler: BatchHandler[P] | None = None

    async def run(self, context: HandlerContext, envelopes: list[Envelope[P]]) -> None:
        if self.batch_handler is not None:
            await self.batch_handler(context, envelopes)
        else:
            assert self.handler is not None
            for envelope in envelopes:
                await self.handler(context, envelope)


@dataclass
class ConsumerStats:
    outcomes: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    transient_failures: int = 0
    # Delivered batches that failed for good (Kafka delivers them again), and where and why
    # the last one failed while none has succeeded since (None: the consumer moves).
    failed_batches: int = 0
    stalled_at: str | None = None

    def count(self, outcome: Outcome) -> None:
        self.outcomes[outcome] += 1

    def stalled(self, where: str) -> None:
        self.failed_batches += 1
        self.stalled_at = where

    def poll_failed(self, error: Exception) -> None:
        self.stalled(f"a poll failed: {describe_failure(error)}")


class EventConsumer:
    """One consumer group of one service over one or more topics, with typed handlers."""

    def __init__(
        self,
        *,
        name: str,
        service: str,
        topics: list[Topic],
        pool: Pool,
        outbox: Outbox,
        max_attempts: int = 5,
        backoff_initial_seconds: float = 0.1,
        backoff_max_seconds: float = 5.0,
        batch_size: int = 200,
        batch_timeout_ms: int = 100,
        provisions: Provisions | None = None,
    ) -> None:
        self.name = name
        self.provisions = provisions or Provisions()
        self.service = service
        self.topics = topics
        self.pool = pool
        self.outbox = outbox
        self.max_attempts = max_attempts
        self.backoff_initial_seconds = backoff_initial_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.batch_size = batch_size
        self.batch_timeout_ms = batch_timeout_ms
        self.dead_letter_topic = dead_letter_topic(service)
        self.stats = ConsumerStats()
        # Called after each record with its outcome (metrics, tests awaiting progress).
        self.observers: list[Callable[[Outcome, ConsumerRecord[Any, Any]], None]] = []
        # Called after each batch with its duration in seconds, retries included (metrics).
        self.batch_observers: list[Callable[[float], None]] = []
        self._routes: dict[str, _Route[Any]] = {}
        self._batch_locks: BatchLocks | None = None
        self._topics = {topic.name: topic for topic in topics}
        self._tracer = tracer(f"pollinate.{service}")

    @property
    def group_id(self) -> str:
        return group_id_of(self.service, self.name)

    def handles(self, model: type[P]) -> Callable[[Handler[P]], Handler[P]]:
        """Register the handler of one event type."""

        def register(handler: Handler[P]) -> Handler[P]:
            self._add_route(_Route(model, handler=handler))
            return handler

        return register

    def handles_batch(self, model: type[P]) -> Callable[[BatchHandler[P]], BatchHandler[P]]:
        """Register a set-based handler: it gets each run of consecutive first-seen events of
        this type in a batch, in order (one event when records are isolated after a failure).
        Events it emits should be `OutgoingEvent(..., cause=envelope)` so each one
        continues the trace of the event that caused it."""

        def register(handler: BatchHandler[P]) -> BatchHandler[P]:
            self._add_route(_Route(model, batch_handler=handler))
            return handler

        return register

    def locks_first(self, keys: BatchLocks) -> BatchLocks:
        """Register what the batch's first-seen events lock (shared/batch_locks.py says why).
        Handlers may lock the same keys again: a lock already held is granted at once."""
        self._batch_locks = keys
        return keys

    def _add_route(self, route: _Route[Any]) -> None:
        if route.model.event_type in self._routes:
            raise ValueError(f"{self.group_id} already handles {route.model.event_type}")
        self._routes[route.model.event_type] = route

    def attach(self, broker: KafkaBroker) -> None:
        """Subscribe on a FastStream broker, acknowledging only after processing."""

        # The records are the handler's one argument, annotated Any so that FastStream's dependency
        # injection, where a broker keeps it on, passes them through unvalidated.
        async def on_batch(records: Any) -> None:
            if records:
                await self.process_delivered(list(records))

        subscriber = broker.subscriber(
            *[topic.name for topic in self.topics],
            group_id=self.group_id,
            auto_offset_reset="earliest",
            # Explicit at-least-once: offsets are committed after process_batch() returned (so
            # after the DB commit); an exception seeks every partition of the batch back to its
            # first record and the batch comes again.
            ack_policy=AckPolicy.NACK_ON_ERROR,
            # What is waiting is taken together (up to batch_size): one transaction, one fsync
            # and one offset commit for the lot. A lone record is not held back.
            batch=True,
            max_records=self.batch_size,
            batch_timeout_ms=self.batch_timeout_ms,
            # Each record is decoded once, by process_batch against its route's contract.
            decoder=raw_records,
            parser=parsed_whatever_the_headers,
            # Events are answered through the outbox, never by a reply: FastStream published
            # the handler's result to a record's `reply_to` with its own producer (an empty
            # record, or a failure after the commit that brought the batch back for ever).
            no_reply=True,
        )
        subscriber(on_batch)
        # What Kafka sent could not be read: the partitions stop there, shown as a stall.
        poll_without_idle_sleep(subscriber, self.stats.poll_failed)

    async def process(self, record: ConsumerRecord[Any, Any]) -> Outcome:
        """Process one record (a batch of one)."""
        return (await self.process_batch([record]))[0]

    async def process_delivered(self, records: list[ConsumerRecord[Any, Any]]) -> None:
        """Process a batch Kafka delivered. One that fails for good (not even dead-lettering
        settled it) is sent back by FastStream and delivered again: its partitions stop there
        until it is fixed, so where and why is logged and kept for the metrics."""
        try:
            await self.process_batch(records)
        except NackMessage:
            raise  # transient failures past their retries: counted and logged as such
        except Exception as error:
            firsts = {(r.topic, r.partition): r for r in reversed(records)}.values()
            where = ", ".join(sorted(f"{r.topic}[{r.partition}]@{r.offset}" for r in firsts))
            self.stats.stalled(f"{where}: {describe_failure(error)}")
            log.exception(
                "batch failed; Kafka delivers it again, its partitions stopped",
                extra={"consumer": self.group_id, "stopped_at": where},
            )
            raise
        self.stats.stalled_at = None

    async def process_batch(self, records: list[ConsumerRecord[Any, Any]]) -> list[Outcome]:
        """Process records in order in one transaction; each record's handler runs in its own
        savepoint, so one poison record is dead-lettered without undoing the others."""
        started = time.perf_counter()
        outcomes = await self._settle([self._decode(record) for record in records])
        for record, outcome in zip(records, outcomes, strict=True):
            self.stats.count(outcome)
            for observe in self.observers:
                observe(outcome, record)
        for observe_batch in self.batch_observers:
            observe_batch(time.perf_counter() - started)
        return outcomes

    async def _settle(
        self, decoded: list[tuple[ConsumerRecord[Any, Any], Envelope[Any] | None, str | None]]
    ) -> list[Outcome]:
        """The batch's outcomes, transient failures retried with bounded backoff."""
        backoff = self.backoff_initial_seconds
        for attempt in range(1, self.max_attempts + 1):
            try:
                try:
                    return await self._handle_batch_once(decoded, isolate=False)
                except _IsolateRecords:
                    # A handler failed: run the batch again, each record in a savepoint, so
                    # only the failing record is rolled back and dead-lettered.
                    return await self._handle_batch_once(decoded, isolate=True)
            except TRANSIENT_ERRORS as error:
                self.stats.transient_failures += 1
                log.warning(
                    "transient failure handling a batch",
                    extra={
                        "consumer": self.group_id,
                        "records": len(decoded),
                        "attempt": attempt,
                        "error": repr(error),
                    },
                )
                if attempt == self.max_attempts:
                    # Not processed and not skipped: seek back, deliver again later.
                    raise NackMessage() from error
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.backoff_max_seconds)
        raise AssertionError("unreachable")  # pragma: no cover

    def _decode(
        self, record: ConsumerRecord[Any, Any]
    ) -> tuple[ConsumerRecord[Any, Any], Envelope[Any] | None, str | None]:
        topic = self._topics.get(record.topic)
        handled = {t: r.model for t, r in self._routes.items()}
        carried = topic.events if topic is not None else ()
        try:
            envelope = decode_envelope(record.value or b"", handled, record.headers, carried)
        except InvalidEvent as error:
            return record, None, str(error)
        except Exception as error:  # a record no check foresaw must not stop its partition
            return record, None, f"undecodable record: {describe_failure(error)}"
        if envelope is not None:
            mismatch = provenance_mismatch(record, envelope, topic)
            if mismatch is not None:
                return record, None, mismatch
        return record, envelope, None

    async def _handle_batch_once(
        self,
        decoded: list[tuple[ConsumerRecord[Any, Any], Envelope[Any] | None, str | None]],
        *,
        isolate: bool,
    ) -> list[Outcome]:
        """One transaction for the batch. Fast path (isolate=False): the inbox rows of the whole
        batch in one statement, runs of same-type events to their handler, no savepoints; a
        failing handler aborts it with _IsolateRecords. Isolated path: each record's inbox row
        and effects in a savepoint."""
        outcomes: list[Outcome | None] = [None] * len(decoded)
        async with self.pool.acquire() as conn, conn.transaction():
            fresh = set() if isolate else await self._record_in_inbox(conn, decoded)
            await self._lock_batch(conn, decoded, None if isolate else fresh, isolate=isolate)
            run: list[int] = []  # indexes of consecutive fresh events of one type
            for index, (record, envelope, invalid) in enumerate(decoded):
                if run and (
                    envelope is None
                    or envelope.id not in fresh
                    or envelope.type != decoded[run[0]][1].type  # type: ignore[union-attr]
                ):
                    await self._handle_run(conn, decoded, run, outcomes)
                    run = []
                if invalid is not None:
                    with self._span(record) as span:
                        outcome = await self._dead_letter(conn, record, invalid)
                        span.set_attribute("pollinate.outcome", outcome.value)
                    outcomes[index] = outcome
                elif envelope is None:
                    outcomes[index] = Outcome.IGNORED
                elif isolate:
                    with self._span(record) as span:
                        outcome = await self._handle_one(conn, record, envelope)
                        span.set_attribute("pollinate.outcome", outcome.value)
                    outcomes[index] = outcome
                elif envelope.id not in fresh:
                    outcomes[index] = Outcome.DUPLICATE
                else:
                    fresh.discard(envelope.id)  # the same event twice in one batch: once
                    run.append(index)
            if run:
                await self._handle_run(conn, decoded, run, outcomes)
        assert all(outcome is not None for outcome in outcomes)
        return [outcome for outcome in outcomes if outcome is not None]

    async def _lock_batch(
        self,
        conn: Connection,
        decoded: list[tuple[ConsumerRecord[Any, Any], Envelope[Any] | None, str | None]],
        fresh: set[uuid.UUID] | None,
        *,
        isolate: bool,
    ) -> None:
        if self._batch_locks is None:
            return
        # A duplicate is skipped: only first-seen events need locks (None: not known yet).
        valid = [e for _, e, _ in decoded if e is not None and (fresh is None or e.id in fresh)]
        locks, provisions = self._batch_locks, self.provisions
        try:
            await take_batch_locks(
                conn, locks, provisions, valid, isolating=isolate, consumer=self.group_id
            )
        except LocksRefused as refused:
            raise _IsolateRecords() from refused

    async def _handle_run(
        self,
        conn: Connection,
        decoded: list[tuple[ConsumerRecord[Any, Any], Envelope[Any] | None, str | None]],
        run: list[int],
        outcomes: list[Outcome | None],
    ) -> None:
        """Fast path: hand a run of first-seen events of one type to its route, each event with
        its own processing span (the parent of what it causes)."""
        records = [decoded[index][0] for index in run]
        envelopes = [decoded[index][1] for index in run]
        assert all(envelope is not None for envelope in envelopes)
        route = self._routes[envelopes[0].type]  # type: ignore[union-attr]
        spans = [self._start_span(record) for record in records]
        context = HandlerContext(
            conn,
            self.outbox,
            records[0].topic,
            records[0].partition,
            records[0].offset,
            provisions=self.provisions,
            consumer=self.group_id,
            dead_letter_topic=self.dead_letter_topic.name,
        )
        for envelope, span in zip(envelopes, spans, strict=True):
            traceparent = traceparent_of(span)
            if traceparent and envelope is not None:
                context.traceparents[envelope.id] = traceparent
        try:
            if route.batch_handler is None:
                # One event at a time: its span is current and its ingestion time is the work
                # in progress, so what it emits continues its trace and carries that time.
                for envelope, span in zip(envelopes, spans, strict=True):
                    assert envelope is not None
                    with (
                        trace.use_span(span, end_on_exit=False),
                        ingestion(ingested_at_of(envelope)),
                    ):
                        await route.run(context, [envelope])
            else:
                await route.run(context, envelopes)  # type: ignore[arg-type]
        except BaseException as error:
            for span in spans:
                span.end()
            if isinstance(error, TRANSIENT_ERRORS) or not isinstance(error, Exception):
                raise
            raise _IsolateRecords() from error
        for index, span in zip(run, spans, strict=True):
            span.set_attribute("pollinate.outcome", Outcome.PROCESSED.value)
            span.end()
            outcomes[index] = Outcome.PROCESSED

    async def _record_in_inbox(
        self,
        conn: Connection,
        decoded: list[tuple[ConsumerRecord[Any, Any], Envelope[Any] | None, str | None]],
    ) -> set[uuid.UUID]:
        """Insert the batch's inbox rows at once; returns the event ids seen for the first time."""
        rows = [(record, envelope) for record, envelope, _ in decoded if envelope is not None]
        if not rows:
            return set()
        inserted = await conn.fetch(
            """
            INSERT INTO inbox (consumer, event_id, event_type, topic, kafka_partition, kafka_offset)
            SELECT $1, e.id, e.type, e.topic, e.part, e.off
            FROM unnest($2::uuid[], $3::text[], $4::text[], $5::int[], $6::bigint[])
                AS e(id, type, topic, part, off)
            ON CONFLICT (consumer, event_id) DO NOTHING
            RETURNING event_id
            """,
            self.group_id,
            [envelope.id for _, envelope in rows],
            [envelope.type for _, envelope in rows],
            [record.topic for record, _ in rows],
            [record.partition for record, _ in rows],
            [record.offset for record, _ in rows],
        )
        return {row["event_id"] for row in inserted}

    def _span(self, record: ConsumerRecord[Any, Any]) -> Any:
        """The record's processing span, made current for the duration of a `with`."""
        return trace.use_span(self._start_span(record), end_on_exit=True)

    def _start_span(self, record: ConsumerRecord[Any, Any]) -> trace.Span:
        return self._tracer.start_span(
            f"consume {record.topic}",
            context=context_from_traceparent(header_text(record.headers, "traceparent")),
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": record.topic,
                "messaging.kafka.partition": record.partition,
                "messaging.kafka.offset": record.offset,
                "messaging.consumer.group.name": self.group_id,
                "pollinate.service": self.service,
            },
        )

    async def _handle_one(
        self, conn: Connection, record: ConsumerRecord[Any, Any], envelope: Envelope[Any]
    ) -> Outcome:
        route = self._routes[envelope.type]
        try:
            # A savepoint: the inbox row and the handler's effects stand or fall together.
            async with conn.transaction():
                first_time = await conn.fetchval(
                    """
                    INSERT INTO inbox
                        (consumer, event_id, event_type, topic, kafka_partition, kafka_offset)
                    VALUES ($1, $2, $3, $4, $5, $6)
                    ON CONFLICT (consumer, event_id) DO NOTHING
                    RETURNING true
                    """,
                    self.group_id,
                    envelope.id,
                    envelope.type,
                    record.topic,
                    record.partition,
                    record.offset,
                )
                if not first_time:
                    return Outcome.DUPLICATE
                context = HandlerContext(
                    conn,
                    self.outbox,
                    record.topic,
                    record.partition,
                    record.offset,
                    provisions=self.provisions,
                    consumer=self.group_id,
                    dead_letter_topic=self.dead_letter_topic.name,
                )
                span_traceparent = traceparent_of(trace.get_current_span())
                if span_traceparent:
                    context.traceparents[envelope.id] = span_traceparent
                with ingestion(ingested_at_of(envelope)):
                    await route.run(context, [envelope])
        except TRANSIENT_ERRORS:
            raise  # the whole batch is retried
        except InvalidEvent as error:
            return await self._dead_letter(conn, record, f"rejected by handler: {error}")
        except Exception as error:
            log.exception(
                "handler failed; dead-lettering",
                extra={"consumer": self.group_id, "event_id": str(envelope.id)},
            )
            return await self._dead_letter(conn, record, f"handler error {describe_failure(error)}")
        return Outcome.PROCESSED

    async def _dead_letter(
        self, conn: Connection, record: ConsumerRecord[Any, Any], reason: str
    ) -> Outcome:
        """Park the record, untouched, in the service's dead-letter topic with the reason.

        Written through the outbox in the batch's transaction: durable before the offset moves
        on. Its id is derived from the record's coordinates, so a redelivered poison record is
        parked once. No inbox row is kept, so a replay after a fix is processed. Whatever the
        record carries, the letter is written (shared/dead_lettering.py).
        """
        await park_record(
            self.outbox,
            conn,
            record,
            reason,
            consumer=self.group_id,
            dead_letter_topic=self.dead_letter_topic.name,
        )
        return Outcome.DEAD_LETTERED
