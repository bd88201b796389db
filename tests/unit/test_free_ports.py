"""The ports tests and the benchmark give the processes they start (tests/support/processes.py)."""

from __future__ import annotations

import socket

import pytest

from tests.support import processes
from tests.support.processes import ephemeral_ports, free_port


def test_a_port_given_to_a_process_lies_below_the_ephemeral_range() -> None:
    # Outgoing connections take their local ports from the ephemeral range: a port given from
    # there can be taken by one before the process binds it.
    ephemeral = ephemeral_ports()
    ports = [free_port() for _ in range(50)]
    assert all(port < ephemeral.start for port in ports), ports


def test_ports_given_are_distinct_and_free() -> None:
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def three_free_ports() -> range:
    """Three consecutive ports nothing listens on right now, below the ephemeral range."""
    for first in range(processes.candidate_ports().start, ephemeral_ports().start - 3, 3):
        try:
            for port in range(first, first + 3):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return range(first, first + 3)
    raise AssertionError("no three free ports in a row below the ephemeral range")


def test_a_port_listened_on_or_given_before_is_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    given, listened_on, free = three_free_ports()
    window = range(given, free + 1)
    monkeypatch.setattr(processes, "candidate_ports", lambda: window)
    monkeypatch.setattr(processes, "_HANDED_OUT", {given})
    monkeypatch.setattr(processes, "_FEWEST_CANDIDATES", 3)
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", listened_on))
        listening.listen()
        assert free_port() == free
        with pytest.raises(RuntimeError, match="no free port"):
            free_port()


def test_a_machine_whose_ephemeral_range_starts_low_gets_the_kernels_pick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(processes, "ephemeral_ports", lambda: range(1024, 65536))
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
