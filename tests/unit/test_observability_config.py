"""The committed alert rules and Grafana dashboard (deploy/observability) are valid PromQL (parsed
by promql-parser, a binding of the Rust PromQL parser: promtool's check without building all of
Prometheus) and speak of metrics the services really expose: every metric a query selects is in
a real /metrics rendering (the service's own registry and a scrape with a consumer group)."""

from __future__ import annotations

import json

import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from shared.metrics import ConsumerFigures, Scrape, ServiceMetrics
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


def test_every_rule_says_what_it_watches() -> None:
    rules = yaml.safe_load(RULES.read_text())
    names = [rule["alert"] for group in rules["groups"] for rule in group["rules"]]
    assert len(names) == len(set(names))
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert rule["annotations"]["summary"]
