"""The outbox relay: publishes committed outbox rows to Kafka, then marks them published.

Crash anywhere and nothing is lost: an event committed but not published is published when a
relay next runs; an event published but not yet marked is published again, and the consumers'
inbox drops the duplicate (same CloudEvents id).

Order: one relay at a time publishes (the leader: it holds a session-level advisory lock on a
connection of its own), always in `position` order, with an idempotent producer; so events of one
aggregate (one Kafka key, one partition) reach Kafka in the order they were committed. Any number
of relay instances may run; the others are hot standbys that try the lock at each fallback poll
and take over once the leader's session ends: at once when its process dies (its socket closes),
and after `lead_idle_seconds` when its host, its network or its event loop does (the server ends
a session left idle that long; a live leader's never is: it reads the outbox at least every
fallback poll, and keeps the session busy while Kafka takes long to acknowledge).

Holding the lock for the session, not a transaction, makes a batch two round trips (read the
rows; mark them) instead of five (BEGIN, lock, read, mark, COMMIT); a relay shares its
service's event loop, and under load each round trip waits behind the consumers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from murmurhash2 import murmurhash2

from shared import outbox_codec
from shared.db import Pool, advisory_key, connect_alone, delete_in_batches
from shared.events import CLOUDEVENTS_CONTENT_TYPE
from shared.outbox import notify_channel
from shared.outbox_codec import UnreadableValue

log = logging.getLogger(__name__)

# Rows these say can never be sent (Kafka refuses them for good, or the stored value does not
# unpack): sending the row again can never succeed, so it is parked with the reason instead of
# being retried forever in front of every later row.
PERMANENT_SEND_ERRORS: tuple[type[BaseException], ...] = (
    UnreadableValue,  # a stored value that does not unpack: never sendable
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    InvalidTopicError,
    CorruptRecordException,
)


@dataclass(frozen=True)
class Settled:
    """What one relay batch settled, in position order: rows Kafka acknowledged and rows
    parked for a permanent reason. A transient failure ends the settled prefix: that row and
    every row after it stay unpublished and are sent again, in order, next time."""

    published: list[int]
    parked: list[tuple[int, str]]

    @property
    def count(self) -> int:
        return len(self.published) + len(self.parked)


class RelayStopped(Exception):
    """The relay was stopped while a batch waited for Kafka's acknowledgements."""


_CONTENT_TYPE_HEADER = ("content-type", CLOUDEVENTS_CONTENT_TYPE.encode())

# The queue's first `$1` rows by position (shared migration 0013), each with its entry and its
# outbox row. An entry holds its rows in order and is keyed by its lowest position; the entries
# of statements that ran at once interleave, but the `$1` lowest positions of the first `$1`
# entries are all at most the last one's key, below every entry not read: none is overtaken.
# `waiting`: the row is still to be sent (not published by an older relay, parked or deleted).
_READ_THE_QUEUE = """
    WITH entries AS (
        SELECT first_position, positions FROM outbox_pending ORDER BY first_position LIMIT $1),
    taken AS (
        SELECT e.first_position AS entry, q.position
        FROM entries e, unnest(e.positions) AS q(position)
        ORDER BY q.position LIMIT $1)
    SELECT t.entry, t.position,
           o.position IS NOT NULL AND o.published_at IS NULL AND o.parked_at IS NULL AS waiting,
           o.topic, o.message_key, o.event_id, o.event_type, o.value, o.value_codec, o.headers,
           o.traceparent
    FROM taken t LEFT JOIN outbox o ON o.position = t.position
    ORDER BY t.position
"""

# A row's place in the outcomes until its record batch is enqueued.
_NOT_YET: BaseException = RuntimeError("not enqueued")


# The seed of Kafka's murmur2 (the Java client's `Utils.murmur2`, which aiokafka and librdkafka's
# "murmur2" partitioner copy).
KAFKA_MURMUR2_SEED = 0x9747B28C


