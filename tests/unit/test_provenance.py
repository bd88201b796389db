"""A consumed record is believed only when its key, its envelope's subject and (on a topic that
names its aggregate) the payload's aggregate id agree, and its source produces that topic."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import ConsumerRecord

from shared.events import Envelope, EventPayload
from shared.provenance import provenance_mismatch
from shared.topics import ALL_TOPICS, ATTRIBUTION_CREDITS, PARTNER_LIFECYCLE, Topic
from tests.support.factories import credit_issued, partner_state_changed


def record(topic: Topic, key: str | None, envelope: Envelope[Any]) -> ConsumerRecord[Any, Any]:
    value = envelope.to_bytes()
    return ConsumerRecord(
        topic.name,
        0,
        0,
        0,
        0,
        key.encode() if key is not None else None,
        value,
        None,
        0,
        len(value),
        [],
    )


def wrapped(payload: EventPayload, subject: str, source: str) -> Envelope[Any]:
    return Envelope.wrap(payload, source=source, subject=subject)


def test_every_consumed_topic_of_the_registry_names_its_aggregate() -> None:
    consumed = [t for t in ALL_TOPICS if t.consumers and not t.name.endswith(".dlq.v1")]
    assert consumed
    assert [t.name for t in consumed if t.aggregate is None] == []


def test_a_record_whose_parts_agree_is_believed() -> None:
    partner = partner_state_changed(partner_id="p-1")
    envelope = wrapped(partner, "p-1", "pollinate/onboarding")
    assert (
        provenance_mismatch(record(PARTNER_LIFECYCLE, "p-1", envelope), envelope, PARTNER_LIFECYCLE)
        is None
    )


@pytest.mark.parametrize(
    ("key", "subject", "partner_id", "source", "reason"),
    [
        (
            "p-2",
            "p-1",
            "p-1",
            "pollinate/onboarding",
            "record key 'p-2' is not the envelope subject 'p-1'",
        ),
        (
            None,
            "p-1",
            "p-1",
            "pollinate/onboarding",
            "record key '' is not the envelope subject 'p-1'",
        ),
        (
            "p-1",
            "p-1",
            "p-2",
            "pollinate/onboarding",
            "payload partner_id 'p-2' is not the subject 'p-1'",
        ),
        (
            "p-1",
            "p-1",
            "p-1",
            "pollinate/attribution",
            "source 'pollinate/attribution' does not produce partners.lifecycle.v1 "
            "(producers: pollinate/onboarding)",
        ),
    ],
)
def test_a_record_that_disagrees_with_itself_is_refused_with_the_reason(
    key: str | None, subject: str, partner_id: str, source: str, reason: str
) -> None:
    envelope = wrapped(partner_state_changed(partner_id=partner_id), subject, source)
    assert (
        provenance_mismatch(record(PARTNER_LIFECYCLE, key, envelope), envelope, PARTNER_LIFECYCLE)
        == reason
    )


def test_a_credit_names_its_deal() -> None:
    credit = credit_issued(deal_key="salesforce:006A")
    forged = wrapped(credit, "salesforce:006B", "pollinate/attribution")
    assert (
        provenance_mismatch(
            record(ATTRIBUTION_CREDITS, "salesforce:006B", forged), forged, ATTRIBUTION_CREDITS
        )
        == "payload deal_key 'salesforce:006A' is not the subject 'salesforce:006B'"
    )


def test_a_topic_without_a_declared_aggregate_checks_the_key_only() -> None:
    scratch = Topic("test.scratch", "t", "anything", 1, "test")
    envelope = wrapped(partner_state_changed(partner_id="p-9"), "k", "anyone")
    assert provenance_mismatch(record(scratch, "k", envelope), envelope, scratch) is None
    assert provenance_mismatch(record(scratch, "x", envelope), envelope, scratch) is not None
