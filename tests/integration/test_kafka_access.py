"""The broker is closed: no credentials, no access; each service's principal may write only
the topics it produces and read only those it consumes, through its own groups; the same over
TLS; and standard tools (kcat) connect with `deploy/local-stack.sh client-config`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    TopicAuthorizationFailedError,
)
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ConfigResource,
    ResourcePatternType,
    ResourceType,
)

from deploy.kafka_access import acl_filter, apply, reconcile_topics
from shared.kafka_client import KafkaConnection
from shared.outbox import make_producer
from shared.topics import (
    ATTRIBUTION_CREDITS,
    DEAL_OPPORTUNITIES,
    Topic,
    TopicLayout,
    TopicsNotCreated,
    ensure_topics,
)
from tests.support.infra import ROOT, Infra, missing_capability
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


async def produce(kafka: KafkaConnection, topic: str) -> None:
    producer = make_producer(kafka, f"acl-test-{uuid.uuid4().hex[:6]}")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"{}", key=b"acl-test")
    finally:
        await producer.stop()


async def consume_one(kafka: KafkaConnection, topic: str, group: str | None) -> None:
    consumer = AIOKafkaConsumer(
        topic, **kafka.aiokafka_options(), group_id=group, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()


async def test_a_client_without_credentials_or_with_a_wrong_password_cannot_connect(
    infra: Infra,
) -> None:
    anonymous = KafkaConnection(
        bootstrap_servers=infra.kafka.bootstrap_servers, security_protocol="PLAINTEXT"
    )
    producer = AIOKafkaProducer(**anonymous.aiokafka_options(), request_timeout_ms=5000)
    with pytest.raises(KafkaConnectionError):
        await producer.start()
    await producer.stop()
    wrong = infra.service_kafka("deals").as_principal("deals", "not-the-password")
    with pytest.raises(KafkaConnectionError):
        await produce(wrong, DEAL_OPPORTUNITIES.name)


async def test_a_service_writes_its_own_topic_and_is_refused_anothers(infra: Infra) -> None:
    deals = infra.service_kafka("deals")
    await produce(deals, DEAL_OPPORTUNITIES.name)
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(deals, ATTRIBUTION_CREDITS.name)


async def test_a_topic_the_broker_refuses_to_create_stops_the_start_naming_it(
    infra: Infra,
) -> None:
    """Found in review: the broker's per-topic refusals were never read, so a service logged
    "created topics" for topics its principal may not create and failed later, no cause named."""
    name = f"pollinate.unprovisioned-{uuid.uuid4().hex[:8]}.v1"
    unprovisioned = Topic(name, "deals", "test", 1, "a topic nobody provisioned")
    with pytest.raises(TopicsNotCreated) as refused:
        await ensure_topics(infra.service_kafka("deals"), [unprovisioned], attempts=1)
    assert list(refused.value.refused) == [name]
    assert "TopicAuthorizationFailedError" in str(refused.value)


async def test_a_service_reads_only_what_it_consumes_and_only_in_its_own_groups(
    infra: Infra,
) -> None:
    await produce(infra.service_kafka("deals"), DEAL_OPPORTUNITIES.name)
    attribution = infra.service_kafka("attribution")
    await consume_one(attribution, DEAL_OPPORTUNITIES.name, f"attribution.t{uuid.uuid4().hex[:6]}")
    with pytest.raises(GroupAuthorizationFailedError):
        await consume_one(attribution, DEAL_OPPORTUNITIES.name, "deals.crm-projection")
    with pytest.raises(TopicAuthorizationFailedError):
        await consume_one(infra.service_kafka("incentives"), DEAL_OPPORTUNITIES.name, None)


def tls_connection(infra: Infra, service: str, cafile: str) -> KafkaConnection:
    bootstrap = os.environ.get("POLLINATE_KAFKA_TLS_BOOTSTRAP")
    if not bootstrap:
        missing_capability(
            "the local stack's TLS listener (POLLINATE_KAFKA_TLS_BOOTSTRAP) is unset"
        )
    return infra.service_kafka(service).model_copy(
        update={
            "bootstrap_servers": bootstrap,
            "security_protocol": "SASL_SSL",
            "ssl_cafile": cafile,
        }
    )


async def test_the_tls_listener_checks_the_broker_against_the_stacks_ca(infra: Infra) -> None:
    cafile = os.environ.get("POLLINATE_KAFKA_CA", "")
    await produce(tls_connection(infra, "deals", cafile), DEAL_OPPORTUNITIES.name)
    # The system's trust store does not know the stack's CA: the handshake is refused.
    with pytest.raises(KafkaConnectionError):
        await produce(tls_connection(infra, "deals", ""), DEAL_OPPORTUNITIES.name)


def admin_client(infra: Infra) -> AdminClient:
    return AdminClient(infra.kafka.librdkafka_properties())


async def test_provisioning_makes_the_acls_exactly_the_registrys(infra: Infra) -> None:
    stray = AclBinding(
        ResourceType.TOPIC,
        ATTRIBUTION_CREDITS.name,
        ResourcePatternType.LITERAL,
        "User:deals",
        "*",
        AclOperation.WRITE,
        AclPermissionType.ALLOW,
    )
    client = admin_client(infra)
    for future in client.create_acls([stray]).values():
        future.result(timeout=30)
    try:
        summary = await asyncio.to_thread(apply, infra.kafka, infra.kafka_credentials)
        assert "ACLs 0 created, 1 deleted" in summary
        with pytest.raises(TopicAuthorizationFailedError):
            await produce(infra.service_kafka("deals"), ATTRIBUTION_CREDITS.name)
        again = await asyncio.to_thread(apply, infra.kafka, infra.kafka_credentials)
        assert "ACLs 0 created, 0 deleted" in again
    finally:
        # Gone already when the test passes; this cleans up after a failure.
        for future in client.delete_acls([acl_filter(stray)]).values():
            future.result(timeout=30)


async def test_topics_follow_the_registry_and_the_layout_as_far_as_kafka_can(
    infra: Infra,
) -> None:
    """A new topic gets the registry's partitions and retention and the layout's replication
    and min.insync.replicas; partitions the registry adds are added; a registry asking for
    fewer is reported, not ignored; a replication factor the brokers cannot give is refused
    with the broker's reason."""
    client = admin_client(infra)
    name = f"test.layout-{uuid.uuid4().hex[:8]}.v1"
    topic = Topic(name, "deals", "test", 2, "a test topic", retention_hours=24)
    layout = TopicLayout(replication_factor=1, min_insync_replicas=1)
    try:
        assert reconcile_topics(client, layout, [topic]).created == [name]

        def partitions() -> int:
            found = client.list_topics(name, timeout=30).topics.get(name)
            return 0 if found is None or found.error else len(found.partitions)

        async def visible(count: int) -> bool:
            return await asyncio.to_thread(partitions) == count

        # The broker's metadata answers what a creation did a moment later; on a cluster each
        # broker learns of it on its own, and the one answering a describe may be another.
        await eventually(lambda: visible(2))
        resource = ConfigResource(ResourceType.TOPIC, name)

        def described() -> Any:
            try:
                return client.describe_configs([resource])[resource].result(timeout=30)
            except KafkaException as error:
                if error.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise
                return None

        async def configs_known() -> Any:
            return await asyncio.to_thread(described)

        configs = await eventually(configs_known, what=f"the broker asked to describe {name}")
        assert configs["retention.ms"].value == str(24 * 3600 * 1000)
        assert configs["min.insync.replicas"].value == "1"

        grown = reconcile_topics(client, layout, [replace(topic, partitions=4)])
        assert grown.grown == [f"{name} (2 -> 4)"]
        await eventually(lambda: visible(4))
        shrunk = reconcile_topics(client, layout, [replace(topic, partitions=3)])
        assert shrunk.cannot_shrink == [f"{name} has 4 partitions, the registry says 3"]
        assert "NOT shrunk" in shrunk.summary()

        # A layout wanting more replicas than the topic has (an upgrade from one that made
        # one): its min.insync.replicas stays within them, or every acks=all write would be
        # refused, and the report says the topic is short.
        replicas = len(
            next(
                iter(client.list_topics(name, timeout=30).topics[name].partitions.values())
            ).replicas
        )
        short = reconcile_topics(
            client, TopicLayout(replicas + 1, replicas + 1), [replace(topic, partitions=4)]
        )
        assert short.under_replicated == [
            f"{name} has {replicas}, the layout {replicas + 1} (min.insync.replicas {replicas}"
            " meanwhile)"
        ]
        assert "FEWER REPLICAS" in short.summary()
        await produce(infra.kafka, name)  # still writable with acks=all

        # One more replica than there are brokers (one, or a cluster's three).
        brokers = len(client.list_topics(timeout=30).brokers)
        too_many = replace(topic, name=f"{name}-rf{brokers + 1}")
        with pytest.raises(
            SystemExit, match=f"replication factor of {brokers + 1} cannot be reached"
        ):
            reconcile_topics(client, TopicLayout(brokers + 1, 2), [too_many])
    finally:
        for future in client.delete_topics([name]).values():
            future.result(timeout=30)


