"""Health and metrics routes of every service.

- `/health/live`: the process answers.
- `/health/ready`: the service can take HTTP traffic, which needs its database and nothing
  else: with Kafka down, writes still commit (their events wait in the outbox), so a load
  balancer must keep the replica. Kafka, the outbox relay and the consumers are reported in
  `checks` (and in the metrics, where alerts watch them) without turning readiness off:
  `consumers` is false while a consumer's last batch failed for good (not even
  dead-lettering settled it, so Kafka delivers it again and its partitions stop there). A
  replica taken out of the load balancer, or restarted, would fail on the same record again,
  and stop answering HTTP requests that work; the metrics and the log say which record.
- `/metrics`: Prometheus text exposition (shared/metrics.py); `/metrics.json`: the same
  figures as JSON, for people and tests.
Both metrics routes answer while the database or Kafka is down: what could not be read is
left out (and said so), never a 500.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from fastapi import Request, Response
from pydantic import BaseModel, Field

from shared.db import Connection
from shared.http import api_router, started_platform
from shared.metrics import CONTENT_TYPE, ConsumerFigures, GaugeReading, Scrape, ServiceMetrics

if TYPE_CHECKING:
    from shared.service import Platform

log = logging.getLogger(__name__)
DATABASE_TIMEOUT_SECONDS = 2.0
LAG_TIMEOUT_SECONDS = 3.0

health = api_router(tags=["health"])


class Liveness(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str = Field(description="ready | not ready (started and database decide)")
    checks: dict[str, bool] = Field(description="started, database, kafka, outbox_relay")


class Metrics(BaseModel):
    """Empty until the service has started."""

    database_up: bool = False
    outbox_backlog: int | None = Field(
        default=None, description="outbox rows not yet published (None: database down)"
    )
    outbox_parked: int | None = Field(
        default=None, description="outbox rows never sendable, parked with the reason why"
    )
    consumer_lag: dict[str, object] = Field(
        default_factory=dict, description="per consumer group: lag per partition, or why not"
    )
    outbox_published_total: int | None = None
    consumers: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="per consumer group: outcomes and transient failures"
    )


@health.get("/health/live")
async def live() -> Liveness:
    return Liveness(status="alive")


@health.get(
    "/health/ready",
    responses={503: {"model": Readiness, "description": "not started, or the database is down"}},
)
async def ready(request: Request, response: Response) -> Readiness:
    platform = started_platform(request)
    checks: dict[str, bool] = {"started": platform is not None}
    deciding = ["started"]
    if platform is not None:
        checks["database"] = await _database_answers(platform)
        checks["kafka"] = await platform.broker.ping(timeout=2.0)
        checks["outbox_relay"] = platform.relay.healthy
        checks["consumers"] = all(c.stats.stalled_at is None for c in platform.consumers)
        deciding.append("database")
    ok = all(checks[name] for name in deciding)
    response.status_code = 200 if ok else 503
    return Readiness(status="ready" if ok else "not ready", checks=checks)


@health.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
)
async def prometheus_metrics(request: Request) -> Response:
    platform = started_platform(request)
    metrics: ServiceMetrics = request.app.state.metrics
    scrape = Scrape() if platform is None else await read_scrape(platform)
    return Response(metrics.render(scrape), media_type=CONTENT_TYPE)


@health.get("/metrics.json")
async def json_metrics(request: Request) -> Metrics:
    platform = started_platform(request)
    if platform is None:
        return Metrics()
    scrape = await read_scrape(platform)
    return Metrics(
        database_up=scrape.database_up,
        outbox_backlog=scrape.outbox_backlog,
        outbox_parked=scrape.outbox_parked,
        consumer_lag={
            group: (
                {"unavailable": "kafka did not answer"}
                if figures.lag is None
                else _flat_lag(figures.lag)
            )
            for group, figures in scrape.consumers.items()
        },
        outbox_published_total=scrape.outbox_published_total,
        consumers={
            group: {
                **figures.outcomes,
                "transient_failures": figures.transient_failures,
                # Batches that failed for good, and 1 while the group is stopped on one
                # (the log says where and why).
                "failed_batches": figures.failed_batches,
                "stalled": int(figures.stalled_at is not None),
            }
            for group, figures in scrape.consumers.items()
        },
    )


def _flat_lag(lag: Mapping[str, Mapping[int, int]]) -> dict[str, int]:
    flat = {
        f"{topic}:{partition}": behind
        for topic, partitions in lag.items()
        for partition, behind in partitions.items()
    }
    return {**flat, "total": sum(flat.values())}


async def _database_answers(platform: Platform) -> bool:
    try:
        answer = await asyncio.wait_for(
            platform.pool.fetchval("SELECT true"), DATABASE_TIMEOUT_SECONDS
        )
    except Exception:  # any failure to answer is "down", whatever the driver raised
        return False
    return answer is True


async def _pooled(
    platform: Platform, read: Callable[[Connection], Awaitable[list[GaugeReading]]]
) -> list[GaugeReading]:
    async with platform.pool.acquire() as conn:
        return await read(conn)


async def read_scrape(platform: Platform) -> Scrape:
    """The figures of one scrape; a dependency that does not answer leaves its part out."""
    scrape = Scrape(outbox_published_total=platform.relay.published_total)
    try:
        counts = await asyncio.wait_for(
            platform.pool.fetchrow(
                """SELECT (SELECT coalesce(sum(cardinality(positions)), 0) FROM outbox_pending)
                            AS backlog,
                          (SELECT count(*) FROM outbox WHERE parked_at IS NOT NULL) AS parked"""
            ),
            DATABASE_TIMEOUT_SECONDS,
        )
    except Exception as error:  # metrics must answer while the database does not
        log.debug("outbox counts unavailable: %r", error)
    else:
        if counts is not None:
            scrape.database_up = True
            scrape.outbox_backlog = int(counts["backlog"])
            scrape.outbox_parked = int(counts["parked"])
    for read in platform.gauges:
        try:
            readings = await asyncio.wait_for(_pooled(platform, read), DATABASE_TIMEOUT_SECONDS)
        except Exception as error:  # metrics must answer while the database does not
            log.debug("service gauges unavailable: %r", error)
        else:
            scrape.gauges.extend(readings)
    for consumer in platform.consumers:
        lag: dict[str, dict[int, int]] | None
        try:
            lag = await asyncio.wait_for(
                platform.lag.lag_by_partition(consumer.group_id, [t.name for t in consumer.topics]),
                LAG_TIMEOUT_SECONDS,
            )
        except Exception as error:  # metrics must answer while Kafka does not
            log.debug("lag of %s unavailable: %r", consumer.group_id, error)
            lag = None
        scrape.consumers[consumer.group_id] = ConsumerFigures(
            outcomes={o.value: n for o, n in consumer.stats.outcomes.items()},
            transient_failures=consumer.stats.transient_failures,
            lag=lag,
            failed_batches=consumer.stats.failed_batches,
            stalled_at=consumer.stats.stalled_at,
        )
    return scrape
