"""Replaying every waiting dead letter up to an offset, against the topic as Kafka pages it:
a `through` below the oldest letter the topic still keeps (retention deleted the older ones)."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, cast

import pytest

from shared import dead_letters
from shared.dlq import DeadLetter, Page
from shared.identity import Caller, Role
from shared.service import Platform

KEPT_FROM, END = 15, 18  # retention deleted offsets 0-14


class Pool:
    @asynccontextmanager
    async def acquire(self) -> Any:
        yield None


async def test_replaying_through_an_offset_retention_deleted_answers_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It read the topic's first kept page again and again, never moving past `through`, and
    never answered (every pass a new Kafka consumer)."""
    reads: list[int] = []

    async def read(platform: Platform, start: int, limit: int) -> Page:
        reads.append(start)
        if len(reads) > 5:
            raise AssertionError(f"read the topic {len(reads)} times from {reads[:5]}...")
        offsets = range(max(start, KEPT_FROM), min(END, max(start, KEPT_FROM) + limit))
        kept = [DeadLetter(offset, b"k", b"{}", {}) for offset in offsets]
        return Page(kept, KEPT_FROM, END)

    async def replays(conn: Any, offsets: list[int]) -> dict[int, Any]:
        return {}

    monkeypatch.setattr(dead_letters, "_read", read)
    monkeypatch.setattr(dead_letters, "_replays", replays)
    platform = cast(Platform, type("Started", (), {"pool": Pool()})())
    who = Caller(subject="manager@vendor", roles=frozenset({Role.CHANNEL_MANAGER}))
    answer = await dead_letters.replay_all(dead_letters.ReplayAllIn(through=10), who, platform)
    assert (answer.replayed, answer.more) == ([], False)
    assert reads == [0]
