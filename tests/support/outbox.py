"""What a service recorded in its outbox, as Kafka will get it: a row may keep its event
compressed (shared/outbox_codec.py), so a query selects `value, value_codec` and reads the
event through these."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from shared import outbox_codec


def event_bytes(row: Mapping[str, Any]) -> bytes:
    """The event's JSON bytes of an outbox row selected with `value` and `value_codec`."""
    return outbox_codec.unpack(row["value"], row["value_codec"])


def event_json(row: Mapping[str, Any]) -> Any:
    """The event of an outbox row selected with `value` and `value_codec`, parsed."""
    return json.loads(event_bytes(row))
