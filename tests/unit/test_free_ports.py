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


def test_a_port_listened_on_or_given_before_is_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    # An ephemeral range starting at 1027 leaves three candidates: 1024, 1025 and 1026.
    monkeypatch.setattr(processes, "ephemeral_ports", lambda: range(1027, 61000))
    monkeypatch.setattr(processes, "_HANDED_OUT", {1024})
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 1025))
        listening.listen()
        assert free_port() == 1026
        with pytest.raises(RuntimeError, match="no free port below the ephemeral range"):
            free_port()
