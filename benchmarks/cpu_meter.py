"""What a benchmark run costs the machine, part by part: CPU time of each process from /proc
(the services, this stack's Postgres and Kafka, the load generator), Postgres' WAL volume, and
resident memory."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def cpu_ticks(pid: int) -> int:
    """User and system CPU time of a process so far, in clock ticks (`SC_CLK_TCK` a second)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far, in seconds."""
    return cpu_ticks(pid) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU time of each part of the run (from /proc), and Postgres' WAL volume, over a window:
    where the machine's cores go, per deal. Processes that start or end inside the window
    are missed, which is why the machine's total busy time is reported beside the parts.
    On a machine running other stacks too, only this run's Postgres (the postmaster serving
    its database, and that postmaster's children) and Kafka (the broker started from the same
    local-stack work directory) are counted; if they cannot be told apart (not the local
    stack's layout), every Postgres and Kafka process is, and `counted` says which."""

    def __init__(self, admin_dsn: str, services: dict[str, int]) -> None:
        self.admin_dsn = admin_dsn
        self.service_of = {pid: service for service, pid in services.items()}
        self.ticks = os.sysconf("SC_CLK_TCK")
        self.postmaster: int | None = None
        self.kafka: set[int] | None = None

    async def _find_stack(self) -> None:
        """This run's postmaster and broker. The local stack keeps Postgres' data in
        <work>/postgres/data and starts Kafka with its logs in <work>/kafka/logs."""
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            data = str(await conn.fetchval("SELECT current_setting('data_directory')"))
        finally:
            await conn.close()
        postmaster = b"\0-D\0" + data.encode() + b"\0"
        broker = f"={Path(data).parent.parent}/kafka/".encode()
        kafka: set[int] = set()
        for pid, _, command in self._processes():
            if postmaster in command:
                self.postmaster = pid
            elif b"kafka.Kafka" in command and broker in command:
                kafka.add(pid)
        self.kafka = kafka or None

    @staticmethod
    def _processes() -> list[tuple[int, int, bytes]]:
        """Every process's pid, parent pid and command line."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                command = (entry / "cmdline").read_bytes()
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            found.append((int(entry.name), parent, command))
        return found

    def _part(self, pid: int, parent: int, command: bytes) -> str | None:
        if pid in self.service_of:
            return self.service_of[pid]
        if pid == os.getpid():
            return "load generator"
        if b"kafka.Kafka" in command:
            return "kafka" if self.kafka is None or pid in self.kafka else None
        program = command.split(b"\0")[0]
        # The postmaster is .../bin/postgres; its children rename themselves "postgres: ...".
        if program.rsplit(b"/", 1)[-1] == b"postgres" or program.startswith(b"postgres:"):
            ours = self.postmaster is None or self.postmaster in (pid, parent)
            return "postgres" if ours else None
        return None

    @property
    def counted(self) -> str:
        postgres = "every Postgres" if self.postmaster is None else "this stack's Postgres"
        kafka = "every Kafka broker" if self.kafka is None else "this stack's Kafka"
        return f"{postgres} and {kafka} on the machine"

    def _snapshot(self) -> tuple[float, dict[int, tuple[str, int]], tuple[int, int]]:
        parts: dict[int, tuple[str, int]] = {}
        for pid, parent, command in self._processes():
            part = self._part(pid, parent, command)
            if part is None:
                continue
            try:
                parts[pid] = (part, cpu_ticks(pid))
            except OSError:
                continue
        # cpu  user nice system idle iowait irq softirq steal ...: busy is all but idle, iowait.
        # Steal (the host running something else on our virtual cores) counts as busy, and is
        # kept apart too: on a shared host it explains runs of one commit that differ twofold.
        ticks = [int(v) for v in Path("/proc/stat").read_text().split()[1:9]]
        busy = sum(ticks) - ticks[3] - ticks[4]
        return time.perf_counter(), parts, (busy, ticks[7])

    async def _wal_state(self) -> tuple[int, int, int]:
        """WAL written so far (bytes), full-page images among its records, and checkpoints
        begun: a checkpoint inside a window makes the first change to every page after it
        write the whole page, so a window's WAL depends on where checkpoints fall."""
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            row = await conn.fetchrow(
                """SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') AS written,
                          (SELECT wal_fpi FROM pg_stat_wal) AS images,
                          (SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter)
                              AS checkpoints"""
            )
        finally:
            await conn.close()
        assert row is not None
        return int(row["written"]), int(row["images"]), int(row["checkpoints"])

    async def start(self) -> None:
        await self._find_stack()
        self._wal_start = await self._wal_state()
        self._start = self._snapshot()

    async def stop(self) -> None:
        """End the window (what it measured is read with `per_deal`)."""
        self._end = self._snapshot()
        self._wal_end = await self._wal_state()

    @property
    def wal_bytes(self) -> int:
        """Postgres' WAL written in the window."""
        return self._wal_end[0] - self._wal_start[0]

    def per_deal(self, deals: int) -> dict[str, Any]:
        """The window's figures, and per deal for the `deals` completed inside it."""
        end_at, end, (end_busy, end_steal) = self._end
        start_at, start, (start_busy, start_steal) = self._start
        seconds = end_at - start_at
        used: Counter[str] = Counter()
        for pid, (part, ticks) in end.items():
            used[part] += ticks - start.get(pid, (part, 0))[1]
        wal = self.wal_bytes
        images = self._wal_end[1] - self._wal_start[1]
        return {
            "seconds": round(seconds, 1),
            "deals_completed": deals,
            "counted": self.counted,
            "machine_busy_pct_of_one_core": round(
                (end_busy - start_busy) / self.ticks / seconds * 100, 1
            ),
            "machine_steal_pct_of_one_core": round(
                (end_steal - start_steal) / self.ticks / seconds * 100, 1
            ),
            "cpu_pct_of_one_core": {
                part: round(ticks / self.ticks / seconds * 100, 1)
                for part, ticks in used.most_common()
            },
            "cpu_ms_per_deal": {
                part: round(ticks / self.ticks * 1000 / deals, 3) if deals else None
                for part, ticks in used.most_common()
            },
            "wal_mb_per_s": round(wal / seconds / 1e6, 1),
            "wal_kb_per_deal": round(wal / deals / 1e3, 1) if deals else None,
            "wal_full_page_images_per_deal": round(images / deals, 2) if deals else None,
            "checkpoints_begun": self._wal_end[2] - self._wal_start[2],
        }
