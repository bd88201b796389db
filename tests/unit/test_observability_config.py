"""The committed alert rules and Grafana dashboard (deploy/observability) speak of metrics the
services really expose: every metric a query names is in a real /metrics rendering (the
service's own registry and a scrape with a consumer group), and promtool accepts the rules
where it is built."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from shared.metrics import ConsumerFigures, Scrape, ServiceMetrics
from tests.support.infra import ROOT, missing_capability

OBSERVABILITY = ROOT / "deploy" / "observability"
RULES = OBSERVABILITY / "alerts.yaml"
DASHBOARD = OBSERVABILITY / "dashboard.json"
# PromQL words that look like metric names.
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "by", "and", "or", "unless", "rate", "increase", "delta",
    "deriv", "histogram_quantile", "le", "on", "ignoring", "without", "count",
}  # fmt: skip


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
    without_strings = re.sub(r'"[^"]*"', "", query)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_strings)
    without_labels = re.sub(r"\{[^}]*\}", "", without_ranges)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_labels))
    grouping = set()
    for labels in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", without_labels):
        grouping |= {label.strip() for label in labels.split(",")}
    return words - PROMQL_WORDS - grouping


def test_every_query_names_only_metrics_the_services_expose() -> None:
    exposed = exposed_names()
    assert queries()
    for query in queries():
        unknown = metric_names(query) - exposed
        assert not unknown, f"{query!r} names {sorted(unknown)}"


def test_the_check_can_fail() -> None:
    assert metric_names("sum by (job) (rate(pollinate_no_such_total[5m]))") - exposed_names() == {
        "pollinate_no_such_total"
    }


def test_every_rule_says_what_it_watches() -> None:
    rules = yaml.safe_load(RULES.read_text())
    names = [rule["alert"] for group in rules["groups"] for rule in group["rules"]]
    assert len(names) == len(set(names))
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert rule["annotations"]["summary"]


def promtool() -> str:
    built = ROOT / ".work" / "tools" / "bin" / "promtool"
    if built.exists():
        return str(built)
    found = shutil.which("promtool")
    if found is None:
        missing_capability("promtool is not installed (deploy/test-tools.sh builds it)")
    return found


@pytest.mark.parametrize("rules", [RULES])
def test_promtool_accepts_the_rules(rules: Path) -> None:
    answer = subprocess.run(
        [promtool(), "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert answer.returncode == 0, answer.stdout + answer.stderr
