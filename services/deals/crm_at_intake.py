"""The CRM projection applied where a change is received: in the transaction of the webhook
delivery that records it, so the opportunity's new state leaves with the change itself instead
of after a trip through Kafka and deals' own consumer (README, issue 23: one transaction, one
relay pass and one consumer pick-up less per change).

The change still goes out on crm.deals.v1 for every other reader. Deals' crm-projection group
finds its inbox row already written here and skips it. Both take the deals' advisory locks
first, all at once in ascending order (`repository.lock_crm_deal_keys`), so an intake and the
consumer never create the same new opportunity at once nor lock two in opposite orders.

When the projection refuses a change (a value its columns cannot hold), a savepoint undoes the
projection alone: the delivery is then projected a change at a time, and only a change refused
on its own is left to the consumer, which parks it with its reason as it does for a change any
other producer publishes on crm.deals.v1. A database out of reach or a collision with concurrent
work is not a refusal: the delivery fails whole (503) and its sender retries it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from services.deals.crm_merges import project_crm_changes
from services.deals.policy import PolicyStore
from shared.db import DATABASE_UNAVAILABLE, TRANSACTION_COLLISIONS, Connection
from shared.events import Envelope
from shared.events.crm import CrmDealChanged
from shared.inbox import record_handled
from shared.outbox import Outbox
from shared.topics import CRM_DEALS

log = logging.getLogger(__name__)
RETRY_THE_DELIVERY = (*DATABASE_UNAVAILABLE, *TRANSACTION_COLLISIONS)


def left_to_consumer_counter(registry: CollectorRegistry) -> Counter:
    return Counter(
        "pollinate_crm_changes_left_to_consumer",
        "CRM changes the projection refused at intake, left to deals' crm-projection consumer",
        registry=registry,
    )


@dataclass(frozen=True)
class ProjectionAtIntake:
    """What the edge needs to project: the consumer group whose work it does (its inbox rows),
    the rules of engagement in force (a merge settles the registrations it moves) and where to
    count the changes it leaves to the consumer."""

    group_id: str
    policies: PolicyStore | None = None
    left_to_consumer: Counter | None = None

    async def apply(
        self, conn: Connection, outbox: Outbox, changes: Sequence[Envelope[CrmDealChanged]]
    ) -> None:
        """Project `changes` (as just recorded, in delivery order) in `conn`'s transaction and
        announce what they changed, as the consumer would. The caller holds their deals' locks
        (`crm_ingestion.record_items` takes them before it records the changes)."""
        if not changes:
            return
        if len(changes) > 1:
            refusal = await self._project(conn, outbox, changes)
            if refusal is None:
                return
            log.info(
                "the projection refused a CRM delivery at intake: projecting it change by change",
                extra={"changes": len(changes), "error": repr(refusal)},
            )
        for change in changes:
            refusal = await self._project(conn, outbox, [change])
            if refusal is not None:
                log.warning(
                    "a CRM change is left to the consumer: the projection refused it at intake",
                    extra={"deal_key": change.data.deal_key, "event_id": str(change.id)},
                    exc_info=refusal,
                )
                if self.left_to_consumer is not None:
                    self.left_to_consumer.inc()

    async def _project(
        self, conn: Connection, outbox: Outbox, changes: Sequence[Envelope[CrmDealChanged]]
    ) -> Exception | None:
        """In a savepoint: the group's inbox rows first, then the changes not handled before
        (a change redelivered after the outbox forgot it is still in the inbox) projected.
        Returns why the projection refused them (None: projected)."""
        try:
            async with conn.transaction():
                fresh = await record_handled(conn, self.group_id, CRM_DEALS.name, changes)
                first_seen = [change for change in changes if change.id in fresh]
                outgoing = await project_crm_changes(conn, first_seen, self.policies)
                await outbox.publish_many(conn, outgoing)
        except RETRY_THE_DELIVERY:
            # The database out of reach, or a collision with concurrent work (the consumer
            # included): the delivery fails whole (503) and its sender retries it, so no change
            # of it is applied after the changes that follow it.
            raise
        except Exception as refusal:  # this savepoint's work is undone; the caller decides
            return refusal
        return None
