"""Prometheus exposition of one service process (`GET /metrics`, the Prometheus text format),
from the Prometheus client library.

Two kinds of figures:
- instruments the process updates as it works, kept in the service's own registry: HTTP
  requests by route template, method and status with their latency; consumer batch durations;
  the outbox relay's lag from a row's commit to Kafka's acknowledgement; process and GC figures;
- a snapshot read at scrape time (`Scrape`): per consumer group the records by outcome (dead
  letters included) and transient failures, the lag per partition, the outbox backlog, parked
  rows and published total, and whether the database answered; per consumer group also the
  batches that failed for good and whether its partitions are stopped on one now. Reading it needs the database and
  Kafka; what cannot be read is left out of that scrape (with `pollinate_scrape_ok` 0 for that
  part), so /metrics answers while a dependency is down, which is when it matters most.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Relay lag and batch durations are milliseconds to seconds; HTTP the same.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class ConsumerFigures:
    """One consumer group's figures at scrape time."""

    outcomes: Mapping[str, int]
    transient_failures: int
    # topic -> partition -> lag; None: Kafka did not answer this scrape
    lag: Mapping[str, Mapping[int, int]] | None
    # Delivered batches that failed for good (Kafka delivers them again), and where the last
    # one stopped while none has succeeded since (None: the group moves).
    failed_batches: int = 0
    stalled_at: str | None = None


@dataclass(frozen=True)
class GaugeReading:
    """One of a service's own gauges as a scrape read it: (labels, value) samples."""

    name: str
    description: str
    labels: tuple[str, ...] = ()
    samples: tuple[tuple[tuple[str, ...], float], ...] = ()

    def family(self) -> Metric:
        family = GaugeMetricFamily(self.name, self.description, labels=list(self.labels))
        for values, value in self.samples:
            family.add_metric(list(values), value)
        return family


@dataclass
class Scrape:
    """What a scrape read from the database and Kafka (None: that part did not answer)."""

    database_up: bool = False
    outbox_backlog: int | None = None
    outbox_parked: int | None = None
    outbox_published_total: int = 0
    consumers: dict[str, ConsumerFigures] = field(default_factory=dict)
    # The service's own gauges (e.g. notifications' webhook backlog); one that did not answer
    # is left out of this scrape.
    gauges: list[GaugeReading] = field(default_factory=list)

    def families(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("pollinate_database_up", "1 when the database answered this scrape")
        up.add_metric([], 1 if self.database_up else 0)
        yield up
        if self.outbox_backlog is not None and self.outbox_parked is not None:
            backlog = GaugeMetricFamily(
                "pollinate_outbox_backlog", "outbox rows waiting to be published (not parked)"
            )
            backlog.add_metric([], self.outbox_backlog)
            yield backlog
            parked = GaugeMetricFamily(
                "pollinate_outbox_parked",
                "outbox rows never sendable (Kafka refused them for good, or the stored value does "
                "not unpack), kept for an operator",
            )
            parked.add_metric([], self.outbox_parked)
            yield parked
        published = CounterMetricFamily(
            "pollinate_outbox_published", "outbox rows this process published to Kafka"
        )
        published.add_metric([], self.outbox_published_total)
        yield published
        yield from self._consumer_families()
        yield from (gauge.family() for gauge in self.gauges)

    def _consumer_families(self) -> Iterator[Metric]:
        records = CounterMetricFamily(
            "pollinate_consumer_records",
            "records a consumer group settled, by outcome (dead_lettered: sent to the DLQ)",
            labels=["group", "outcome"],
        )
        transient = CounterMetricFamily(
            "pollinate_consumer_transient_failures",
            "batches that failed for a reason that may pass (retried)",
            labels=["group"],
        )
        lag = GaugeMetricFamily(
            "pollinate_consumer_lag",
            "records not yet committed by the group (end offset - committed offset)",
            labels=["group", "topic", "partition"],
        )
        lag_read = GaugeMetricFamily(
            "pollinate_consumer_lag_read",
            "1 when Kafka answered the group's lag this scrape",
            labels=["group"],
        )
        failed = CounterMetricFamily(
            "pollinate_consumer_failed_batches",
            "batches that failed for good, not even dead-lettering settled them (Kafka "
            "delivers them again: their partitions stop until it is fixed)",
            labels=["group"],
        )
        stalled = GaugeMetricFamily(
            "pollinate_consumer_stalled",
            "1 while the group's last batch failed for good and none has succeeded since",
            labels=["group"],
        )
        for group, figures in sorted(self.consumers.items()):
            for outcome, count in sorted(figures.outcomes.items()):
                records.add_metric([group, outcome], count)
            transient.add_metric([group], figures.transient_failures)
            failed.add_metric([group], figures.failed_batches)
            stalled.add_metric([group], 0 if figures.stalled_at is None else 1)
            lag_read.add_metric([group], 0 if figures.lag is None else 1)
            for topic, partitions in sorted((figures.lag or {}).items()):
                for partition, behind in sorted(partitions.items()):
                    lag.add_metric([group, topic, str(partition)], behind)
        yield from (records, transient, lag, lag_read, failed, stalled)


class _ScrapeCollector(Collector):
    """Yields the families of the scrape being rendered (nothing between scrapes)."""

    def __init__(self) -> None:
        self.current: Iterable[Metric] = ()

    def collect(self) -> Iterable[Metric]:
        return list(self.current)


class ServiceMetrics:
    """The instruments of one service process, in a registry of its own (several services
    run in one test process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        self.http_requests = Counter(
            "pollinate_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "pollinate_http_request_duration_seconds",
            "time to answer an HTTP request, by route template and method",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "pollinate_consumer_batch_duration_seconds",
            "time to process one batch of records, commit included",
            ["group"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.relay_lag_seconds = Histogram(
            "pollinate_outbox_relay_lag_seconds",
            "from an outbox row's commit to Kafka acknowledging it",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._scrape = _ScrapeCollector()
        self.registry.register(self._scrape)

    def render(self, scrape: Scrape) -> bytes:
        """The exposition text of the instruments and `scrape` (no await inside: two scrapes
        never see each other's snapshot)."""
        self._scrape.current = list(scrape.families())
        try:
            return generate_latest(self.registry)
        finally:
            self._scrape.current = ()


# The methods a label may name; any other is `other`. The HTTP parser passes any token as a
# method, so a label taken from the request let an anonymous caller add series at will (found
# in review: 2,000 requests with invented 10 kB methods made /metrics 383 MB).
_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)


def method_label(method: object) -> str:
    """A request's method as a metric label: a standard method, or `other`."""
    return method if isinstance(method, str) and method in _METHODS else "other"


class HttpMetrics:
    """ASGI middleware counting and timing every HTTP request by its route template (never the
    raw path: an id in a path would make a series per id) and its method (a standard one, or
    `other`); a path no route matched is `unmatched`."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception that escapes every handler is answered 500 by the server

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = method_label(scope.get("method"))
            self.metrics.http_requests.labels(route, method, str(status)).inc()
            self.metrics.http_seconds.labels(route, method).observe(time.perf_counter() - started)
