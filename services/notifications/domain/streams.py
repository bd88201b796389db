"""How many live streams one recipient may hold open on an instance. A stream holds a
connection and a task for as long as the client wants; an unbounded number per partner would
let one partner's app starve everyone else's."""

from __future__ import annotations

from collections import Counter

from shared.errors import RequestError


class TooManyStreams(RequestError):
    status = 429


class StreamLimit:
    """Open streams per recipient key, at most `per_recipient` at once (on this instance)."""

    def __init__(self, per_recipient: int) -> None:
        self.per_recipient = per_recipient
        self._open: Counter[str] = Counter()

    def open_for(self, key: str) -> int:
        return self._open[key]

    def acquire(self, key: str) -> None:
        """Take one stream slot for `key`; 429 when none is free. `release` gives it back."""
        if self._open[key] >= self.per_recipient:
            raise TooManyStreams(
                f"at most {self.per_recipient} open notification streams per recipient; "
                "close one before opening another"
            )
        self._open[key] += 1

    def release(self, key: str) -> None:
        self._open[key] -= 1
        if self._open[key] <= 0:
            del self._open[key]
