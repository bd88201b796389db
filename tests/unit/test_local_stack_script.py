"""The local stack script's view of its own processes (no stack is started: a work directory
of the test's own, with a pid file, and ports nobody listens on), and the cluster id it
formats a new broker with."""

from __future__ import annotations

import base64
import os
import subprocess
import uuid
from pathlib import Path

from deploy.kafka_cluster_id import new_cluster_id
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
            "KAFKA_BROKERS": "1",
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


def local_stack(work: Path, command: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "deploy" / "local-stack.sh"), command],
        env={**os.environ, "POLLINATE_WORK_DIR": str(work), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def exported(text: str) -> dict[str, str]:
    pairs = (line.removeprefix("export ").split("=", 1) for line in text.splitlines())
    return {pair[0]: pair[1] for pair in pairs if len(pair) == 2 and not pair[0].startswith("#")}


def test_a_cluster_is_three_nodes_whose_topics_are_replicated_three_times(tmp_path: Path) -> None:
    port = free_port()
    cluster = exported(local_stack(tmp_path, "env", KAFKA_BROKERS="3", KAFKA_PORT=str(port)).stdout)
    assert cluster["KAFKA_BOOTSTRAP_SERVERS"] == ",".join(
        f"127.0.0.1:{port + offset}" for offset in (0, 10, 20)
    )
    assert (
        cluster["KAFKA_TOPIC_REPLICATION_FACTOR"],
        cluster["KAFKA_TOPIC_MIN_INSYNC_REPLICAS"],
    ) == (
        "3",
        "2",
    )
    single = exported(local_stack(tmp_path, "env", KAFKA_BROKERS="1", KAFKA_PORT=str(port)).stdout)
    assert single["KAFKA_BOOTSTRAP_SERVERS"] == f"127.0.0.1:{port}"
    assert (
        single["KAFKA_TOPIC_REPLICATION_FACTOR"],
        single["KAFKA_TOPIC_MIN_INSYNC_REPLICAS"],
    ) == (
        "1",
        "1",
    )
    status = local_stack(tmp_path, "status", KAFKA_BROKERS="3", KAFKA_PORT=str(port)).stdout
    assert [line.split(":")[0] for line in status.splitlines()[:3]] == [
        "kafka node 1",
        "kafka node 2",
        "kafka node 3",
    ]


def test_a_cluster_of_two_is_refused_it_could_not_elect_a_controller(tmp_path: Path) -> None:
    refused = local_stack(tmp_path, "status", KAFKA_BROKERS="2")
    assert refused.returncode == 2
    assert "KAFKA_BROKERS must be 1 or 3" in refused.stderr


def test_a_kraft_cluster_id_never_starts_with_a_dash() -> None:
    """Kafka's storage tool reads an id starting with "-" as an option and refuses to format:
    one fresh checkout in 64 could not start its broker. Such an id is drawn again."""
    dashed = uuid.UUID(bytes=b"\xf8" + bytes(15))
    plain = uuid.UUID(bytes=bytes(range(16)))
    assert base64.urlsafe_b64encode(dashed.bytes).startswith(b"-")
    drawn = iter([dashed, dashed, plain])
    assert new_cluster_id(lambda: next(drawn)) == "AAECAwQFBgcICQoLDA0ODw"
    made = {new_cluster_id() for _ in range(2_000)}
    assert len(made) == 2_000
    assert all(len(i) == 22 and not i.startswith("-") for i in made)
