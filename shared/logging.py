"""Structured logs: one JSON object per line, with the service name, the current trace and span
ids (so a log line joins its trace) and any `extra` fields. The Kafka client's repeated
complaints while a broker is down (a hundred identical lines a second) are let through once per
window, with a count of the ones held back."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service_name: str) -> None:
        super().__init__()
        self.service_name = service_name

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "service": self.service_name,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            entry["trace_id"] = format(context.trace_id, "032x")
            entry["span_id"] = format(context.span_id, "016x")
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """One readable line, with the `extra` fields after the message (the error a retry logs
    is in them: a line without them says that something failed, not what)."""

    def __init__(self, service_name: str) -> None:
        super().__init__(f"%(asctime)s {service_name} %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [
            f"{key}={value}"
            for key, value in vars(record).items()
            if key not in _STANDARD_ATTRS and not key.startswith("_")
        ]
        if not extras:
            return line
        first, newline, rest = line.partition("\n")  # a traceback stays below the first line
        return f"{first} [{' '.join(extras)}]{newline}{rest}"


# Loggers of the Kafka clients: aiokafka's own, and FastStream's broker logger (`<service>.kafka`).
def _kafka_client(name: str) -> bool:
    return name.startswith("aiokafka") or name.endswith(".kafka")


class RepeatLimit(logging.Filter):
    """Lets a Kafka client's message through once per `window` seconds per logger, level and
    message template; the next one after the window says how many were held back
    (`repeated`). Other loggers pass untouched."""

    def __init__(self, window: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window = window
        self.clock = clock
        # (logger, level, template) -> (when last let through, held back since)
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not _kafka_client(record.name):
            return True
        key = (record.name, record.levelno, str(record.msg))
        at = self.clock()
        seen = self._seen.get(key)
        if seen is not None and at - seen[0] < self.window:
            self._seen[key] = (seen[0], seen[1] + 1)
            return False
        if seen is not None and seen[1]:
            record.repeated = seen[1]
        if len(self._seen) > 1000:  # templates are few; this only bounds a pathological case
            self._seen.clear()
        self._seen[key] = (at, 0)
        return True


def configure_logging(service_name: str, level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RepeatLimit())
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service_name))
    else:
        handler.setFormatter(TextFormatter(service_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka is chatty at INFO about every group rebalance step.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
