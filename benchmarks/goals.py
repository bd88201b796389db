"""Issue 23's goals, checked against one run of the chain benchmark, and several runs side by
side. Each goal is computed from the run's own figures (its baseline measured in the same run):
met, not met, or not measured (quick mode has no 500 deals/s phase nor a million
registrations; a run that failed before a figure was measured has none)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def _phase(results: dict[str, Any], name: str) -> dict[str, Any]:
    phase: dict[str, Any] = results.get("chain", {}).get(name, {})
    return phase


def _p99_notification(name: str) -> Callable[[dict[str, Any]], float | None]:
    def figure(results: dict[str, Any]) -> float | None:
        value = _phase(results, name).get("ingestion_to_notification", {}).get("p99_ms")
        return None if value is None else float(value)

    return figure


def saturation_vs_postgres(results: dict[str, Any]) -> float | None:
    """End-to-end deals/s at saturation over the raw Postgres tx/s of the same run."""
    saturated = _phase(results, "saturation").get("end_to_end_deals_per_s")
    raw = results.get("baseline_postgres", {}).get("tx_per_s")
    if not saturated or not raw:
        return None
    return round(float(saturated) / float(raw), 4)


def cpu_ms_per_deal(results: dict[str, Any]) -> float | None:
    """CPU per deal at saturation, every part measured together (the services, Postgres,
    Kafka and the load generator, as the issue's 2.7 ms counted them)."""
    parts = _phase(results, "saturation").get("resources", {}).get("cpu_ms_per_deal")
    if not parts or any(ms is None for ms in parts.values()):
        return None
    return round(sum(float(ms) for ms in parts.values()), 3)


def wal_kb_per_deal(results: dict[str, Any]) -> float | None:
    value = _phase(results, "saturation").get("resources", {}).get("wal_kb_per_deal")
    return None if value is None else float(value)


def _conflict_p99(kind: str) -> Callable[[dict[str, Any]], float | None]:
    def figure(results: dict[str, Any]) -> float | None:
        row = results.get("conflict_check", {}).get("1000000")
        return None if not row else float(row[kind]["p99_ms"])

    return figure


@dataclass(frozen=True)
class Goal:
    name: str
    text: str
    figure: Callable[[dict[str, Any]], float | None]
    limit: float
    at_least: bool  # the figure must reach the limit (else stay at or under it)
    phase: str | None  # the chain phase it is measured in: a failed phase fails the goal

    def check(self, results: dict[str, Any]) -> dict[str, Any]:
        value = self.figure(results)
        failed = _phase(results, self.phase).get("failed") if self.phase else None
        if value is None:
            met: bool | None = False if failed else None
        elif failed:
            met = False  # a figure from a phase that did not take all its load
        else:
            met = value >= self.limit if self.at_least else value <= self.limit
        checked: dict[str, Any] = {"goal": self.text, "figure": value, "met": met}
        if failed:
            checked["failed"] = failed
        return checked


GOALS = (
    Goal(
        "saturation_vs_postgres",
        "saturation >= 0.35x raw Postgres tx/s",
        saturation_vs_postgres,
        0.35,
        True,
        "saturation",
    ),
    Goal(
        "p99_notification_100",
        "p99 ingestion -> notification at 100/s <= 50 ms",
        _p99_notification("offered_100"),
        50,
        False,
        "offered_100",
    ),
    Goal(
        "p99_notification_500",
        "p99 ingestion -> notification at 500/s <= 250 ms",
        _p99_notification("offered_500"),
        250,
        False,
        "offered_500",
    ),
    Goal(
        "cpu_ms_per_deal",
        "CPU per deal, all parts <= 1.8 ms",
        cpu_ms_per_deal,
        1.8,
        False,
        "saturation",
    ),
    Goal(
        "wal_kb_per_deal",
        "Postgres WAL per deal <= 20 kB",
        wal_kb_per_deal,
        20,
        False,
        "saturation",
    ),
    Goal(
        "conflict_exact_p99_1m",
        "conflict check exact p99 at 1M <= 2 ms",
        _conflict_p99("exact"),
        2,
        False,
        None,
    ),
    Goal(
        "conflict_fuzzy_p99_1m",
        "conflict check fuzzy p99 at 1M <= 5 ms",
        _conflict_p99("fuzzy"),
        5,
        False,
        None,
    ),
)


def evaluate(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each goal of issue 23 for one run: its figure and whether it was met (None: not
    measured in this run)."""
    return {goal.name: goal.check(results) for goal in GOALS}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1 else f"{value:.1f}"
    return str(value)


def _posts(results: dict[str, Any]) -> str:
    """A run's failed attempts and posts given up, over every phase."""
    retries = given_up = 0
    for phase in results.get("chain", {}).values():
        retries += phase.get("posts", {}).get("retries", 0)
        given_up += phase.get("posts", {}).get("given_up", 0)
    return f"{retries}/{given_up}"


ROWS: tuple[tuple[str, Callable[[dict[str, Any]], Any]], ...] = (
    ("p99 notification @100/s ms", _p99_notification("offered_100")),
    ("p99 notification @500/s ms", _p99_notification("offered_500")),
    (
        "saturation deals/s",
        lambda r: _phase(r, "saturation").get("end_to_end_deals_per_s"),
    ),
    ("raw Postgres tx/s", lambda r: r.get("baseline_postgres", {}).get("tx_per_s")),
    ("ratio (deals/s / raw tx/s)", saturation_vs_postgres),
    ("CPU ms/deal, all parts", cpu_ms_per_deal),
    ("WAL kB/deal", wal_kb_per_deal),
    ("python loop ms", lambda r: r.get("yardsticks", {}).get("python_loop", {}).get("ms")),
    (
        "postgres fsyncs/s",
        lambda r: r.get("yardsticks", {}).get("postgres_fsync", {}).get("fsyncs_per_s"),
    ),
    ("retries/posts given up", _posts),
)


def tally(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each goal: in how many of `runs` it was met, and in how many it was not measured."""
    counted: dict[str, dict[str, Any]] = {}
    for goal in GOALS:
        checks = [goal.check(r)["met"] for r in runs]
        counted[goal.name] = {
            "goal": goal.text,
            "met": sum(1 for met in checks if met),
            "runs": len(runs),
            "not_measured": sum(1 for met in checks if met is None),
        }
    return counted


def side_by_side(runs: list[dict[str, Any]]) -> str:
    """The runs' headline figures in columns, then each goal met in how many of the runs."""
    width = 12
    head = f"{'run':30}" + "".join(f"{n + 1:>{width}}" for n in range(len(runs)))
    lines = [head]
    for label, figure in ROWS:
        lines.append(f"{label:30}" + "".join(f"{_cell(figure(r)):>{width}}" for r in runs))
    failed = [f"run {n + 1}: {r['failed']}" for n, r in enumerate(runs) if r.get("failed")]
    lines.extend(f"  FAILED {reason}" for reason in failed)
    lines.append(f"{'goal (issue 23)':50} met")
    for counted in tally(runs).values():
        verdict = f"{counted['met']} of {counted['runs']}"
        if counted["not_measured"]:
            verdict += f" ({counted['not_measured']} unmeasured)"
        if counted["met"] == counted["runs"]:
            verdict += ": MET in every run"
        lines.append(f"{counted['goal']:50} {verdict}")
    return "\n".join(lines)
