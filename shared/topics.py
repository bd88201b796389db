"""The topic registry: every topic on the platform, who produces it and what its key is.

Topics are created from this registry (the broker has auto-creation off), so a typo in a topic
name fails loudly instead of silently creating a new topic.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError, for_code

from shared.kafka_client import KafkaConnection

log = logging.getLogger(__name__)

SERVICES = ("onboarding", "deals", "attribution", "incentives", "notifications", "programme")


@dataclass(frozen=True)
class Topic:
    name: str
    owner: str
    key: str
    partitions: int
    description: str
    producers: tuple[str, ...] = ()
    # Event types carried (CloudEvents `type`) and the services consuming the topic; the
    # AsyncAPI document (shared/asyncapi.py) is generated from these and the payload models.
    events: tuple[str, ...] = ()
    consumers: tuple[str, ...] = ()
    # The payload attribute holding the aggregate id. Where a topic names it, consumers check
    # that the record key, the envelope subject and this attribute agree, and that the
    # envelope's source is one of the topic's producers (`pollinate/<service>`).
    aggregate: str | None = None
    # How long the broker keeps records. Consumers forget processed event ids after
    # INBOX_RETENTION_HOURS (168 by default), which is safe only while no topic keeps records
    # longer: a record older than that can never be delivered again.
    retention_hours: int = 168

    @property
    def producing_services(self) -> tuple[str, ...]:
        return self.producers or (self.owner,)


CRM_DEALS = Topic(
    "crm.deals.v1",
    "deals",
    "crm deal id (source:source_id)",
    6,
    "Canonical CRM deal events normalised from upstream CRMs by the deals service's adapters.",
    events=("crm.deal.changed.v1",),
    consumers=("deals",),
    aggregate="deal_key",
)
DEAL_REGISTRATIONS = Topic(
    "deals.registrations.v1",
    "deals",
    "registration id",
    6,
    "Deal registration lifecycle and rules-of-engagement decisions.",
    events=(
        "registration.decided.v1",
        "registration.status_changed.v1",
        "registration.review_escalated.v1",
    ),
    # deals itself: its CRM write-back tells the originating CRM what was decided.
    consumers=("attribution", "deals", "programme"),
    aggregate="registration_id",
)
DEAL_OPPORTUNITIES = Topic(
    "deals.opportunities.v1",
    "deals",
    "crm deal id (source:source_id)",
    6,
    "Merged state of each CRM opportunity after every change, with linked registrations.",
    events=("deal.state_changed.v1",),
    consumers=("attribution",),
    aggregate="deal_key",
)
PARTNER_LIFECYCLE = Topic(
    "partners.lifecycle.v1",
    "onboarding",
    "partner id",
    6,
    "Partner lifecycle: approved, activated, tier changed, authorisations, suspended, expelled.",
    events=("partner.state_changed.v1",),
    # Every service: deals and incentives keep a projection; all follow who lost access.
    consumers=("deals", "incentives", "attribution", "onboarding", "notifications", "programme"),
    aggregate="partner_id",
)
ATTRIBUTION_CREDITS = Topic(
    "attribution.credits.v1",
    "attribution",
    "deal id",
    6,
    "Revenue credits per partner and their corrections (reversal + new credit).",
    events=("credit.issued.v1", "credit.reversed.v1"),
    consumers=("incentives", "onboarding", "programme"),
    aggregate="deal_key",
)
INCENTIVE_LEDGER = Topic(
    "incentives.ledger.v1",
    "incentives",
    "partner id",
    6,
    "Ledger entries: earnings, kickers, reversals, MDF accruals, claim decisions, MDF "
    "pre-approvals of campaigns.",
    events=(
        "incentive.credit_booked.v1",
        "incentive.earned.v1",
        "incentive.reversed.v1",
        "incentive.mdf_accrued.v1",
        "incentive.mdf_expired.v1",
        "incentive.mdf_claim_decided.v1",
        "incentive.payout_recorded.v1",
        "incentive.mdf_preapproval_changed.v1",
    ),
    # Payouts and expired MDF reach partners as messages of the notifications service; the
    # programme's KPIs count the spend.
    consumers=("notifications", "programme"),
    aggregate="partner_id",
)
PARTNER_PROGRAMME = Topic(
    "partners.programme.v1",
    "onboarding",
    "partner id",
    6,
    "The partner programme as onboarding runs it: enablement measured, the programme year's "
    "requalification decisions and appeals, partner account managers.",
    events=(
        "partner.enablement_measured.v1",
        "partner.requalification_decided.v1",
        "partner.requalification_appeal_decided.v1",
        "partner.account_manager_assigned.v1",
    ),
    # attribution: enablement is a signal of the health score (it ignores the others);
    # programme: account managers and annual reviews for its partner projection.
    consumers=("attribution", "programme"),
    aggregate="partner_id",
)
PARTNER_HEALTH = Topic(
    "attribution.health.v1",
    "attribution",
    "partner id",
    6,
    "Partner health scores, a day's score published when it moves.",
    events=("partner.health_scored.v1",),
    # onboarding: health is one of the programme minimums at the annual review; programme:
    # a partner's health in its projection (a manager's book, plans and reviews).
    consumers=("onboarding", "programme"),
    aggregate="partner_id",
)
PARTNER_NOTIFICATIONS = Topic(
    "notifications.partner.v1",
    "deals",
    "partner id",
    6,
    "Notifications for partners and the direct account owners their events concern: one "
    "partner's messages share a key and stay ordered. Internal: the notifications service files "
    "them per recipient and delivers them (inbox, stream, webhooks, e-mail).",
    producers=("deals", "incentives", "onboarding", "attribution", "programme"),
    events=(
        "notification.partner.v1",
        "notification.partner.v2",
        "notification.partner.v3",
        "notification.partner.v4",
        "notification.partner.v5",
    ),
    consumers=("notifications",),
    aggregate="partner_id",
)
PROGRAMME_VOICE = Topic(
    "programme.voice.v1",
    "programme",
    "partner id",
    6,
    "Partner voice: every survey answer (score and NPS category; never the comment or the "
    "person), for health signals.",
    events=("programme.survey_answered.v1",),
    # attribution: a falling NPS or a detractor majority is a health signal.
    consumers=("attribution",),
    aggregate="partner_id",
)
PROGRAMME_KPIS = Topic(
    "programme.kpis.v1",
    "programme",
    "quarter",
    1,
    "Programme KPI snapshots for dashboards: a quarter's headline figures, whenever they change.",
    events=("programme.kpi_snapshot.v1",),
    aggregate="quarter",
)

PROGRAMME_CAMPAIGNS = Topic(
    "programme.campaigns.v1",
    "programme",
    "campaign id",
    6,
    "Co-marketing campaigns: each one when it is created, changed and cancelled (its "
    "partners, dates and state).",
    events=("programme.campaign_changed.v1",),
    # incentives: a pre-approval must name a campaign of the partner that has not ended;
    # attribution: a campaign touchpoint must name a campaign its partner ran at the time.
    consumers=("incentives", "attribution"),
    aggregate="campaign_id",
)


# Where each CRM source's items land exactly as delivered (the route's name: a topic name
# mixing '.' and '_' collides in Kafka's metric names).
RAW_SOURCES = {
    "salesforce": "salesforce",
    "hubspot": "hubspot",
    "aws_ace": "aws-ace",
    "microsoft": "microsoft",
}


def service_source(service: str) -> str:
    """A service's CloudEvents source: how its events name their producer."""
    return f"pollinate/{service}"


