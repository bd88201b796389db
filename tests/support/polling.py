"""The one way a test waits for another process: poll its state, bounded, never sleep blindly."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


class NeverHappened(AssertionError):
    """What was awaited did not happen within the bound."""


async def eventually(
    check: Callable[[], Awaitable[Any]],
    timeout: float = 30.0,
    *,
    what: str = "the condition",
    every: float = 0.1,
) -> Any:
    """Poll `check` until it returns something truthy and return that; fail after `timeout`
    saying what never happened. (Another process's state: there is no local event to await.)"""
    try:
        async with asyncio.timeout(timeout):
            while not (result := await check()):
                await asyncio.sleep(every)
            return result
    except TimeoutError as error:
        raise NeverHappened(f"timed out after {timeout:.0f}s waiting for: {what}") from error
