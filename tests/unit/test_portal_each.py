"""A page's many calls to one service: all answered, in order, never more than the bound at
once (the MDF queue asked once per partner, all at the same moment)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from services.portal.backends import each


async def test_every_answer_in_order_with_at_most_the_bound_in_flight() -> None:
    in_flight = 0
    most = 0
    full, release = asyncio.Event(), asyncio.Event()

    def call(number: int) -> Callable[[], Awaitable[int]]:
        async def ask() -> int:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            if in_flight == 3:
                full.set()
            await release.wait()  # every started call waits until the bound is full
            in_flight -= 1
            return number * 10

        return ask

    async def open_when_full() -> None:
        await full.wait()
        release.set()

    answers, _ = await asyncio.gather(
        each((call(n) for n in range(20)), at_once=3), open_when_full()
    )
    assert answers == [n * 10 for n in range(20)]
    assert most == 3


async def test_a_failing_call_fails_the_whole() -> None:
    async def fails() -> int:
        raise LookupError("no")

    async def answers() -> int:
        return 1

    with pytest.raises(LookupError):
        await each([answers, fails, answers])
