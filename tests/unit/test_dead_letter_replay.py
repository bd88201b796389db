"""Replaying every waiting dead letter up to an offset, against the topic as Kafka pages it:
a `through` below the oldest letter the topic still keeps (retention deleted the older ones)."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, cast

import pytest

from shared import dead_letters
from shared.dlq import RETIRED, DeadLetter, Page
from shared.dlq import main as dlq_main
from shared.errors import Conflict
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


@pytest.mark.parametrize("after", [None, 7])
async def test_a_topic_whose_letters_all_aged_out_has_no_next_page(
    monkeypatch: pytest.MonkeyPatch, after: int | None
) -> None:
    """Found in review: oldest first, it answered `next_after` -1 (which the route refuses) or
    the caller's own `after` again, so a client paging to the end never stopped."""

    async def read(platform: Platform, start: int, limit: int) -> Page:
        return Page([], END, END)  # retention deleted every letter: first == end > 0

    monkeypatch.setattr(dead_letters, "_read", read)
    platform = cast(Platform, type("Started", (), {"pool": Pool()})())
    shown, next_after, end = await dead_letters._oldest_first(platform, after, 50, "all")
    assert (shown, next_after, end) == ([], None, END)


async def test_replaying_all_keeps_to_the_letters_shown_and_says_which_it_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found in review: "replay every waiting letter up to #N" replayed the older waiting
    letters the page had not shown too, and left the ones it could not replay without a word."""

    async def read(platform: Platform, start: int, limit: int) -> Page:
        offsets = range(max(start, KEPT_FROM), min(END, max(start, KEPT_FROM) + limit))
        return Page([DeadLetter(o, b"k", b"{}", {}) for o in offsets], KEPT_FROM, END)

    async def replays(conn: Any, offsets: list[int]) -> dict[int, Any]:
        return {}

    tried: list[int] = []

    async def replay(
        platform: Platform, who: Caller, letter: DeadLetter, refuse_done: bool
    ) -> dead_letters.ReplayedOut:
        tried.append(letter.offset)
        if letter.offset == KEPT_FROM + 1:
            raise Conflict("no consumer of origin.topic.v1 in this service")
        return dead_letters.ReplayedOut(offset=letter.offset, outcome="processed", detail="ok")

    monkeypatch.setattr(dead_letters, "_read", read)
    monkeypatch.setattr(dead_letters, "_replays", replays)
    monkeypatch.setattr(dead_letters, "_replay", replay)
    platform = cast(Platform, type("Started", (), {"pool": Pool()})())
    who = Caller(subject="manager@vendor", roles=frozenset({Role.CHANNEL_MANAGER}))
    asked = dead_letters.ReplayAllIn(since=KEPT_FROM + 1, through=END - 1)
    answer = await dead_letters.replay_all(asked, who, platform)
    assert tried == [KEPT_FROM + 1, KEPT_FROM + 2]  # not the older one it was not shown
    assert [r.offset for r in answer.replayed] == [KEPT_FROM + 2]
    assert [(s.offset, s.reason) for s in answer.skipped] == [
        (KEPT_FROM + 1, "no consumer of origin.topic.v1 in this service")
    ]


def test_the_command_line_replay_is_retired_for_the_recorded_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found in review: it replayed with no record (the console offered the letter again) and,
    without --offset, the whole topic from its start."""
    monkeypatch.setattr("sys.argv", ["shared.dlq", "replay", "--service", "deals", "--offset", "3"])
    with pytest.raises(SystemExit) as retired:
        dlq_main()
    assert str(retired.value) == RETIRED
    assert "POST /admin/dead-letters/{offset}/replay" in RETIRED
