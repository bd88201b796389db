"""Who may do what on the broker (read off the topic registry) and how clients connect."""

from __future__ import annotations

from dataclasses import replace

import pytest
from faststream.security import SASLScram512
from pydantic import ValidationError

from deploy.kafka_access import TopicReport, settled_configs
from shared.kafka_client import KafkaConnection
from shared.settings import ServiceSettings
from shared.topics import ALL_TOPICS, SERVICES, Grant, dead_letter_topic, grants, topics_of


def topics_granted(principal: str, operation: str) -> set[str]:
    return {
        g.name
        for g in grants()
        if g.principal == principal and g.operation == operation and g.resource == "topic"
    }


def test_deals_writes_its_own_topics_and_notifications_and_reads_what_it_consumes() -> None:
    assert topics_granted("deals", "WRITE") == {
        "crm.deals.v1",
        "deals.registrations.v1",
        "deals.opportunities.v1",
        "notifications.partner.v1",
        "deals.dlq.v1",
        # what each CRM source delivered, exactly as sent
        "crm.raw.salesforce.v1",
        "crm.raw.hubspot.v1",
        "crm.raw.aws-ace.v1",
        "crm.raw.microsoft.v1",
    }
    # deals reads its own registrations for the CRM write-back.
    assert topics_granted("deals", "READ") == {
        "crm.deals.v1",
        "partners.lifecycle.v1",
        "deals.registrations.v1",
        "deals.dlq.v1",
    }


def test_only_deals_writes_the_raw_crm_topics_and_no_service_reads_them() -> None:
    raw = {t.name for t in ALL_TOPICS if t.name.startswith("crm.raw.")}
    assert len(raw) == 4
    for service in SERVICES:
        assert not raw & topics_granted(service, "READ")
        assert bool(raw & topics_granted(service, "WRITE")) == (service == "deals")
    assert {t.retention_hours for t in ALL_TOPICS if t.name in raw} == {720}


def test_each_service_reads_its_own_dead_letters_and_no_other_service_s() -> None:
    for service in SERVICES:
        read = {name for name in topics_granted(service, "READ") if name.endswith(".dlq.v1")}
        assert read == {f"{service}.dlq.v1"}


def test_no_service_may_write_a_topic_another_service_owns_unless_registered_as_producer() -> None:
    for service in SERVICES:
        for name in topics_granted(service, "WRITE"):
            topic = next(t for t in ALL_TOPICS if t.name == name)
            assert service in topic.producing_services


def test_attribution_may_not_write_registrations_nor_read_the_ledger() -> None:
    assert "deals.registrations.v1" not in topics_granted("attribution", "WRITE")
    assert "incentives.ledger.v1" not in topics_granted("attribution", "READ")
    assert topics_granted("attribution", "WRITE") == {
        "attribution.credits.v1",
        "attribution.health.v1",
        "notifications.partner.v1",
        "attribution.dlq.v1",
    }
    # Onboarding's programme facts are read (enablement is a health signal), never written.
    assert "partners.programme.v1" in topics_granted("attribution", "READ")
    assert "partners.programme.v1" not in topics_granted("attribution", "WRITE")


def test_each_service_reads_only_its_own_consumer_groups() -> None:
    groups = [g for g in grants() if g.resource == "group"]
    assert groups == [Grant(s, "READ", "group", f"{s}.", prefixed=True) for s in SERVICES]


def test_a_service_creates_no_topic_it_does_not_use() -> None:
    assert {t.name for t in topics_of("onboarding")} == {
        "partners.lifecycle.v1",
        "partners.programme.v1",
        "attribution.credits.v1",
        "attribution.health.v1",
        "notifications.partner.v1",
        "onboarding.dlq.v1",
    }


def test_sasl_without_credentials_is_refused_with_what_to_set() -> None:
    with pytest.raises(ValidationError, match="needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"):
        KafkaConnection.from_env({"KAFKA_BOOTSTRAP_SERVERS": "k:9092"})


