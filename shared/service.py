"""The composition of one service process: every service has exactly this shape.

A service declares a `ServiceDefinition`: its name, its migrations, its module-level HTTP
routers and a `wire` function that, once the platform is up, provides the service's own
configuration (`platform.provide`), declares its consumers and their handlers
(`platform.consumer`) and its periodic jobs (`platform.every`). `create_app` builds the FastAPI
app with the routers at once (so its OpenAPI document needs no infrastructure) and, when it
starts, wires it to Postgres (its own role and schema), the outbox relay and a FastStream Kafka
broker, with health, readiness and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI
from fastapi_offline import FastAPIOffline
from faststream.kafka import KafkaBroker
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.access import PartnerAccess, record_partner_states
from shared.clock import now
from shared.consumer import EventConsumer, HandlerContext
from shared.db import (
    PLATFORM_MIGRATIONS,
    Connection,
    Migration,
    Pool,
    apply_migrations,
    create_pool,
    load_migrations,
    require_migrated,
)
from shared.dead_letters import dead_letters
from shared.events import Envelope
from shared.events.partners import PartnerStateChanged
from shared.health import health
from shared.http import (
    ERROR_RESPONSES,
    SHUTDOWN_GRACE_SECONDS,
    BodyLimit,
    install_error_mapping,
)
from shared.identity import TokenVerifier
from shared.inbox import purge_inbox
from shared.kafka_client import KafkaConnection
from shared.lag import LagProbe
from shared.logging import configure_logging
from shared.metrics import GaugeReading, HttpMetrics, ServiceMetrics
from shared.outbox import Outbox, ingestion, make_producer
from shared.provisions import Provisions
from shared.rate_limits import RateLimits
from shared.relay import OutboxRelay
from shared.settings import ServiceSettings
from shared.topics import PARTNER_LIFECYCLE, Topic, ensure_topics, service_source, topics_of
from shared.tracing import configure_tracing

log = logging.getLogger(__name__)


@dataclass
class Platform:
    """The running plumbing a service's handlers and routes are given."""

    settings: ServiceSettings
    pool: Pool
    outbox: Outbox
    relay: OutboxRelay
    broker: KafkaBroker
    lag: LagProbe
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    consumers: list[EventConsumer] = field(default_factory=list)
    background_jobs: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    start_steps: list[Callable[[Connection], Awaitable[None]]] = field(default_factory=list)
    provisions: Provisions = field(default_factory=Provisions)
    # One dead-letter replay at a time in this process (shared/dead_letters.py).
    replays: asyncio.Lock = field(default_factory=asyncio.Lock)
    partner_access: PartnerAccess = field(default_factory=PartnerAccess)
    # The service's own gauges, read from its database at each /metrics scrape.
    gauges: list[Callable[[Connection], Awaitable[list[GaugeReading]]]] = field(
        default_factory=list
    )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A pooled connection inside a transaction, the unit of work of one write (its state
        and its outbox events commit together, or neither does)."""
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    def provide(self, value: object, *, as_type: type[Any] | None = None) -> None:
        """Hand a value (the service's policy, its config) to its routes (`Provided(T)`),
        handlers (`ctx.provided(T)`) and jobs, looked up by its type."""
        self.provisions.provide(value, as_type=as_type)

    def measure(self, read: Callable[[Connection], Awaitable[list[GaugeReading]]]) -> None:
        """Gauges of the service's own, read at each scrape (a failing read leaves them out)."""
        self.gauges.append(read)

    def on_start(self, step: Callable[[Connection], Awaitable[None]]) -> None:
        """Work done once at start, before any event or request is handled, on a connection of
        its own outside any transaction (the step opens its own): a failure stops the start."""
        self.start_steps.append(step)

    def background(self, job: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """A long-running task of the service, started with it and cancelled when it stops."""
        self.background_jobs.append(job)

    def every(
        self,
        seconds: float,
        job: Callable[[Platform], Coroutine[Any, Any, object]],
        *,
        name: str,
        first_run_after: float = 0.0,
    ) -> None:
        """A periodic job: `job(platform)` runs every `seconds` (the first run after
        `first_run_after`). A failed run is logged and the next one comes on time; a run that
        returns something truthy (what it changed) is logged with it. Events the job records
        without a cause are stamped with the run's start as their `ingested_at`."""

        async def forever() -> None:
            await asyncio.sleep(first_run_after)
            while True:
                started = now()
                try:
                    with ingestion(started):
                        outcome = await job(self)
                    if outcome:
                        log.info("%s run", name, extra={"job": name, "outcome": repr(outcome)})
                except Exception:
                    log.exception("%s run failed; retrying next period", name, extra={"job": name})
                await asyncio.sleep(seconds)

        self.background(forever)

    @property
    def schema(self) -> str:
        return self.settings.service_name

    def consumer(self, name: str, topics: list[Topic]) -> EventConsumer:
        """Declare a consumer group of this service (attached to the broker on start)."""
        consumer = EventConsumer(
            name=name,
            service=self.schema,
            topics=topics,
            pool=self.pool,
            outbox=self.outbox,
            max_attempts=self.settings.consumer_max_attempts,
            backoff_initial_seconds=self.settings.consumer_backoff_initial_seconds,
            backoff_max_seconds=self.settings.consumer_backoff_max_seconds,
            batch_size=self.settings.consumer_batch_size,
            batch_timeout_ms=self.settings.consumer_batch_timeout_ms,
            provisions=self.provisions,
        )
        consumer.attach(self.broker)
        batch_seconds = self.metrics.batch_seconds.labels(consumer.group_id)
        consumer.batch_observers.append(batch_seconds.observe)
        self.consumers.append(consumer)
        return consumer


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    migrations: Path
    # Called once the platform is up: provides the service's configuration, declares its
    # consumers and periodic jobs.
    wire: Callable[[Platform], None]
    # The service's module-level HTTP routers, included when the app is built.
    routers: tuple[APIRouter, ...] = ()
    # What the service's own settings lack for production (secrets only it uses), refused at
    # start with the platform's own (`ServiceSettings.refuse_local_defaults`).
    production_problems: Callable[[], list[str]] = list


async def _record_partner_access(
    ctx: HandlerContext, events: list[Envelope[PartnerStateChanged]]
) -> None:
    await record_partner_states(ctx.conn, [event.data for event in events])


async def _refresh_partner_access(platform: Platform) -> None:
    await platform.partner_access.refresh(platform.pool)


def _broker(kafka: KafkaConnection, schema: str) -> KafkaBroker:
    return KafkaBroker(
        kafka.hosts,
        security=kafka.faststream_security(),
        # Topics come from the registry (ensure_topics found them): a service's principal may
        # not create topics, so FastStream must not try when a subscriber starts.
        allow_auto_create_topics=False,
        client_id=schema,
        logger=logging.getLogger(f"{schema}.kafka"),
        # No dependency injection: the platform's one handler per subscriber takes the batch's
        # records as its argument (shared/consumer.py). With it, FastStream resolved the
        # handler's message in a worker thread: about 0.4 ms of CPU a batch.
        apply_types=False,
    )


def service_outbox(schema: str, settings: ServiceSettings) -> Outbox:
    """The service's outbox, as its settings say (the relay writes the headers of the events
    it records: `outbox.source` is the source of both)."""
    return Outbox(schema, source=service_source(schema), compress=settings.outbox_compression)


@asynccontextmanager
async def running_platform(
    definition: ServiceDefinition, settings: ServiceSettings, metrics: ServiceMetrics
) -> AsyncIterator[Platform]:
    schema = definition.name
    kafka = settings.kafka
    await ensure_topics(kafka, topics_of(schema))
    pool = await create_pool(
        settings.database_url,
        schema,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
    )
    # The runtime role cannot migrate (it only reads and writes rows): the schema's owner has.
    await require_migrated(pool, schema, migrations_of(definition))
    producer = make_producer(kafka, client_id=f"{schema}-relay")
    await producer.start()
    outbox = service_outbox(schema, settings)
    relay = OutboxRelay(
        pool,
        producer,
        schema,
        source=outbox.source,
        dsn=settings.database_url,
        batch_size=settings.relay_batch_size,
        fallback_poll_seconds=settings.relay_fallback_poll_seconds,
        retention_hours=settings.relay_retention_hours,
        stall_seconds=settings.relay_stall_seconds,
        new_producer=lambda: make_producer(kafka, client_id=f"{schema}-relay"),
    )
    broker = _broker(kafka, schema)
    lag = LagProbe(kafka, client_id=schema)
    await lag.start()
    relay.lag_observers.append(metrics.relay_lag_seconds.observe)
    platform = Platform(settings, pool, outbox, relay, broker, lag, metrics)
    definition.wire(platform)
    # Every service follows partner lifecycle decisions for access (shared/access.py).
    access = platform.consumer("partner-access", [PARTNER_LIFECYCLE])
    access.handles_batch(PartnerStateChanged)(_record_partner_access)
    await platform.partner_access.refresh(pool)
    platform.every(
        settings.partner_access_refresh_seconds, _refresh_partner_access, name="partner-access"
    )
    platform.every(OUTBOX_PURGE_EVERY_SECONDS, _purge_outbox, name="outbox-retention")
    platform.every(
        settings.inbox_purge_every_seconds,
        _purge_inbox,
        name="inbox-retention",
        first_run_after=settings.inbox_purge_every_seconds,
    )
    for step in platform.start_steps:
        async with pool.acquire() as conn:
            await step(conn)
    relay_task = asyncio.create_task(relay.run(), name=f"{schema}-outbox-relay")
    await broker.start()
    jobs = [asyncio.create_task(job()) for job in platform.background_jobs]
    log.info("service started", extra={"consumers": [c.group_id for c in platform.consumers]})
    try:
        yield platform
    finally:
        deadline = asyncio.get_running_loop().time() + settings.shutdown_seconds
        for job in jobs:
            job.cancel()
        await _within(deadline, "jobs", asyncio.gather(*jobs, return_exceptions=True))
        await _within(deadline, "consumers", broker.stop())
        relay.stop()
        await _within(deadline, "relay", _ended(relay_task))
        # The relay may have replaced the producer it was given.
        await _within(deadline, "relay producer", relay.producer.stop())
        await _within(deadline, "lag probe", lag.stop())
        await _within(deadline, "database pool", pool.close())
        log.info("service stopped")


async def _within(deadline: float, step: str, stopping: Awaitable[object]) -> None:
    """One step of stopping, given what is left of the shutdown's time. A step still waiting
    then (on an unreachable Kafka) is cancelled and not waited for: what it would have
    finished is redone by the next process, nothing lost or doubled (outbox rows not marked
    are published again, offsets not committed are read again, and the consumers' inboxes
    drop what they saw). A step that fails is logged and the next one still runs."""
    task = asyncio.ensure_future(stopping)
    remaining = max(deadline - asyncio.get_running_loop().time(), 0.1)
    # Not wait_for: it waits for the step to take its cancellation, which a client retrying
    # an unreachable broker may never do.
    done, _ = await asyncio.wait({task}, timeout=remaining)
    if not done:
        task.cancel()
        log.warning("stopping %s abandoned after the shutdown's time", step, extra={"step": step})
    elif not task.cancelled() and task.exception() is not None:
        log.error("stopping %s failed", step, exc_info=task.exception(), extra={"step": step})


async def _ended(task: asyncio.Task[None]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        await task


# Published outbox rows are kept RELAY_RETENTION_HOURS for audit. Expired ones are looked for
# every minute, so each purge is a minute of events, not ten.
OUTBOX_PURGE_EVERY_SECONDS = 60.0


async def _purge_outbox(platform: Platform) -> int:
    """Delete outbox rows published longer ago than the retention."""
    return await platform.relay.purge_published()


async def _purge_inbox(platform: Platform) -> int:
    """Forget processed event ids older than the topics' retention (they cannot come again)."""
    horizon = now() - timedelta(hours=platform.settings.inbox_retention_hours)
    return await purge_inbox(platform.pool, horizon)


class IngestionStamp:
    """What an HTTP request records without a cause entered the platform when the request
    arrived (a plain ASGI middleware: no task or buffering added to the request path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with ingestion(now()):
            await self.app(scope, receive, send)


def create_app(
    definition: ServiceDefinition, settings: ServiceSettings, *, start: bool = True
) -> FastAPI:
    """The service's app. With `start=False` nothing is configured or connected: the app only
    describes itself (its OpenAPI document is built without Kafka or Postgres)."""
    if start:
        configure_logging(settings.service_name, settings.log_level, settings.log_format)
        configure_tracing(settings.service_name, settings.trace_exporter)
        if settings.development_mode:
            log.warning("development mode: the committed local default secrets are accepted")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running_platform(definition, settings, app.state.metrics) as platform:
            app.state.platform = platform
            # What start-up allocated lives as long as the process: keep it out of the
            # collector's full passes, which otherwise stall the event loop now and then.
            gc.freeze()
            yield

    # /docs and /redoc serve Swagger UI's and ReDoc's assets from the service itself: a machine
    # without internet (or behind a strict proxy) still renders them.
    app = FastAPIOffline(
        title=f"Pollinate {definition.name}",
        version="1",
        lifespan=lifespan if start else None,
        swagger_ui_parameters={"persistAuthorization": True},
        responses=ERROR_RESPONSES,
        # A path that only matches without its trailing slash (a parameter ending in an encoded
        # "/") is a 404, not an undocumented 307 to another URL.
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.rate_limits = RateLimits(settings)
    app.state.metrics = ServiceMetrics()
    app.state.token_verifier = TokenVerifier.from_json(
        definition.name, settings.token_verification_keys
    )
    install_error_mapping(app)
    # Every service: health and metrics, and its dead letters for the admins (list, replay).
    for router in (health, dead_letters, *definition.routers):
        app.include_router(router)
    app.add_middleware(IngestionStamp)
    app.add_middleware(HttpMetrics, metrics=app.state.metrics)
    # Outermost: an oversized body is refused before anything else runs.
    app.add_middleware(BodyLimit, max_bytes=settings.http_max_body_bytes)

    return app


def migrations_of(definition: ServiceDefinition) -> list[Migration]:
    """The platform's migrations (outbox, inbox) then the service's own, in order."""
    return load_migrations("platform", PLATFORM_MIGRATIONS) + load_migrations(
        definition.name, definition.migrations
    )


async def migrate(definition: ServiceDefinition, database_url: str) -> list[str]:
    """Apply the service's pending migrations as the schema's owner (`database_url`)."""
    pool = await create_pool(database_url, definition.name, max_size=1)
    try:
        return await apply_migrations(pool, definition.name, migrations_of(definition))
    finally:
        await pool.close()


def run(definition: ServiceDefinition) -> None:
    """`python -m services.<name>` serves; `python -m services.<name> migrate` applies the
    pending migrations as the schema's owner (MIGRATION_DATABASE_URL) and exits."""
    settings = ServiceSettings(service_name=definition.name)
    if sys.argv[1:] == ["migrate"]:
        settings.refuse_local_defaults(migrating=True)
        configure_logging(settings.service_name, settings.log_level, settings.log_format)
        applied = asyncio.run(migrate(definition, settings.migration_database_url))
        print(f"{definition.name}: {len(applied)} migration(s) applied", file=sys.stderr)
        return
    if sys.argv[1:]:
        raise SystemExit(f"usage: python -m services.{definition.name} [migrate]")
    settings.refuse_local_defaults(also=definition.production_problems())
    app = create_app(definition, settings)
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        # A long-lived response (a live notification stream) would otherwise hold a stopping
        # process forever; its client reconnects elsewhere and resumes where it was.
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
