"""Give the broker the platform's principals, topics and ACLs, read off the topic registry.

    python -m deploy.kafka_access apply --credentials DIR

Connects as the admin principal the `KAFKA_*` variables name and, idempotently:
- upserts a SCRAM-SHA-512 credential for each service principal (`DIR/<service>`, one password
  a file; `deploy/local-stack.sh` makes them at the first start);
- creates every registered topic that does not exist yet (auto-creation is off, and services
  may not create topics) with the registry's partitions and retention and the layout's
  replication factor and `min.insync.replicas` (`KAFKA_TOPIC_REPLICATION_FACTOR`, default 1;
  `KAFKA_TOPIC_MIN_INSYNC_REPLICAS`, default 1 on one broker, 2 on more); on an existing topic
  it sets the same configs, adds partitions the registry added, and reports (never ignores) a
  registry that asks for fewer partitions than a topic has: Kafka cannot remove partitions,
  and keys would move if it could;
- makes the ACLs exactly `shared.topics.grants()`: each service may WRITE the topics it
  produces, READ those it consumes and its own consumer groups; an ACL of a service principal
  that the registry no longer grants is deleted.

confluent-kafka is used here because aiokafka has no ACL or SCRAM-user API.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from shared.kafka_client import KafkaConnection
from shared.topics import ALL_TOPICS, SERVICES, Grant, Topic, TopicLayout, grants

SCRAM_ITERATIONS = 8192
TIMEOUT = 30.0


def binding(grant: Grant) -> AclBinding:
    return AclBinding(
        ResourceType.TOPIC if grant.resource == "topic" else ResourceType.GROUP,
        grant.name,
        ResourcePatternType.PREFIXED if grant.prefixed else ResourcePatternType.LITERAL,
        f"User:{grant.principal}",
        "*",
        AclOperation[grant.operation],
        AclPermissionType.ALLOW,
    )


def _key(acl: AclBinding) -> tuple[Any, ...]:
    """What makes an ACL itself: its resource, pattern, principal, host, operation and
    permission (the arguments of AclBinding and AclBindingFilter, in their order)."""
    return (
        acl.restype,
        acl.name,
        acl.resource_pattern_type,
        acl.principal,
        acl.host,
        acl.operation,
        acl.permission_type,
    )


def acl_filter(acl: AclBinding) -> AclBindingFilter:
    """The filter that matches exactly `acl` (what delete_acls takes)."""
    return AclBindingFilter(*_key(acl))


def read_credentials(directory: Path, principals: Iterable[str]) -> dict[str, str]:
    passwords: dict[str, str] = {}
    for principal in principals:
        path = directory / principal
        if not path.is_file():
            raise SystemExit(f"no password for the Kafka principal {principal!r}: {path} missing")
        passwords[principal] = path.read_text().strip()
    return passwords


def wait_until_authenticated(client: AdminClient, deadline: float, brokers: int = 1) -> None:
    """The broker's port opens before it answers authenticated requests: ask it for metadata,
    until it names `brokers` brokers (a cluster's nodes register one by one, and a topic with
    replication factor 3 cannot be placed on fewer)."""
    while True:
        try:
            seen = len(client.list_topics(timeout=5).brokers)
            if seen >= brokers:
                return
            error: object = f"{seen} of {brokers} brokers registered"
        except KafkaException as refused:
            error = refused
        if time.monotonic() > deadline:
            raise SystemExit(f"the cluster is not ready for the admin principal: {error}")
        time.sleep(0.5)


def upsert_users(client: AdminClient, passwords: dict[str, str]) -> None:
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upserts = [
        UserScramCredentialUpsertion(user, info, password.encode())
        for user, password in passwords.items()
    ]
    for future in client.alter_user_scram_credentials(upserts).values():
        future.result(timeout=TIMEOUT)


@dataclass
class TopicReport:
    created: list[str] = field(default_factory=list)
    grown: list[str] = field(default_factory=list)
    # A registry asking for fewer partitions than a topic has: left as it is, and said.
    cannot_shrink: list[str] = field(default_factory=list)
    # Topics with fewer replicas than the layout wants: Kafka does not add replicas to a topic
    # (a reassignment does), so their min.insync.replicas is kept at what they hold, and said.
    under_replicated: list[str] = field(default_factory=list)
    # Settings changed back to the registry's and the layout's (each said, with what it was),
    # and a dead-letter topic's longer retention kept (an operator's, while letters wait for a
    # fix): found in review, every run reset it without a word, and the broker then deleted
    # week-old letters on the very deploy that carried their fix.
    reconfigured: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{len(self.created)} topic(s) created"]
        if self.reconfigured:
            parts.append(f"settings restored: {'; '.join(self.reconfigured)}")
        if self.kept:
            parts.append(f"kept: {'; '.join(self.kept)}")
        if self.under_replicated:
            parts.append(
                "FEWER REPLICAS than the layout (raise them with kafka-reassign-partitions): "
                + "; ".join(self.under_replicated)
            )
        if self.grown:
            parts.append(f"partitions added to {', '.join(self.grown)}")
        if self.cannot_shrink:
            parts.append(
                f"NOT shrunk (Kafka cannot remove partitions): {'; '.join(self.cannot_shrink)}"
            )
        return ", ".join(parts)


def reconcile_topics(
    client: AdminClient, layout: TopicLayout, topics: Iterable[Topic] = ALL_TOPICS
) -> TopicReport:
    """Make the broker's topics what the registry and the layout say, as far as Kafka can."""
    wanted = list(topics)
    existing = client.list_topics(timeout=TIMEOUT).topics
    report = TopicReport()
    missing = [topic for topic in wanted if topic.name not in existing]
    if missing:
        futures = client.create_topics(
            [
                NewTopic(
                    topic.name,
                    topic.partitions,
                    layout.replication_factor,
                    config=layout.configs(topic),
                )
                for topic in missing
            ]
        )
        for name, future in futures.items():
            try:
                future.result(timeout=TIMEOUT)
            except KafkaException as error:
                if error.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue  # made meanwhile (another provisioning run): it is there
                raise SystemExit(f"could not create topic {name}: {error.args[0].str()}") from error
        report.created = [topic.name for topic in missing]
    present = [topic for topic in wanted if topic.name in existing]
    grow = []
    for topic in present:
        has = len(existing[topic.name].partitions)
        if has < topic.partitions:
            grow.append(NewPartitions(topic.name, topic.partitions))
            report.grown.append(f"{topic.name} ({has} -> {topic.partitions})")
        elif has > topic.partitions:
            report.cannot_shrink.append(
                f"{topic.name} has {has} partitions, the registry says {topic.partitions}"
            )
    if grow:
        for future in client.create_partitions(grow).values():
            future.result(timeout=TIMEOUT)
    if present:
        current = described_configs(client, [topic.name for topic in present])
        resources = []
        for topic in present:
            wanted_configs = layout.configs(topic)
            replicas = min(len(p.replicas) for p in existing[topic.name].partitions.values())
            if replicas < layout.replication_factor:
                # Found in review: an upgrade from a chart that made one replica set
                # min.insync.replicas to 2 on it, and every acks=all write was refused.
                kept = min(layout.min_insync_replicas, replicas)
                wanted_configs["min.insync.replicas"] = str(kept)
                report.under_replicated.append(
                    f"{topic.name} has {replicas}, the layout {layout.replication_factor}"
                    f" (min.insync.replicas {kept} meanwhile)"
                )
            configs = settled_configs(topic, wanted_configs, current[topic.name], report)
            resources.append(
                ConfigResource(
                    ResourceType.TOPIC,
                    topic.name,
                    incremental_configs=[
                        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
                        for name, value in configs.items()
                    ],
                )
            )
        for future in client.incremental_alter_configs(resources).values():
            future.result(timeout=TIMEOUT)
    return report


