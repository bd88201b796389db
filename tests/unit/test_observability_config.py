"""The committed alert rules and Grafana dashboard (deploy/observability) are valid PromQL (parsed
by promql-parser, a binding of the Rust PromQL parser: promtool's check without building all of
Prometheus) and speak of metrics the services really expose: every metric a query selects is in
a real /metrics rendering (the service's own registry and a scrape with a consumer group)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from services.notifications.views import WEBHOOK_GAUGES
from shared.metrics import ConsumerFigures, HttpMetrics, Scrape, ServiceMetrics
from shared.topics import SERVICES
from tests.support.infra import ROOT

OBSERVABILITY = ROOT / "deploy" / "observability"
RULES = OBSERVABILITY / "alerts.yaml"
DASHBOARD = OBSERVABILITY / "dashboard.json"


def exposed_names() -> set[str]:
    """Sample names of a /metrics rendering with every instrument used once."""
    metrics = ServiceMetrics()
    metrics.http_requests.labels("/health/ready", "GET", "200").inc()
    metrics.http_seconds.labels("/health/ready", "GET").observe(0.01)
    metrics.batch_seconds.labels("deals.crm-projection").observe(0.02)
    metrics.relay_lag_seconds.observe(0.03)
    scrape = Scrape(
        # A service's own gauges (notifications' webhook queue), with one sample each.
        gauges=[
            replace(gauge, samples=((tuple("x" for _ in gauge.labels), 1.0),))
            for gauge in WEBHOOK_GAUGES
        ],
        database_up=True,
        outbox_backlog=0,
        outbox_parked=0,
        consumers={
            "deals.crm-projection": ConsumerFigures(
                {"processed": 3, "dead_lettered": 1}, 0, {"crm.deals.v1": {0: 5}}
            )
        },
    )
    text = metrics.render(scrape).decode()
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


def queries() -> list[str]:
    rules = yaml.safe_load(RULES.read_text())
    found = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    found += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    return found


def metric_names(query: str) -> set[str]:
    """The metrics a query selects (raises ValueError if it is not PromQL)."""
    selected: set[str] = set()

    def visit(node: object) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            selected.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(query), visit)
    return selected


def test_every_query_names_only_metrics_the_services_expose() -> None:
    exposed = exposed_names()
    assert queries()
    for query in queries():
        unknown = metric_names(query) - exposed
        assert not unknown, f"{query!r} names {sorted(unknown)}"


def test_the_checks_can_fail() -> None:
    assert metric_names("sum by (job) (rate(pollinate_no_such_total[5m]))") - exposed_names() == {
        "pollinate_no_such_total"
    }
    with pytest.raises(ValueError, match="unclosed left parenthesis"):
        metric_names("sum by (job (rate(pollinate_outbox_backlog[5m]))")


# Gauges every instance reports for the whole group or database: adding them over instances
# counts each partition, or the one queue, once per instance.
SHARED_GAUGES = frozenset(
    {
        "pollinate_consumer_lag",
        "pollinate_consumer_stalled",
        "pollinate_outbox_backlog",
        "pollinate_outbox_parked",
        "pollinate_webhook_backlog",
        "pollinate_webhook_oldest_pending_seconds",
    }
)


def summed_shared_gauges(query: str) -> set[str]:
    """The shared gauges a query adds up over instances: a `sum` straight over the selector
    (or over a function of it, as `delta`), with no `max`/`min` between them."""
    found: set[str] = set()

    def inner_selectors(node: object) -> set[str]:
        names: set[str] = set()

        def visit(child: object) -> bool:
            if isinstance(child, promql_parser.AggregateExpr):
                return False  # its own aggregation decides
            if isinstance(child, promql_parser.VectorSelector) and child.name:
                names.add(child.name)
            return True

        promql_parser.walk(node, visit)
        return names

    def visit(node: object) -> bool:
        if isinstance(node, promql_parser.AggregateExpr) and str(node.op) == "sum":
            found.update(inner_selectors(node.expr) & SHARED_GAUGES)
        return True

    promql_parser.walk(promql_parser.parse(query), visit)
    return found


def test_shared_gauges_are_never_added_up_over_instances() -> None:
    """Found in review: the lag alert and panels summed every instance's report of the whole
    group, so with six replicas the 1,000-record alert fired at about 167."""
    assert summed_shared_gauges("sum by (group) (pollinate_consumer_lag)") == {
        "pollinate_consumer_lag"
    }
    assert not summed_shared_gauges(
        "sum by (group) (max by (group, topic, partition) (pollinate_consumer_lag))"
    )
    for query in queries():
        assert not summed_shared_gauges(query), query


def test_a_stalled_consumer_raises_an_alert() -> None:
    """Readiness stays up while a consumer is stalled (by design); a quiet group's stall never
    reaches the lag alert's threshold, so only this alert tells."""
    rules = yaml.safe_load(RULES.read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert any("pollinate_consumer_stalled" in metric_names(e) for e in exprs)


def test_every_rule_says_what_it_watches() -> None:
    rules = yaml.safe_load(RULES.read_text())
    names = [rule["alert"] for group in rules["groups"] for rule in group["rules"]]
    assert len(names) == len(set(names))
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert rule["annotations"]["summary"]


def compose_service(name: str) -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    service: dict[str, Any] = services[name]
    return service


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> repository path of a compose service's read-only file mounts."""
    pairs = (volume.removesuffix(":ro").split(":") for volume in service["volumes"])
    return {inside: outside.removeprefix("./") for outside, inside in pairs}


def test_compose_prometheus_scrapes_every_instance_of_every_service_and_loads_the_rules() -> None:
    prometheus = compose_service("prometheus")
    files = mounts(prometheus)
    config = yaml.safe_load((ROOT / files["/etc/prometheus/prometheus.yml"]).read_text())
    # The rule file Prometheus is told to load is the committed one the tests above check.
    assert [files[path] for path in config["rule_files"]] == ["deploy/observability/alerts.yaml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(SERVICES)
    for name, job in jobs.items():
        # A service's name resolves to all its instances on the compose network (scaled too),
        # on the port each instance serves /metrics on.
        assert job["dns_sd_configs"] == [{"names": [name], "type": "A", "port": 8000}]
        assert "127.0.0.1::8000" in compose_service(name)["ports"]
        assert job.get("metrics_path", "/metrics") == "/metrics"


def test_compose_grafana_shows_the_committed_dashboard_from_that_prometheus() -> None:
    grafana = compose_service("grafana")
    files = mounts(grafana)
    provisioning = ROOT / files["/etc/grafana/provisioning"]
    [source] = yaml.safe_load((provisioning / "datasources/prometheus.yaml").read_text())[
        "datasources"
    ]
    assert (source["type"], source["url"], source["isDefault"]) == (
        "prometheus",
        "http://prometheus:9090",
        True,
    )
    assert "127.0.0.1:9090:9090" in compose_service("prometheus")["ports"]
    [provider] = yaml.safe_load((provisioning / "dashboards/pollinate.yaml").read_text())[
        "providers"
    ]
    folder = provider["options"]["path"]
    dashboards = {inside: outside for inside, outside in files.items() if inside.startswith(folder)}
    assert list(dashboards.values()) == ["deploy/observability/dashboard.json"]
    # The dashboard asks for a Prometheus data source: the provisioned default answers.
    variables = json.loads(DASHBOARD.read_text())["templating"]["list"]
    assert {"name": "datasource", "type": "datasource", "query": "prometheus"}.items() <= next(
        v for v in variables if v["name"] == "datasource"
    ).items()


async def test_an_invented_method_adds_no_series() -> None:
    """Found in review: the HTTP parser passes any token as a method, and each invented one
    added permanent series to every scrape (2,000 of 10 kB made /metrics 383 MB)."""
    metrics = ServiceMetrics()

    async def answer(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 405, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def nothing() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def sent(message: Any) -> None:
        return None

    counted = HttpMetrics(answer, metrics)
    for method in ("GET", "ZZQ9183x", "X" * 10_000, "get"):
        await counted({"type": "http", "method": method, "path": "/"}, nothing, sent)
    text = metrics.render(
        Scrape(gauges=[], database_up=True, outbox_backlog=0, outbox_parked=0)
    ).decode()
    methods = {
        sample.labels["method"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if "method" in sample.labels
    }
    assert methods == {"GET", "other"}
