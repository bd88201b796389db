"""The chain benchmark's printed table: one run's figures beside the baselines and yardsticks
measured in the same run, and issue 23's goals checked against them. A run that failed
somewhere prints every figure it has and why the rest is missing."""

from __future__ import annotations

import os
from typing import Any

from benchmarks import goals


def _latencies(phase: dict[str, Any]) -> list[str]:
    lines = []
    for label, key in (
        ("-> notification", "ingestion_to_notification"),
        ("-> incentive  ", "ingestion_to_incentive_entry"),
        ("-> webhook    ", "ingestion_to_webhook"),
    ):
        values = phase.get(key, {})
        if values.get("count"):
            lines.append(
                f"    {label} p50 {values['p50_ms']:8.1f}  p95 {values['p95_ms']:8.1f}  "
                f"p99 {values['p99_ms']:8.1f}  p99.9 {values['p999_ms']:8.1f} ms"
            )
    lag = phase.get("relay_lag", {})
    if lag.get("all", {}).get("count"):
        lines.append(
            f"    relay lag ({lag['measured_from']} -> Kafka ack) "
            f"p50 {lag['all']['p50_ms']:.1f}  p99 {lag['all']['p99_ms']:.1f} ms"
        )
    hops = phase.get("hops", {})
    if hops.get("deals"):
        segments = [
            f"{name} {value['p50_ms']:.1f}/{value['p99_ms']:.1f}"
            for name, value in hops.items()
            if isinstance(value, dict) and value.get("count")
        ]
        lines.append(f"    hops p50/p99 ms ({hops['deals']} deals, {hops['left_out']} left out):")
        # One service's transaction, relay and the next pick-up to a line.
        lines += [f"      {', '.join(segments[i : i + 3])}" for i in range(0, len(segments), 3)]
    timeline = phase.get("by_second", [])
    if len(timeline) > 1:
        # Each second of ingestion's slowest notification: a tail from one moment shows as a
        # peak, one from the load as a plateau.
        peaks = " ".join(
            f"{second['max_ms']:.0f}" if second.get("deals") else "-" for second in timeline
        )
        lines.append(f"    slowest -> notification by second of ingestion (ms): {peaks}")
    return lines


def _phase(name: str, phase: dict[str, Any]) -> list[str]:
    head = f"{name:13} deals {phase.get('deals', '-'):>6}"
    if phase.get("end_to_end_deals_per_s") is not None:
        head += f"  e2e {phase['end_to_end_deals_per_s']} deals/s"
    if phase.get("not_completed"):
        head += f"  ({phase['not_completed']} not completed)"
    lines = [head]
    posts = phase.get("posts")
    if posts:
        lines.append(
            f"    posts {posts['posts']}: retries {posts['retries']}, timeouts "
            f"{posts['timeouts']}, errors {posts['errors'] or 0}, given up {posts['given_up']}"
        )
    lines += _latencies(phase)
    if phase.get("failed"):
        lines.append(f"    FAILED {phase['failed']}")
    return lines


def _resources(saturated: dict[str, Any]) -> list[str]:
    lines = []
    if saturated.get("rss_mb"):
        lines.append(f"rss at saturation (MB): {saturated['rss_mb']}")
    used = saturated.get("resources")
    if used:
        lines.append(
            f"cpu at saturation: machine {used['machine_busy_pct_of_one_core']}% of one core "
            f"(host steal {used.get('machine_steal_pct_of_one_core', '-')}%); "
            + ", ".join(
                f"{part} {pct}% ({used['cpu_ms_per_deal'][part]} ms/deal)"
                for part, pct in used["cpu_pct_of_one_core"].items()
            )
        )
        lines.append(
            f"postgres WAL at saturation: {used['wal_mb_per_s']} MB/s, "
            f"{used['wal_kb_per_deal']} kB per deal "
            f"({used.get('wal_full_page_images_per_deal', '-')} full-page images per deal, "
            f"{used.get('checkpoints_begun', '-')} checkpoints begun in the window)"
        )
    return lines


def _yardsticks(results: dict[str, Any]) -> str:
    loop = results.get("yardsticks", {}).get("python_loop")
    fsync = results.get("yardsticks", {}).get("postgres_fsync")
    return (
        "machine: python loop "
        + (f"{loop['ms']} ms (wall {loop['wall_ms']} ms)" if loop else "-")
        + ", postgres "
        + (f"{fsync['fsyncs_per_s']} fsyncs/s (committed 1-row tx, 1 connection)" if fsync else "-")
    )


def _goals(results: dict[str, Any]) -> list[str]:
    lines = ["goals (issue 23), from this run's figures:"]
    for checked in goals.evaluate(results).values():
        verdict = {True: "met", False: "NOT met", None: "not measured"}[checked["met"]]
        figure = "-" if checked["figure"] is None else checked["figure"]
        lines.append(f"    {checked['goal']:50} {figure!s:>9}  {verdict}")
    return lines


def table(results: dict[str, Any]) -> str:
    lines = [f"Pollinate chain benchmark ({results['mode']}, commit {results['commit']})"]
    lines.append(_yardsticks(results))
    kafka = results.get("baseline_kafka", {}).get("msgs_per_s", "-")
    postgres = results.get("baseline_postgres", {}).get("tx_per_s", "-")
    lines.append(f"raw: kafka {kafka} msgs/s, postgres+outbox {postgres} tx/s")
    chain = results.get("chain", {})
    for name, phase in chain.items():
        lines += _phase(name, phase)
    lines += _resources(chain.get("saturation", {}))
    for size, row in results.get("conflict_check", {}).items():
        if isinstance(row, dict) and "exact" in row:
            lines.append(
                f"conflict check {size:>8}: exact p50 {row['exact']['p50_ms']} p99 "
                f"{row['exact']['p99_ms']} ms; fuzzy p50 {row['fuzzy']['p50_ms']} p99 "
                f"{row['fuzzy']['p99_ms']} ms"
            )
    two = chain.get("saturation_two_instances")
    if two:
        one = chain.get("saturation", {}).get("end_to_end_deals_per_s") or 0
        both = two.get("end_to_end_deals_per_s") or 0
        lines.append(
            f"scale: one instance each {one} deals/s, two instances each {both} deals/s "
            f"({both / one if one else 0:.2f}x on this machine's {os.cpu_count()} cores)"
        )
    lines.append(f"ratios: {results.get('ratios')}")
    lines += _goals(results)
    if results.get("failed"):
        lines.append(f"FAILED {results['failed']}")
    return "\n".join(lines)