def described_configs(client: AdminClient, names: list[str]) -> dict[str, dict[str, str]]:
    """Each topic's settings as the broker holds them now (name -> value)."""
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
    answers = client.describe_configs(resources)
    return {
        resource.name: {
            key: entry.value
            for key, entry in answers[resource].result(timeout=TIMEOUT).items()
            if entry.value is not None
        }
        for resource in resources
    }


def settled_configs(
    topic: Topic, wanted: dict[str, str], current: dict[str, str], report: TopicReport
) -> dict[str, str]:
    """The settings to set on an existing topic: the registry's and the layout's, a change from
    what it holds said in `report`; a dead-letter topic keeps a longer retention than the
    registry's. Other topics do not: their consumers' inboxes forget an event id after the
    topics' retention (INBOX_RETENTION_HOURS), so a longer one could deliver an event again
    that an inbox no longer knows."""
    settled = dict(wanted)
    retention = current.get("retention.ms", "")
    held = int(retention) if retention.lstrip("-").isdigit() else None
    # -1 is Kafka's "kept for ever", the longest of all (found in review: it was reset).
    if (
        topic.name.endswith(".dlq.v1")
        and held is not None
        and (held < 0 or held > int(wanted["retention.ms"]))
    ):
        settled["retention.ms"] = retention
        report.kept.append(f"{topic.name} retention.ms {retention} (longer than the registry's)")
    for name, value in settled.items():
        if name in current and current[name] != value:
            report.reconfigured.append(f"{topic.name} {name} {current[name]} -> {value}")
    return settled


def sync_acls(client: AdminClient, wanted: Iterable[Grant]) -> tuple[int, int]:
    """Create the missing ACLs and delete the service principals' ACLs nobody grants any more.
    Returns (created, deleted)."""
    desired = {_key(binding(grant)): binding(grant) for grant in wanted}
    everything = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        None,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    existing = client.describe_acls(everything).result(timeout=TIMEOUT)
    managed = {f"User:{service}" for service in SERVICES}
    present = {_key(acl) for acl in existing}
    stale = [acl for acl in existing if acl.principal in managed and _key(acl) not in desired]
    missing = [acl for key, acl in desired.items() if key not in present]
    if missing:
        for future in client.create_acls(missing).values():
            future.result(timeout=TIMEOUT)
    if stale:
        for future in client.delete_acls([acl_filter(acl) for acl in stale]).values():
            future.result(timeout=TIMEOUT)
    return len(missing), len(stale)


def apply(admin: KafkaConnection, credentials: Path) -> str:
    client = AdminClient(admin.librdkafka_properties())
    layout = TopicLayout.from_env(os.environ)
    # A cluster's nodes register one by one after their ports open: slow on a busy machine.
    registered_by = time.monotonic() + 4 * TIMEOUT
    wait_until_authenticated(client, registered_by, layout.replication_factor)
    upsert_users(client, read_credentials(credentials, SERVICES))
    topics = reconcile_topics(client, layout)
    created, deleted = sync_acls(client, grants())
    return (
        f"kafka access: principals {', '.join(SERVICES)}; "
        f"{topics.summary()}; ACLs {created} created, {deleted} deleted"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["apply"])
    parser.add_argument("--credentials", type=Path, required=True)
    args = parser.parse_args()
    print(apply(KafkaConnection.from_env(os.environ), args.credentials), file=sys.stderr)


if __name__ == "__main__":
    main()
