"""Two yardsticks of the machine a benchmark ran on, so runs on different machines (or on one
machine on a busy and a quiet day) can be compared: how fast one core runs plain Python, and
how many committed transactions a second Postgres can make durable from one connection (each
commit waits for its WAL flush: the disk's fsync rate, as the services' commits meet it).

    python -m benchmarks.yardsticks     # prints both, on the local stack's Postgres
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import asyncpg

from tests.support.infra import Infra, scratch_schema

LOOP_ITERATIONS = 2_000_000
LOOP_RESULT = 999_912  # what the fixed work computes: a check that it is the same work


def fixed_work() -> int:
    """A fixed amount of pure-Python work (integer arithmetic in a loop, no allocation to
    speak of): a few hundred milliseconds on a 2020s server core."""
    total = 0
    for i in range(LOOP_ITERATIONS):
        total = (total + i * i) % 1_000_003
    return total


def python_loop(rounds: int = 3) -> dict[str, Any]:
    """The fixed work's time, `rounds` times. The headline is the best run's CPU time: on a
    shared machine the wall-clock time also holds the waits for a core (kept beside it, it
    shows how busy the machine was), the CPU time is the core's own speed."""
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(rounds):
        started, started_cpu = time.perf_counter(), time.process_time()
        if fixed_work() != LOOP_RESULT:
            raise RuntimeError("the fixed Python work computed something else")
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return {
        "work": f"{LOOP_ITERATIONS:,} iterations of (total + i * i) % 1000003",
        "ms": round(min(cpu), 1),
        "cpu_ms": [round(ms, 1) for ms in cpu],
        "wall_ms": [round(ms, 1) for ms in wall],
    }


async def postgres_fsyncs(infra: Infra, seconds: float) -> dict[str, Any]:
    """Committed single-row inserts, one after the other from one connection, with
    synchronous_commit on, for `seconds`: each commit waits for its WAL record to be flushed,
    so the rate is the flushes (fsyncs, or what wal_sync_method uses) the disk makes a second,
    with Postgres' own overhead per commit, which is small beside a flush."""
    async with scratch_schema(infra) as scratch:
        await scratch.as_owner("CREATE TABLE ticks (n bigint NOT NULL)")
        conn = await asyncpg.connect(scratch.dsn)
        try:
            await conn.execute("SET synchronous_commit = on")
            settings = {
                name: await conn.fetchval(f"SELECT current_setting('{name}')")
                for name in ("fsync", "wal_sync_method", "synchronous_commit", "commit_delay")
            }
            insert = await conn.prepare(f"INSERT INTO {scratch.schema}.ticks VALUES ($1)")
            commits = 0
            started = time.perf_counter()
            while (elapsed := time.perf_counter() - started) < seconds:
                await insert.fetchval(commits)  # autocommit: one transaction each
                commits += 1
        finally:
            await conn.close()
    return {
        "method": "committed single-row inserts from one connection, synchronous_commit on",
        "commits": commits,
        "seconds": round(elapsed, 2),
        "fsyncs_per_s": round(commits / elapsed),
        "settings": settings,
    }


async def measure(infra: Infra, fsync_seconds: float) -> dict[str, Any]:
    # The Python loop first, before the Postgres loop's process wakes: it measures a core.
    return {
        "python_loop": python_loop(),
        "postgres_fsync": await postgres_fsyncs(infra, fsync_seconds),
    }


def main() -> None:
    print(json.dumps(asyncio.run(measure(Infra.from_env(os.environ), 5.0)), indent=2))


if __name__ == "__main__":
    main()