def group_id_of(service: str, name: str) -> str:
    """The Kafka consumer group (and inbox `consumer`) of a service's consumer `name`."""
    return f"{service}.{name}"


def raw_crm_topic(source: str) -> Topic:
    """`crm.raw.<source>.v1`: every item a CRM source delivered that deals read (not the
    refused ones, kept in `crm_refused`), verbatim with its delivery's metadata, published by
    deals through its outbox in the transaction that recorded the item. Kept 30 days: no
    Pollinate service consumes it (no inbox to outlive), it is the record of what arrived."""
    name = RAW_SOURCES[source]
    return Topic(
        f"crm.raw.{name}.v1",
        "deals",
        "the deal the item names (source:source_id), else the source",
        6,
        f"Items {name} delivered to deals, exactly as sent, with their delivery's metadata "
        "(read by operators and archival tools, no service).",
        events=("crm.raw.received.v1",),
        retention_hours=720,
    )


RAW_CRM_TOPICS = tuple(raw_crm_topic(source) for source in RAW_SOURCES)


def dead_letter_topic(service: str) -> Topic:
    return Topic(
        f"{service}.dlq.v1",
        service,
        "original key",
        1,
        f"Events the {service} service could not process, with reason and origin in headers.",
        consumers=("operators (python -m shared.dlq)",),
    )


