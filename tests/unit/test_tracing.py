"""Tracing when nothing exports spans: none is recorded, yet the trace goes on across hops."""

from __future__ import annotations

import json
import subprocess
import sys

# In a process of its own: the test session installs its own tracer provider, and a process
# gets one provider only.
SCRIPT = """
import json
from opentelemetry import trace
from shared.tracing import configure_tracing, context_from_traceparent, current_traceparent

configure_tracing("unit", "none")
tracer = trace.get_tracer("unit")
with tracer.start_as_current_span("first hop") as first:
    written = current_traceparent()  # what the outbox stores with the event
with tracer.start_as_current_span("consume", context=context_from_traceparent(written)) as then:
    print(json.dumps({
        "recording": [first.is_recording(), then.is_recording()],
        "trace_ids": [first.get_span_context().trace_id, then.get_span_context().trace_id],
        "span_ids": [first.get_span_context().span_id, then.get_span_context().span_id],
        "written": written,
        "next": current_traceparent(),
    }))
"""


def test_without_an_exporter_spans_are_not_recorded_but_the_trace_id_carries_on() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60
    )
    seen = json.loads(done.stdout)
    assert seen["recording"] == [False, False]
    first_trace, next_trace = seen["trace_ids"]
    assert first_trace != 0
    assert next_trace == first_trace
    assert seen["span_ids"][0] != seen["span_ids"][1]  # a span of its own, parented by the first
    assert seen["written"].split("-")[1] == seen["next"].split("-")[1] == f"{first_trace:032x}"
