"""A phase's notifications second by second of ingestion, so a tail shows as a moment (a peak)
or as the load's (a plateau that grows)."""

from __future__ import annotations

from benchmarks.chain import Observed
from benchmarks.report import _latencies


def test_deals_are_grouped_by_the_second_they_were_ingested_in() -> None:
    observed = Observed()
    start = 1_700_000_000_000.0  # epoch ms
    ingested = {"a": 0, "b": 400, "c": 999, "d": 1000, "e": 3500, "f": 3600, "g": 2100}
    latency = {"a": 10.0, "b": 30.0, "c": 20.0, "d": 900.0, "e": 5.0}  # f, g never notified
    for deal, offset in ingested.items():
        observed.ingested_at[deal] = start + offset
    observed.notified_ms.update(latency)

    timeline = observed.by_second(list(ingested))

    assert timeline == [
        {"second": 0, "deals": 3, "p50_ms": 20.0, "max_ms": 30.0},
        {"second": 1, "deals": 1, "p50_ms": 900.0, "max_ms": 900.0},
        {"second": 2, "deals": 0},
        {"second": 3, "deals": 1, "p50_ms": 5.0, "max_ms": 5.0},
    ]
    assert observed.by_second([]) == []


def test_the_table_prints_each_seconds_slowest() -> None:
    phase = {
        "by_second": [
            {"second": 0, "deals": 3, "p50_ms": 20.0, "max_ms": 30.4},
            {"second": 1, "deals": 1, "p50_ms": 900.0, "max_ms": 900.0},
            {"second": 2, "deals": 0},
        ]
    }
    assert _latencies(phase) == [
        "    slowest -> notification by second of ingestion (ms): 30 900 -"
    ]