def kafka_partition(key: bytes, partitions: Sequence[int]) -> int:
    """The partition Kafka's default partitioner gives a key: murmur2 of its bytes, the sign bit
    cleared, modulo the partition count (`partitions` sorted). The same figure as aiokafka's
    `DefaultPartitioner`, from a compiled murmur2: 0.5 against 11.5 us a key on the 2-core
    machine, where aiokafka's pure-Python hash was 3% of the deals service's CPU."""
    return partitions[(murmurhash2(key, KAFKA_MURMUR2_SEED) & 0x7FFFFFFF) % len(partitions)]


class _Placement:
    """Where one relay batch's keys go: the partition the producer's default partitioner gives
    a key (murmur2 of the key over the topic's partitions, as every Kafka client does), found
    once per topic and key in the batch; the topic's metadata is awaited as send() would."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self.partitions: dict[str, list[int]] = {}
        self.placed: dict[tuple[str, bytes], int] = {}

    async def partition_of(self, topic: str, key: bytes) -> int:
        if (topic, key) not in self.placed:
            if topic not in self.partitions:
                self.partitions[topic] = sorted(await self.producer.partitions_for(topic))
            every = self.partitions[topic]
            self.placed[(topic, key)] = kafka_partition(key, every)
        return self.placed[(topic, key)]


class OutboxRelay:
    """Publishes committed outbox rows to Kafka, then marks them published."""

    def __init__(
        self,
        pool: Pool,
        producer: AIOKafkaProducer,
        schema: str,
        *,
        source: str,
        dsn: str,
        batch_size: int = 500,
        fallback_poll_seconds: float = 1.0,
        retention_hours: float = 24.0,
        stall_seconds: float = 60.0,
        lead_idle_seconds: float = 60.0,
        stop_grace_seconds: float = 5.0,
        new_producer: Callable[[], AIOKafkaProducer] | None = None,
    ) -> None:
        if lead_idle_seconds <= fallback_poll_seconds:
            # A leader idle between its polls would lose its session, and with it the lead.
            raise ValueError("lead_idle_seconds must exceed fallback_poll_seconds")
        self.pool = pool
        self.producer = producer
        # Makes a fresh producer after a failed delivery (see _renew_producer); without it the
        # relay keeps the one it was given (tests that drive the relay by hand).
        self._new_producer = new_producer
        self._producer_spent = False
        self.producers_renewed = 0
        self.schema = schema
        # The CloudEvents source of the outbox's events (`Outbox.source`), for their headers.
        self._source_header = ("ce_source", source.encode())
        self.batch_size = batch_size
        self.fallback_poll_seconds = fallback_poll_seconds
        self.retention_hours = retention_hours
        self.stall_seconds = stall_seconds
        self.lead_idle_seconds = lead_idle_seconds
        # How long a stopping relay still waits for its batch's acknowledgement.
        self.stop_grace_seconds = stop_grace_seconds
        # The relay's own connection, outside the pool (whose connections carry no session
        # state): as leader it holds the lock in its session and listens on it for the
        # outbox's wake-up calls; giving up the lead ends the session, and the lock with it.
        self.dsn = dsn
        self._conn: asyncpg.Connection[asyncpg.Record] | None = None
        self._leading = False
        self._lock_key = advisory_key(schema, "outbox-relay")
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self.published_total = 0
        # Called with each published row's lag in seconds, commit to acknowledgement (metrics);
        # known only where the server tracks commit timestamps.
        self.lag_observers: list[Callable[[float], None]] = []
        self.parked_total = 0
        self._batch_ok = False
        # The relay lock has been held elsewhere while rows waited longer than stall_seconds.
        # Another instance of the service holding it keeps the rows moving; anything else that
        # takes the lock (advisory locks are open to every role) shows here, and in health.
        self.stalled = False
        self._commit_timestamps: bool | None = None  # whether the server tracks them

    def wake(self, *_: object) -> None:
        self._wakeup.set()

    async def publish_pending(self) -> int | None:
        """Publish one batch. Returns how many queued rows it settled (published, parked, or
        found settled elsewhere), or None when another relay instance leads right now. Any
        failure gives up the lead (and the connection): the next batch starts afresh, or a
        standby takes over."""
        try:
            if self._producer_spent and self._new_producer is not None:
                await self._renew_producer()  # failing (Kafka unreachable) gives up the lead too
            conn = await self._connection()
            if not self._leading and not await self._take_lead(conn):
                return None
            queued = await conn.fetch(_READ_THE_QUEUE, self.batch_size)
            if not queued:
                return 0
            rows = [row for row in queued if row["waiting"]]
            # Queued rows settled elsewhere (published by a relay of the version before the
            # queue, during a rolling upgrade, or deleted by hand) only leave the queue.
            gone = [row["position"] for row in queued if not row["waiting"]]
            settled = await self._send_keeping_the_lead(conn, rows) if rows else Settled([], [])
            await self._settle(conn, settled, gone, {row["entry"] for row in queued})
        except BaseException:
            await self.close()
            raise
        self.published_total += len(settled.published)
        self.parked_total += len(settled.parked)
        return settled.count + len(gone)

    async def _connection(self) -> asyncpg.Connection[asyncpg.Record]:
        if self._conn is not None and self._conn.is_closed():
            await self.close()  # the session ended (server restart, terminated): so did the lead
        if self._conn is None:
            # A round trip unanswered for half the idle limit (Postgres gone silent, no reset
            # from the network) fails, and the lead is given up, instead of the kernel's
            # retransmissions holding the relay for many minutes.
            self._conn = await connect_alone(
                self.dsn, self.schema, "relay", command_timeout=self.lead_idle_seconds / 2
            )
        return self._conn

    async def _take_lead(self, conn: asyncpg.Connection[asyncpg.Record]) -> bool:
        """Try the lock, for the session, in one round trip with the session's settings: a
        lost mark only means rows are published again (consumers drop the repeats), so marks
        need not wait for their WAL flush; a session idle past lead_idle_seconds is ended by
        the server (a leader whose host died), and with it the lock.

        Every statement of the relay finds its rows by a key, and reads them so: the queue is
        mostly dead entries between two vacuums, and from its few live rows the planner
        reckons reading the whole table cheaper, which reads every dead version each time
        (390-540 buffers a read in the benchmark); through the key, an entry found dead once
        is marked so in the index and skipped after (25)."""
        self._leading = bool(
            await conn.fetchval(
                "SELECT pg_try_advisory_lock($1) FROM "
                "set_config('synchronous_commit', 'off', false) AS durability, "
                "set_config('idle_session_timeout', $2, false) AS idle_limit, "
                "set_config('enable_seqscan', 'off', false) AS by_key",
                self._lock_key,
                f"{int(self.lead_idle_seconds * 1000)}ms",
            )
        )
        if self._leading:
            self.stalled = False
            # Only the leader listens: a standby would be woken by every commit for nothing.
            # Rows committed before the listener are found by the read that follows.
            await conn.add_listener(notify_channel(self.schema), self.wake)
        else:
            await self._check_stall(conn)
        return self._leading

    async def _send_keeping_the_lead(
        self, conn: asyncpg.Connection[asyncpg.Record], rows: Sequence[asyncpg.Record]
    ) -> Settled:
        """_send, with the session kept busy meanwhile: aiokafka's idempotent producer retries
        a batch until it is acknowledged (a broker restart, too few in-sync replicas), and a
        session idle for lead_idle_seconds is ended by the server, which would hand the lead
        to a standby while this leader still waits to mark the rows."""
        sending = asyncio.ensure_future(self._send(rows))
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            while True:
                done, _ = await asyncio.wait(
                    {sending, stopping},
                    timeout=self.lead_idle_seconds / 3,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if stopping in done and sending not in done:
                    # Stopping: the acknowledgement is given a moment (a reachable Kafka
                    # answers in milliseconds, and the rows are then marked, not sent again
                    # by the next leader); past it (Kafka unreachable) the rows stay unmarked
                    # and the next leader publishes them.
                    done, _ = await asyncio.wait({sending}, timeout=self.stop_grace_seconds)
                    if not done:
                        raise RelayStopped
                if sending.done():
                    return sending.result()
                await conn.execute("SELECT 1")
        finally:
            stopping.cancel()
            if not sending.done():
                sending.cancel()  # the lead is lost or the relay stops
            elif not sending.cancelled():
                sending.exception()  # retrieved, whether raised above or superseded

    async def close(self) -> None:
        """Give up the lead: end the relay's session, which unlocks and stops listening. If
        ending it politely is interrupted, the socket is closed anyway (the server then ends
        the session as for a dead client)."""
        conn, self._conn, self._leading = self._conn, None, False
        if conn is not None:
            try:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=5)
            finally:
                if not conn.is_closed():
                    conn.terminate()

    @property
    def healthy(self) -> bool:
        return self._batch_ok and not self.stalled

    async def _check_stall(self, conn: asyncpg.Connection[asyncpg.Record]) -> None:
        waited = await conn.fetchval(
            """SELECT extract(epoch FROM clock_timestamp() - o.created_at)::float8
               FROM outbox_pending q JOIN outbox o ON o.position = q.positions[1]
               WHERE o.published_at IS NULL AND o.parked_at IS NULL
               ORDER BY q.first_position LIMIT 1"""
        )
        self.stalled = waited is not None and waited > self.stall_seconds
        if self.stalled:
            log.warning(
                "outbox relay lock held elsewhere while rows wait",
                extra={"schema": self.schema, "oldest_waiting_seconds": round(waited, 1)},
            )

    async def _send(self, rows: Sequence[asyncpg.Record]) -> Settled:
        """Send the rows in record batches of their own, one partition at a time (aiokafka's
        batch API: no per-message future or accumulator pass), then wait for every broker
        acknowledgement before the rows may be marked published."""
        outcomes, unsent = await self._enqueue(rows)
        batches = {id(o): o for o in outcomes if isinstance(o, asyncio.Future)}
        delivered = dict(
            zip(
                batches,
                await asyncio.gather(*batches.values(), return_exceptions=True),
                strict=True,
            )
        )
        if any(isinstance(result, BaseException) for result in delivered.values()):
            self._producer_spent = True
        settled = Settled([], [])
        for row, outcome in zip(rows, outcomes, strict=False):
            result = delivered[id(outcome)] if isinstance(outcome, asyncio.Future) else outcome
            if not isinstance(result, BaseException):
                settled.published.append(row["position"])
            elif isinstance(result, PERMANENT_SEND_ERRORS):
                reason = f"{type(result).__name__}: {result}"[:2000]
                log.error(
                    "outbox row unsendable for good; parked",
                    extra={"position": row["position"], "topic": row["topic"], "reason": reason},
                )
                settled.parked.append((row["position"], reason))
            elif settled.count == 0:
                raise result  # nothing settled: retry the batch with backoff
            else:
                return settled  # this row and the rest are sent again, in order, next time
        if unsent is not None and settled.count == 0:
            raise unsent
        return settled

    async def _enqueue(
        self, rows: Sequence[asyncpg.Record]
    ) -> tuple[list[asyncio.Future[Any] | BaseException], BaseException | None]:
        """Each row's outcome, in row order: the delivery future of the record batch that
        carries it, or why it was not sent; and the transient error that stopped the rows
        after the last outcome from being enqueued (e.g. no partition leader known yet).

        A row goes to the partition the default partitioner gives its key (what send() of a
        make_producer() producer would choose), and each partition's batches are filled and
        enqueued in row order, so per-key order is the outbox's."""
        outcomes: list[asyncio.Future[Any] | BaseException] = []
        filling: dict[tuple[str, int], list[tuple[Any, list[int]]]] = {}
        unsent: BaseException | None = None
        placed = _Placement(self.producer)
        for index, row in enumerate(rows):
            key = row["message_key"].encode()
            headers = self._headers(row)
            try:
                value = outbox_codec.unpack(row["value"], row["value_codec"])
                self._check_size(key, value, headers)
                partition = await placed.partition_of(row["topic"], key)
            except PERMANENT_SEND_ERRORS as refused:  # refused before sending (e.g. too large)
                outcomes.append(refused)
                continue
            except Exception as transient:
                unsent = transient
                break
            outcomes.append(_NOT_YET)
            batches = filling.setdefault((row["topic"], partition), [])
            record = {"timestamp": None, "key": key, "value": value, "headers": headers}
            if not batches or batches[-1][0].append(**record) is None:
                batch = self.producer.create_batch()
                batch.append(**record)  # a batch takes its first record whatever its size
                batches.append((batch, []))
            batches[-1][1].append(index)
        for (topic, partition), batches in filling.items():
            delivery: asyncio.Future[Any] | BaseException | None = None
            for batch, indexes in batches:
                if not isinstance(delivery, BaseException):
                    try:
                        delivery = await self.producer.send_batch(batch, topic, partition=partition)
                    except Exception as failed:  # e.g. metadata lost: no later batch of this
                        delivery = failed  # partition may overtake this one, so none is sent
                        # A producer whose sender died raises here for ever: replace it.
                        self._producer_spent = True
                for index in indexes:
                    outcomes[index] = delivery
        return outcomes, unsent

    def _headers(self, row: asyncpg.Record) -> list[tuple[str, bytes]]:
        """A record's Kafka headers: the row's own (a dead letter's origin and reason), or
        CloudEvents' binary-mode attributes made from its columns and the relay's source, with
        its trace. In the order the outbox's jsonb headers gave them before migration 0011
        (shorter keys first), so a record is the same bytes as then."""
        if row["headers"] is not None:
            return [(k, v.encode()) for k, v in json.loads(row["headers"]).items()]
        headers = [
            ("ce_id", str(row["event_id"]).encode()),
            ("ce_type", row["event_type"].encode()),
            self._source_header,
        ]
        if row["traceparent"] is not None:
            headers.append(("traceparent", row["traceparent"].encode()))
        headers.append(_CONTENT_TYPE_HEADER)
        return headers

    def _check_size(self, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        """The check send() makes before it enqueues a record."""
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
        if size > self.producer._max_request_size:
            raise MessageSizeTooLargeError(
                f"The message is {size} bytes when serialized which is larger than the "
                "maximum request size you have configured with the max_request_size "
                "configuration"
            )

    async def _renew_producer(self) -> None:
        """Replace the producer after a delivery failed. An idempotent aiokafka producer
        numbers each partition's batches once, when it sends them, and never takes a number
        back: a batch that then fails for good (expired while a cluster had too few in-sync
        replicas, refused by the broker) leaves a gap, and the broker answers every later batch
        on that partition OutOfOrderSequenceNumber, for ever. A fresh producer (a new producer
        id, sequences from zero) sends the unsettled rows again, in order; whatever the old one
        did deliver comes twice and the consumers' inbox drops it."""
        assert self._new_producer is not None
        fresh = self._new_producer()
        try:
            await fresh.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await fresh.stop()
            raise  # Kafka unreachable: the run loop retries with backoff
        spent, self.producer = self.producer, fresh
        self._producer_spent = False
        self.producers_renewed += 1
        log.warning("outbox relay replaced its producer after a failed delivery")
        # Its deliveries were awaited, unless a batch was cancelled mid-send (the lead lost):
        # stopping flushes those first, so nothing of the fresh one's overtakes them.
        with contextlib.suppress(Exception):
            await spent.stop()

    async def _settle(
        self,
        conn: asyncpg.Connection[asyncpg.Record],
        settled: Settled,
        gone: list[int],
        entries: set[int],
    ) -> None:
        """Mark what Kafka acknowledged published and park what it never will take, and take
        both (and `gone`) out of the queue's `entries` that held them, in one statement: an
        entry left empty is deleted, any other keeps the positions not settled yet, keyed by
        the lowest of them (the reader's order relies on it).

        published_at: after Kafka acknowledged (clock time, not the transaction's start).
        committed_at: when the row's own transaction committed (xmin is still the writer's
        here), if the server tracks commit timestamps; the two give the relay lag. No index
        of the outbox names either column, so the mark is a HOT update (shared migration
        0013): the row's new version on its own page, and no new index entry."""
        if self._commit_timestamps is None:
            self._commit_timestamps = bool(
                await conn.fetchval("SELECT current_setting('track_commit_timestamp') = 'on'")
            )
        committed = "pg_xact_commit_timestamp(xmin)" if self._commit_timestamps else "NULL"
        parked = [position for position, _ in settled.parked]
        lags = await conn.fetch(
            f"""WITH marked AS (
                    UPDATE outbox SET published_at = clock_timestamp(), committed_at = {committed}
                    WHERE position = ANY($1::bigint[])
                    RETURNING extract(epoch FROM published_at - committed_at)::float8 AS lag),
                parked AS (
                    UPDATE outbox SET parked_at = clock_timestamp(), park_reason = p.reason
                    FROM unnest($2::bigint[], $3::text[]) AS p(position, reason)
                    WHERE outbox.position = p.position),
                remaining AS (
                    SELECT first_position, ARRAY(
                        SELECT p FROM unnest(positions) AS p
                        WHERE p <> ALL($1::bigint[] || $2::bigint[] || $4::bigint[]) ORDER BY p
                    ) AS positions
                    FROM outbox_pending WHERE first_position = ANY($5::bigint[])),
                dequeued AS (
                    DELETE FROM outbox_pending q USING remaining r
                    WHERE q.first_position = r.first_position AND cardinality(r.positions) = 0),
                trimmed AS (
                    UPDATE outbox_pending q
                    SET first_position = r.positions[1], positions = r.positions
                    FROM remaining r
                    WHERE q.first_position = r.first_position AND cardinality(r.positions) > 0)
                SELECT lag FROM marked""",
            settled.published,
            parked,
            [reason for _, reason in settled.parked],
            gone,
            sorted(entries),
        )
        for row in lags:
            if row["lag"] is not None:
                for observe in self.lag_observers:
                    observe(row["lag"])

    async def purge_published(self, batch_size: int = 5_000) -> int:
        """Delete rows published longer ago than the retention (kept meanwhile for audit), a
        batch per transaction: one statement over all that expired held its row locks and
        wrote its WAL in one burst (at a service's start, a day of a benchmark's events).

        No index names published_at (the mark would not be HOT), so a batch is the oldest
        rows by position, parked ones left aside, and of those the ones that expired; the
        purge ends at the first batch with none. Rows are published in position order, so
        that is where an index on published_at would have ended it, without walking the
        rest; a row kept at the head (one committed late, so published after the rows
        behind it) does not end it early."""
        return await delete_in_batches(
            self.pool,
            """DELETE FROM outbox WHERE ctid = ANY(ARRAY(
                   SELECT ctid FROM (
                       SELECT ctid, published_at FROM outbox WHERE parked_at IS NULL
                       ORDER BY position LIMIT $2) AS oldest
                   WHERE published_at < now() - make_interval(secs => $1)))""",
            self.retention_hours * 3600,
            batch_size=batch_size,
            until_none=True,
        )

    async def run(self) -> None:
        """Run until stop(): publish whenever woken by NOTIFY, or by the fallback poll."""
        backoff = 0.1
        try:
            while not self._stopping.is_set():
                try:
                    self._wakeup.clear()
                    published = await self.publish_pending()
                    self._batch_ok = True
                    backoff = 0.1
                    if published == self.batch_size:
                        continue  # more is waiting
                    # A standby tries the lock at the poll, not on every commit's wake-up call.
                    awaited = self._stopping if published is None else self._wakeup
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(awaited.wait(), self.fallback_poll_seconds)
                except RelayStopped:
                    break
                except Exception as error:
                    # Kafka or Postgres unavailable: nothing was marked, so retry with capped
                    # backoff; the rows stay in the outbox until they are published.
                    self._batch_ok = False
                    log.warning(
                        "outbox relay batch failed; retrying",
                        extra={"error": repr(error), "retry_in": backoff},
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            await self.close()

    def stop(self) -> None:
        self._stopping.set()
        self._wakeup.set()
