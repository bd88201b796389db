"""Cursors over an inbox: opaque to callers, a position to the service.

A cursor names the position of the last message a reader has seen; the next page (and an SSE
stream's resume point, its `Last-Event-ID`) is everything after it. Callers must not build
cursors, so they are encoded (versioned, so the encoding can change) and anything that does
not decode is refused with a precise message."""

from __future__ import annotations

import base64
import binascii

from shared.errors import Unprocessable

_PREFIX = "n1:"
# A position is a bigint; a cursor longer than this cannot hold one.
MAX_CURSOR_LENGTH = 40


def encode(position: int) -> str:
    raw = f"{_PREFIX}{position}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, what: str = "cursor") -> int:
    """The position a cursor names; 422 for anything this service did not hand out."""
    if len(cursor) > MAX_CURSOR_LENGTH or not cursor.isascii():
        raise Unprocessable(f"{what} is not a cursor this service handed out")
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Unprocessable(f"{what} is not a cursor this service handed out") from None
    digits = text.removeprefix(_PREFIX)
    if not text.startswith(_PREFIX) or not digits.isdigit() or not digits.isascii():
        raise Unprocessable(f"{what} is not a cursor this service handed out")
    position = int(digits)
    if position >= 2**63:
        raise Unprocessable(f"{what} is not a cursor this service handed out")
    return position