DEAD_LETTERS = tuple(dead_letter_topic(service) for service in SERVICES)

ALL_TOPICS: tuple[Topic, ...] = (
    CRM_DEALS,
    DEAL_REGISTRATIONS,
    DEAL_OPPORTUNITIES,
    PARTNER_LIFECYCLE,
    ATTRIBUTION_CREDITS,
    INCENTIVE_LEDGER,
    PARTNER_PROGRAMME,
    PARTNER_HEALTH,
    PARTNER_NOTIFICATIONS,
    PROGRAMME_VOICE,
    PROGRAMME_KPIS,
    PROGRAMME_CAMPAIGNS,
    *RAW_CRM_TOPICS,
    *DEAD_LETTERS,
)


@dataclass(frozen=True)
class TopicLayout:
    """How topics are laid out on the brokers: the replication factor and the replicas that
    must acknowledge a write (`acks=all` waits for `min.insync.replicas` of them). One broker:
    1 and 1 (the local stack's default); a cluster: 3 and 2, so losing a broker loses nothing
    and refuses nothing."""

    replication_factor: int = 1
    min_insync_replicas: int = 1

    def __post_init__(self) -> None:
        if self.replication_factor < 1:
            raise ValueError("KAFKA_TOPIC_REPLICATION_FACTOR must be at least 1")
        if not 1 <= self.min_insync_replicas <= self.replication_factor:
            raise ValueError(
                "KAFKA_TOPIC_MIN_INSYNC_REPLICAS must be between 1 and the replication factor "
                f"({self.replication_factor})"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> TopicLayout:
        factor = int(environ.get("KAFKA_TOPIC_REPLICATION_FACTOR") or 1)
        default_isr = 1 if factor == 1 else 2
        return cls(factor, int(environ.get("KAFKA_TOPIC_MIN_INSYNC_REPLICAS") or default_isr))

    def configs(self, topic: Topic) -> dict[str, str]:
        return {
            "min.insync.replicas": str(self.min_insync_replicas),
            "retention.ms": str(topic.retention_hours * 3600 * 1000),
        }


def topics_of(service: str) -> tuple[Topic, ...]:
    """The topics a service produces to or consumes from (its dead-letter topic included)."""
    return tuple(
        topic
        for topic in ALL_TOPICS
        if service in topic.producing_services or service in topic.consumers
    )


@dataclass(frozen=True)
class Grant:
    """One Kafka ACL: the principal `User:<principal>` is allowed `operation` on a topic or a
    consumer group, named literally or by prefix."""

    principal: str
    operation: Literal["READ", "WRITE"]
    resource: Literal["topic", "group"]
    name: str
    prefixed: bool = False


def grants(services: Iterable[str] = SERVICES) -> tuple[Grant, ...]:
    """Everything each service's principal may do on the broker, read off the registry: WRITE
    on the topics it produces (its dead letters too), READ on those it consumes, on its own
    dead letters and on its own consumer groups (`<service>.<name>`). Kafka's WRITE and READ
    imply DESCRIBE. Nothing else: no topic creation, no other group, no other topic.
    Operators use the admin principal."""
    plan: list[Grant] = []
    for service in services:
        for topic in ALL_TOPICS:
            if service in topic.producing_services:
                plan.append(Grant(service, "WRITE", "topic", topic.name))
            if service in topic.consumers:
                plan.append(Grant(service, "READ", "topic", topic.name))
        # Its own dead letters, which its admin API lists and replays in place (shared/
        # dead_letters.py): read without a consumer group, so no group grant is needed.
        plan.append(Grant(service, "READ", "topic", dead_letter_topic(service).name))
        plan.append(Grant(service, "READ", "group", f"{service}.", prefixed=True))
    return tuple(plan)


def topic_named(name: str) -> Topic:
    for topic in ALL_TOPICS:
        if topic.name == name:
            return topic
    raise KeyError(f"no topic named {name!r} in the registry")


class TopicsNotCreated(RuntimeError):
    """The broker refused to create topics a service needs (each named, with the broker's
    error): not authorised (provisioning has not created or granted them), a replication
    factor the cluster cannot hold, and the like."""

    def __init__(self, refused: dict[str, str]) -> None:
        self.refused = refused
        named = "; ".join(f"{topic}: {error}" for topic, error in sorted(refused.items()))
        super().__init__(f"the broker refused to create topics: {named}")


def topic_errors(answers: Iterable[Sequence[Any]]) -> dict[str, str]:
    """The topics a CreateTopics answer refused, with the broker's error: each answer is
    (topic, error code[, message]). Found in review: the answer's errors were never read (the
    client does not raise them), so a service logged "created topics" for topics the broker
    had refused, and failed later with no cause named. Another instance creating a topic
    between our list and our create is no refusal."""
    refused = {}
    for answer in answers:
        topic, code = answer[0], answer[1]
        if code in (0, TopicAlreadyExistsError.errno):
            continue
        message = answer[2] if len(answer) > 2 and answer[2] else ""
        name = for_code(code).__name__
        refused[topic] = f"{name}{f' ({message})' if message else ''}"
    return refused


async def ensure_topics(
    kafka: KafkaConnection, topics: Iterable[Topic] = ALL_TOPICS, *, attempts: int = 30
) -> None:
    """Create the topics that do not exist yet (idempotent; retries while the broker starts).

    A service's principal may not create topics: the stack's provisioning (the admin principal)
    has created them all, so a service finds nothing missing; one that does gets the broker's
    authorization error, which names the topic."""
    wanted = list(topics)
    layout = TopicLayout.from_env(os.environ)
    for attempt in range(1, attempts + 1):
        admin = AIOKafkaAdminClient(**kafka.aiokafka_options())
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [t for t in wanted if t.name not in existing]
            if missing:
                response = await admin.create_topics(
                    [
                        NewTopic(
                            t.name,
                            num_partitions=t.partitions,
                            replication_factor=layout.replication_factor,
                            topic_configs=layout.configs(t),
                        )
                        for t in missing
                    ]
                )
                refused = topic_errors(response.topic_errors)
                if refused:
                    raise TopicsNotCreated(refused)
                log.info("created topics", extra={"topics": [t.name for t in missing]})
            return
        except KafkaConnectionError:
            if attempt == attempts:
                raise
            await asyncio.sleep(min(0.2 * attempt, 2.0))
        finally:
            await admin.close()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(
        description="Create every registered Pollinate topic (as the KAFKA_* principal)."
    )
    parser.parse_args()
    asyncio.run(ensure_topics(KafkaConnection.from_env(os.environ)))
    for topic in ALL_TOPICS:
        print(
            f"{topic.name:28} owner={topic.owner:12} partitions={topic.partitions} key={topic.key}"
        )


if __name__ == "__main__":
    main()
