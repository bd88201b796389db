"""Whether a consumed record can be believed as it stands: its key, its payload's aggregate and
its producer must agree with each other and with the topic registry."""

from __future__ import annotations

from typing import Any

from aiokafka import ConsumerRecord

from shared.events import Envelope
from shared.topics import Topic, service_source


def provenance_mismatch(
    record: ConsumerRecord[Any, Any], envelope: Envelope[Any], topic: Topic | None
) -> str | None:
    """Why a record cannot be believed as it stands, or None. Its Kafka key must be the
    envelope's subject; on a topic that names its aggregate, the payload must be about that
    same aggregate and the envelope must come from one of the topic's producers. A record
    that names one aggregate in its key and another in its payload is never applied."""
    key = (record.key or b"").decode(errors="replace")
    if key != envelope.subject:
        return f"record key {key[:200]!r} is not the envelope subject {envelope.subject[:200]!r}"
    if topic is None or topic.aggregate is None:
        return None
    named = getattr(envelope.data, topic.aggregate, None)
    if named != envelope.subject:
        return (
            f"payload {topic.aggregate} {str(named)[:200]!r} is not the subject "
            f"{envelope.subject[:200]!r}"
        )
    producers = [service_source(service) for service in topic.producing_services]
    if envelope.source not in producers:
        return (
            f"source {envelope.source[:200]!r} does not produce {topic.name} "
            f"(producers: {', '.join(producers)})"
        )
    return None
