"""The local stack script's view of its own processes (no stack is started: a work directory
of the test's own, with a pid file, and ports nobody listens on)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support.infra import ROOT
from tests.support.processes import free_port


def zombie() -> subprocess.Popen[bytes]:
    """A child that has exited and that nobody reaped yet: `kill -0` still finds it."""
    child = subprocess.Popen(["true"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, left unreaped
    return child


def status(work: Path) -> str:
    answer = subprocess.run(
        [str(ROOT / "deploy" / "local-stack.sh"), "status"],
        env={
            **os.environ,
            "POLLINATE_WORK_DIR": str(work),
            "KAFKA_PORT": str(free_port()),
            "PG_PORT": str(free_port()),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return answer.stdout


def test_a_killed_unreaped_broker_is_not_taken_for_a_running_one(tmp_path: Path) -> None:
    """`start` right after the broker was killed said "already running" (a zombie passes
    `kill -0`) and then failed waiting for it."""
    (tmp_path / "kafka").mkdir()
    child = zombie()
    try:
        os.kill(child.pid, 0)  # the trap: the zombie answers
        (tmp_path / "kafka" / "kafka.pid").write_text(f"{child.pid}\n")
        assert "kafka: stopped" in status(tmp_path)
    finally:
        child.wait()