def test_a_layout_that_makes_no_sense_is_refused() -> None:
    with pytest.raises(ValueError, match="between 1 and the replication factor"):
        TopicLayout(replication_factor=1, min_insync_replicas=2)
    assert TopicLayout.from_env({"KAFKA_TOPIC_REPLICATION_FACTOR": "3"}) == TopicLayout(3, 2)
    assert TopicLayout.from_env({}) == TopicLayout(1, 1)


def kcat_environment(tmp_path: Path) -> dict[str, str]:
    """kcat from Debian, with the librdkafka the confluent-kafka wheel ships: Debian 12's
    librdkafka 2.0.2 cannot log in with SCRAM (a nonce bug, fixed in 2.6.1)."""
    import confluent_kafka

    if subprocess.run(["which", "kcat"], capture_output=True).returncode != 0:
        missing_capability("kcat is not installed (make test installs it when run as root)")
    libs = Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
    library = next(libs.glob("librdkafka-*.so.1"))
    (tmp_path / "librdkafka.so.1").symlink_to(library)
    return {**os.environ, "LD_LIBRARY_PATH": str(tmp_path)}


def client_config(tmp_path: Path, principal: str) -> Path:
    properties = subprocess.run(
        [str(ROOT / "deploy" / "local-stack.sh"), "client-config", principal],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = tmp_path / f"{principal}.properties"
    path.write_text(properties)
    return path


def kcat_produce(
    env: dict[str, str], topic: str, *options: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kcat", *options, "-P", "-t", topic, "-k", "kcat-test"],
        input="{}\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_kcat_with_the_printed_client_config(infra: Infra, tmp_path: Path) -> None:
    env = kcat_environment(tmp_path)
    deals = client_config(tmp_path, "deals")
    allowed = kcat_produce(env, DEAL_OPPORTUNITIES.name, "-F", str(deals))
    assert allowed.returncode == 0, allowed.stderr
    refused = kcat_produce(env, ATTRIBUTION_CREDITS.name, "-F", str(deals))
    assert refused.returncode != 0
    assert "Topic authorization failed" in refused.stderr
    # Without credentials no broker lets it in: one broker's refusal ends kcat at once, but
    # with a cluster's three it waits out the message timeout (five minutes by default).
    anonymous = kcat_produce(
        env,
        DEAL_OPPORTUNITIES.name,
        *("-b", infra.kafka.bootstrap_servers, "-m", "10", "-X", "message.timeout.ms=10000"),
    )
    assert anonymous.returncode != 0
    consume = ["-C", "-t", DEAL_OPPORTUNITIES.name, "-o", "beginning", "-e", "-m", "10"]
    reading = subprocess.run(
        ["kcat", "-b", infra.kafka.bootstrap_servers, *consume],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert reading.returncode != 0
