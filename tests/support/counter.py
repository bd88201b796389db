"""A tiny service for the platform plumbing's own tests: a counter table, its event and an
idempotent consumer of it, on a scratch schema (outbox, relay and consumer under test)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from opentelemetry import trace
from pydantic import Field

from shared.consumer import EventConsumer, HandlerContext
from shared.db import Connection, Pool
from shared.events import Envelope, EventPayload, InvalidEvent, event_type
from shared.outbox import Outbox
from shared.relay import OutboxRelay
from shared.topics import Topic
from tests.support.infra import Infra, ScratchService

COUNTER_TABLE = """
CREATE TABLE IF NOT EXISTS counters (name text PRIMARY KEY, value bigint NOT NULL);
CREATE TABLE IF NOT EXISTS seen (aggregate text NOT NULL, seq int NOT NULL, trace_id text);
CREATE TABLE IF NOT EXISTS known_partners (partner_id text PRIMARY KEY);
"""


@event_type("test.counter_incremented.v1")
class CounterIncremented(EventPayload):
    counter: str
    by: int = Field(gt=0)
    seq: int = 0
    partner_id: str | None = None


@dataclass
class Components:
    infra: Infra
    service: ScratchService
    pool: Pool
    outbox: Outbox
    producer: AIOKafkaProducer
    # Every relay made here, closed with the fixture: a relay keeps a connection of its own
    # (and, leading, the lock) until closed.
    relays: list[OutboxRelay] = field(default_factory=list)

    def relay(
        self,
        kind: type[OutboxRelay] = OutboxRelay,
        producer: AIOKafkaProducer | None = None,
        **kwargs: object,
    ) -> OutboxRelay:
        """A relay (of `kind`, a test's subclass) on this scratch outbox, with the components'
        producer unless given one."""
        relay = kind(
            self.pool,
            producer or self.producer,
            self.service.schema,
            source=self.outbox.source,
            dsn=self.service.dsn,
            **kwargs,  # type: ignore[arg-type]
        )
        self.relays.append(relay)
        return relay

    async def publish_counters(self, conn: Connection, topic: Topic, count: int) -> None:
        """Counters c0 .. c<count - 1>, each incremented by 1 under its own name, in `conn`'s
        transaction."""
        for n in range(count):
            counter = CounterIncremented(counter=f"c{n}", by=1)
            await self.outbox.publish(conn, topic, counter, subject=f"c{n}")

    def consumer(self, name: str, topic: Topic) -> EventConsumer:
        """A consumer group of this scratch service on `topic`, retrying quickly."""
        return EventConsumer(
            name=name,
            service=self.service.schema,
            topics=[topic],
            pool=self.pool,
            outbox=self.outbox,
            backoff_initial_seconds=0.01,
        )


def counter_consumer(components: Components, topic: Topic) -> EventConsumer:
    consumer = components.consumer("counter", topic)

    @consumer.handles(CounterIncremented)
    async def increment(ctx: HandlerContext, event: Envelope[CounterIncremented]) -> None:
        partner = event.data.partner_id
        if partner is not None and not await ctx.conn.fetchval(
            "SELECT true FROM known_partners WHERE partner_id = $1", partner
        ):
            raise InvalidEvent(f"unknown partner {partner!r}")
        await ctx.conn.execute(
            """INSERT INTO counters VALUES ($1, $2)
               ON CONFLICT (name) DO UPDATE SET value = counters.value + EXCLUDED.value""",
            event.data.counter,
            event.data.by,
        )
        span = trace.get_current_span().get_span_context()
        await ctx.conn.execute(
            "INSERT INTO seen VALUES ($1, $2, $3)",
            event.subject,
            event.data.seq,
            format(span.trace_id, "032x"),
        )

    return consumer
