"""Tracing when nothing exports spans: what starts here is not recorded, yet the trace goes on
across hops, and a trace a caller sampled stays sampled for the services after this one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.tracing import context_from_traceparent, current_traceparent, traceparent_of

ROOT = Path(__file__).resolve().parents[2]

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
    recording = [first.is_recording()]
with tracer.start_as_current_span("consume", context=context_from_traceparent(written)) as then:
    passed_on = current_traceparent()
    recording.append(then.is_recording())
sampled_upstream = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
with tracer.start_as_current_span(
    "consume", context=context_from_traceparent(sampled_upstream)
) as kept:
    kept_on = current_traceparent()
    recording.append(kept.is_recording())
print(json.dumps({
    "recording": recording,
    "trace_ids": [first.get_span_context().trace_id, then.get_span_context().trace_id],
    "span_ids": [first.get_span_context().span_id, then.get_span_context().span_id],
    "written": written,
    "passed_on": passed_on,
    "kept_on": kept_on,
}))
"""


def test_without_an_exporter_spans_are_not_recorded_but_the_trace_id_carries_on() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=ROOT,
    )
    seen = json.loads(done.stdout)
    assert seen["recording"] == [False, False, True]
    first_trace, next_trace = seen["trace_ids"]
    assert first_trace != 0
    assert next_trace == first_trace
    assert seen["span_ids"][0] != seen["span_ids"][1]  # a span of its own, parented by the first
    assert seen["written"].split("-")[1] == seen["passed_on"].split("-")[1] == f"{first_trace:032x}"
    assert not int(seen["passed_on"].split("-")[3], 16) & 1  # started here: not sampled
    # A caller's sampled trace is passed on sampled, under its own trace id.
    _, trace_id, _, flags = seen["kept_on"].split("-")
    assert trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert int(flags, 16) & 1


def test_a_spans_traceparent_is_the_header_the_propagator_writes_for_it() -> None:
    """`traceparent_of` formats the header itself; it must be the W3C propagator's, to the
    flags, for every kind of span a service meets (and nothing for an invalid one)."""
    propagator = TraceContextTextMapPropagator()
    tracer = trace.get_tracer("unit")
    upstream = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0{}"
    spans = [
        tracer.start_span("root"),
        tracer.start_span("child", context=context_from_traceparent(upstream.format(0))),
        tracer.start_span("child", context=context_from_traceparent(upstream.format(1))),
        trace.NonRecordingSpan(trace.INVALID_SPAN_CONTEXT),
        trace.NonRecordingSpan(trace.SpanContext(1, 0, is_remote=False)),
        trace.NonRecordingSpan(
            trace.SpanContext(
                5, 7, True, trace.TraceFlags(3), trace.TraceState([("vendor", "value")])
            )
        ),
    ]
    for span in spans:
        carrier: dict[str, str] = {}
        propagator.inject(carrier, context=trace.set_span_in_context(span))
        assert traceparent_of(span) == carrier.get("traceparent")
        with trace.use_span(span):
            assert current_traceparent() == carrier.get("traceparent")
    assert traceparent_of(spans[3]) is None


def _plain(trace_id: int, span_id: int, flags: int) -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"


plain_traceparents = st.builds(
    _plain,
    st.sampled_from([0, 1]) | st.integers(0, (1 << 128) - 1),
    st.sampled_from([0, 1]) | st.integers(0, (1 << 64) - 1),
    st.integers(0, 255),
)
# Headers that are not the plain form: other versions, upper case, spaces, extensions, noise.
other_traceparents = (
    plain_traceparents.map(str.upper)
    | plain_traceparents.map(lambda tp: f" {tp}\t")
    | plain_traceparents.map(lambda tp: f"{tp}-extra")
    | plain_traceparents.map(lambda tp: "01" + tp[2:] + "-future")
    | plain_traceparents.map(lambda tp: "ff" + tp[2:])
    | plain_traceparents.map(lambda tp: tp[:-1])
    | st.text(max_size=60)
)


@given(st.none() | plain_traceparents | other_traceparents)
def test_a_traceparent_gives_the_context_the_propagator_extracts(traceparent: str | None) -> None:
    """`context_from_traceparent` reads the plain header itself: the parent it gives must be
    the W3C propagator's for any header, valid or not."""
    mine = context_from_traceparent(traceparent)
    carrier = {} if traceparent is None else {"traceparent": traceparent}
    expected = TraceContextTextMapPropagator().extract(carrier)
    assert dict(mine).keys() == dict(expected).keys()
    mine_parent = trace.get_current_span(mine).get_span_context()
    expected_parent = trace.get_current_span(expected).get_span_context()
    assert mine_parent == expected_parent
    assert (mine_parent.is_remote, mine_parent.trace_flags, mine_parent.trace_state) == (
        expected_parent.is_remote,
        expected_parent.trace_flags,
        expected_parent.trace_state,
    )
