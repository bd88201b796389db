"""Issue 23's goals are computed from each run's own figures, and several runs say in how many
of them each goal was met (not measured is not met, and a failed phase fails its goals)."""

from __future__ import annotations

from typing import Any

from benchmarks import goals


def a_run(
    p99_100: float, p99_500: float | None, saturated: float, raw_tx: int, failed_500: str = ""
) -> dict[str, Any]:
    chain: dict[str, Any] = {
        "offered_100": {"ingestion_to_notification": {"count": 2000, "p99_ms": p99_100}},
        "saturation": {
            "end_to_end_deals_per_s": saturated,
            "resources": {
                "cpu_ms_per_deal": {"postgres": 0.8, "deals": 0.4, "load generator": 0.3},
                "wal_kb_per_deal": 38.0,
            },
        },
    }
    if p99_500 is not None:
        chain["offered_500"] = {"ingestion_to_notification": {"count": 10000, "p99_ms": p99_500}}
        if failed_500:
            chain["offered_500"]["failed"] = failed_500
    return {
        "baseline_postgres": {"tx_per_s": raw_tx},
        "chain": chain,
        "yardsticks": {"python_loop": {"ms": 280.0}, "postgres_fsync": {"fsyncs_per_s": 900}},
        "conflict_check": {"1000000": {"exact": {"p99_ms": 1.9}, "fuzzy": {"p99_ms": 5.5}}},
    }


def test_each_goal_is_checked_against_the_runs_own_figures() -> None:
    checked = goals.evaluate(a_run(30.0, 240.0, 700.0, 2000))
    assert {name: (c["figure"], c["met"]) for name, c in checked.items()} == {
        "saturation_vs_postgres": (0.35, True),
        "p99_notification_100": (30.0, True),
        "p99_notification_500": (240.0, True),
        "cpu_ms_per_deal": (1.5, True),
        "wal_kb_per_deal": (38.0, False),
        "conflict_exact_p99_1m": (1.9, True),
        "conflict_fuzzy_p99_1m": (5.5, False),
    }
    slower = goals.evaluate(a_run(51.0, None, 690.0, 2000))
    assert slower["saturation_vs_postgres"]["met"] is False  # 0.345x
    assert slower["p99_notification_100"]["met"] is False
    assert slower["p99_notification_500"] == {
        "goal": "p99 ingestion -> notification at 500/s <= 250 ms",
        "figure": None,
        "met": None,
    }


def test_a_figure_from_a_phase_that_failed_does_not_meet_its_goal() -> None:
    checked = goals.evaluate(a_run(30.0, 120.0, 700.0, 2000, failed_500="3 of 2000 posts given up"))
    assert checked["p99_notification_500"]["met"] is False
    assert checked["p99_notification_500"]["failed"] == "3 of 2000 posts given up"


def test_runs_side_by_side_count_each_goal_met_in_how_many_runs() -> None:
    runs = [
        a_run(30.0, 240.0, 700.0, 2000),
        a_run(202.0, 258.0, 720.0, 2000),
        a_run(31.0, 157.0, 710.0, 2000),
    ]
    printed = goals.side_by_side(runs)
    rows = {line[:50].strip(): line[50:].strip() for line in printed.splitlines()}
    assert rows["saturation >= 0.35x raw Postgres tx/s"] == "3 of 3: MET in every run"
    assert rows["p99 ingestion -> notification at 100/s <= 50 ms"] == "2 of 3"
    assert rows["p99 ingestion -> notification at 500/s <= 250 ms"] == "2 of 3"
    assert rows["Postgres WAL per deal <= 20 kB"] == "0 of 3"
    assert goals.tally(runs)["p99_notification_100"] == {
        "goal": "p99 ingestion -> notification at 100/s <= 50 ms",
        "met": 2,
        "runs": 3,
        "not_measured": 0,
    }
    p99_row = next(
        line for line in printed.splitlines() if line.startswith("p99 notification @100")
    )
    assert p99_row.split()[-3:] == ["30.0", "202.0", "31.0"]
    quick = [a_run(30.0, None, 700.0, 2000)] * 2
    rows = {line[:50].strip(): line[50:].strip() for line in goals.side_by_side(quick).splitlines()}
    assert rows["p99 ingestion -> notification at 500/s <= 250 ms"] == "0 of 2 (2 unmeasured)"
