"""Event contracts: the CloudEvents envelope, typed payloads and the event-type registry."""

from shared.events.envelope import (
    CLOUDEVENTS_CONTENT_TYPE,
    Envelope,
    EventPayload,
    InvalidEvent,
    UtcDatetime,
    as_utc,
    decode_envelope,
    event_type,
    header_text,
    header_texts,
    payload_model_for,
    registered_event_types,
)

__all__ = [
    "CLOUDEVENTS_CONTENT_TYPE",
    "Envelope",
    "EventPayload",
    "InvalidEvent",
    "UtcDatetime",
    "as_utc",
    "decode_envelope",
    "event_type",
    "header_text",
    "header_texts",
    "payload_model_for",
    "registered_event_types",
]
