"""Cursors over an inbox: opaque to callers, a position to the service.

A cursor names the position of the last message a reader has seen; the next page (and an SSE
stream's resume point, its `Last-Event-ID`) is everything after it. Callers must not build
cursors, so they are encoded (versioned, so the encoding can change) and a cursor the service
could not have handed out is refused with a precise message. That takes two steps:

- `claim` reads what a caller sent: only what `encode` writes, for a position a message can
  hold (anything else, even a spelling that decodes to the same position, was never handed
  out);
- `ClaimedPosition.verified` checks it against the inbox it is used on: every cursor handed out
  for an inbox is the position of one of its messages (a page's, a live stream's event id, a
  webhook's), so none lies beyond the inbox's newest message. A position ahead of it would
  hide every message filed later up to it (a page after it is empty, a stream started there
  silent, "read through it" marks messages no one has seen yet).

Positions are global (one counter for every inbox), so a claimed position may be another
recipient's message. Below the inbox's newest message that is harmless: it is only a bound, and
the inbox's own messages after it are what any cursor of that inbox between the same messages
would give. Whether a claim is refused depends only on the inbox it is used on, never on whose
message sits at that position, so the answer says nothing about other inboxes."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from shared.errors import Unprocessable

_PREFIX = "n1:"
# A position is a bigint; a cursor longer than this cannot hold one.
MAX_CURSOR_LENGTH = 40
# The first message filed takes position 1 (migrations/0001_inbox.sql: the counter starts at 0).
FIRST_POSITION = 1
LAST_POSITION = 2**63 - 1


def encode(position: int) -> str:
    raw = f"{_PREFIX}{position}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def refused(what: str, why: str | None = None) -> Unprocessable:
    reason = f": {why}" if why is not None else ""
    return Unprocessable(f"{what} is not a cursor this service handed out{reason}")


def decode(cursor: str, what: str = "cursor") -> int:
    """The position a cursor names, if the service writes cursors that way: 422 for anything
    else (the inbox it is used on is `ClaimedPosition.verified`'s business)."""
    if len(cursor) > MAX_CURSOR_LENGTH or not cursor.isascii():
        raise refused(what)
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise refused(what) from None
    digits = text.removeprefix(_PREFIX)
    if not text.startswith(_PREFIX) or not digits.isdigit() or not digits.isascii():
        raise refused(what)
    position = int(digits)
    if position > LAST_POSITION:
        raise refused(what, "it names no position a message can hold")
    if encode(position) != cursor:
        # Leading zeros, padding, characters base64 skips, stray trailing bits: each decodes
        # to a position, but the service only ever hands out `encode`'s one spelling of it.
        raise refused(what, "it is not spelled as this service writes cursors")
    if position < FIRST_POSITION:
        raise refused(what, "it names no message (the first message is at position 1)")
    return position


@dataclass(frozen=True)
class ClaimedPosition:
    """A position a caller sent as a cursor under the name `given_as` (`after`, `through`,
    `Last-Event-ID`...), in the form the service writes, but not yet checked against the inbox
    it is used on."""

    position: int
    given_as: str

    def verified(self, newest: int) -> int:
        """The position, if the inbox whose newest message is at `newest` (0: none yet) could
        have handed it out."""
        if self.position > newest:
            raise refused(self.given_as, "it is ahead of the newest message in this inbox")
        return self.position

    @property
    def cursor(self) -> str:
        return encode(self.position)


def claim(cursor: str, given_as: str) -> ClaimedPosition:
    return ClaimedPosition(decode(cursor, given_as), given_as)
