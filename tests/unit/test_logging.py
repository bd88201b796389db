"""Log lines: trace and span ids join a line to its trace; the Kafka client's repeated
complaints while a broker is down are let through once per window, with a count."""

from __future__ import annotations

import io
import json
import logging

from opentelemetry.sdk.trace import TracerProvider

from shared.logging import JsonFormatter, RepeatLimit, TextFormatter


class Clock:
    def __init__(self) -> None:
        self.at = 0.0

    def __call__(self) -> float:
        return self.at


def logger_writing_to(stream: io.StringIO, name: str, clock: Clock) -> logging.Logger:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("deals"))
    handler.addFilter(RepeatLimit(window=10.0, clock=clock))
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_broker_outage_logs_one_line_per_window_not_hundreds() -> None:
    stream, clock = io.StringIO(), Clock()
    kafka = logger_writing_to(stream, "aiokafka.conn.test", clock)
    for attempt in range(300):
        kafka.error("Unable to connect to node with id %s", attempt % 3)
    assert len(lines(stream)) == 1
    clock.at = 10.5
    kafka.error("Unable to connect to node with id %s", 1)
    kafka.warning("another complaint")
    logged = lines(stream)
    assert [(line["msg"], line.get("repeated")) for line in logged] == [
        ("Unable to connect to node with id 0", None),
        ("Unable to connect to node with id 1", 299),
        ("another complaint", None),
    ]


def test_other_loggers_are_never_held_back() -> None:
    stream, clock = io.StringIO(), Clock()
    service = logger_writing_to(stream, "services.deals.test", clock)
    for _ in range(5):
        service.warning("the same thing")
    assert len(lines(stream)) == 5


def test_a_line_logged_inside_a_span_carries_its_trace_and_span_ids() -> None:
    stream, clock = io.StringIO(), Clock()
    logger = logger_writing_to(stream, "services.deals.traced", clock)
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("handling") as span:
        logger.info("inside")
    logger.info("outside")
    inside, outside = lines(stream)
    context = span.get_span_context()
    assert (inside["trace_id"], inside["span_id"]) == (
        format(context.trace_id, "032x"),
        format(context.span_id, "016x"),
    )
    assert "trace_id" not in outside


def test_a_text_line_carries_the_extra_fields_a_retry_logs() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter("deals"))
    logger = logging.getLogger("shared.outbox.text-test")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.warning("relay batch failed; retrying", extra={"error": "NotEnoughReplicas()"})
    logger.warning("nothing else to say")
    first, second = stream.getvalue().splitlines()
    assert first.endswith("relay batch failed; retrying [error=NotEnoughReplicas()]")
    assert second.endswith("nothing else to say")
