"""The platform's one clock: every "now" in the services comes from here (aware, UTC), so a
test or a replay has one place to look for time."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)