def test_plaintext_must_be_named_and_then_needs_no_credentials() -> None:
    plain = KafkaConnection.from_env({"KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"})
    assert plain.aiokafka_options() == {
        "bootstrap_servers": ["127.0.0.1:9092"],
        "security_protocol": "PLAINTEXT",
    }
    assert plain.faststream_security() is None
    assert plain.principal == "ANONYMOUS"


def test_an_unknown_protocol_is_refused() -> None:
    with pytest.raises(ValidationError, match="security_protocol"):
        KafkaConnection.from_env({"KAFKA_SECURITY_PROTOCOL": "sasl_plaintext"})


def test_one_connection_speaks_to_aiokafka_faststream_and_librdkafka() -> None:
    kafka = KafkaConnection.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "b1:9092,b2:9092",
            "KAFKA_SASL_USERNAME": "deals",
            "KAFKA_SASL_PASSWORD": "s3cret",
        }
    )
    # Every broker of the list, one by one: FastStream takes a string as a single host.
    assert kafka.hosts == ["b1:9092", "b2:9092"]
    assert kafka.aiokafka_options() == {
        "bootstrap_servers": ["b1:9092", "b2:9092"],
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "deals",
        "sasl_plain_password": "s3cret",
    }
    security = kafka.faststream_security()
    assert isinstance(security, SASLScram512)
    assert kafka.librdkafka_properties() == {
        "bootstrap.servers": "b1:9092,b2:9092",
        "security.protocol": "sasl_plaintext",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "deals",
        "sasl.password": "s3cret",
    }
    assert "s3cret" not in repr(kafka)


def test_a_client_certificate_needs_its_key() -> None:
    with pytest.raises(ValidationError, match="go together"):
        KafkaConnection(security_protocol="SSL", ssl_certfile="/c.pem")


def test_service_settings_carry_the_connection_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "incentives")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "pw")
    kafka = ServiceSettings(service_name="incentives").kafka
    assert (kafka.bootstrap_servers, kafka.principal) == ("kafka:9092", "incentives")
    monkeypatch.delenv("KAFKA_SASL_PASSWORD")
    with pytest.raises(ValidationError, match="KAFKA_SASL_PASSWORD"):
        _ = ServiceSettings(service_name="incentives").kafka


def test_provisioning_restores_the_registrys_settings_saying_so_but_a_dlqs_longer_retention() -> (
    None
):
    """Found in review: each run reset a dead-letter topic's retention an operator had raised
    while letters waited for a fix, without a word."""
    week, month = str(168 * 3_600_000), str(30 * 24 * 3_600_000)
    dlq = dead_letter_topic("deals")
    wanted = {"min.insync.replicas": "1", "retention.ms": week}
    report = TopicReport()
    held = {"min.insync.replicas": "1", "retention.ms": month}
    assert settled_configs(dlq, wanted, held, report)["retention.ms"] == month
    assert report.kept == [f"deals.dlq.v1 retention.ms {month} (longer than the registry's)"]
    assert report.reconfigured == []
    # Another topic's inboxes forget an event after the registry's retention: it is restored.
    other = replace(dlq, name="deals.registrations.v1")
    assert settled_configs(other, wanted, held, report)["retention.ms"] == week
    assert report.reconfigured == [f"deals.registrations.v1 retention.ms {month} -> {week}"]
    assert "settings restored: deals.registrations.v1" in report.summary()
    # For ever (-1) is the longest of all.
    forever = TopicReport()
    assert settled_configs(dlq, wanted, {"retention.ms": "-1"}, forever)["retention.ms"] == "-1"
    assert (forever.kept, forever.reconfigured) == (
        ["deals.dlq.v1 retention.ms -1 (longer than the registry's)"],
        [],
    )
    # A shorter one is raised to the registry's on a dead-letter topic too.
    short = TopicReport()
    assert settled_configs(dlq, wanted, {"retention.ms": "1000"}, short)["retention.ms"] == week
    assert short.reconfigured == [f"deals.dlq.v1 retention.ms 1000 -> {week}"]
