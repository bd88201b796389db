"""The CRM projection applied where a change is received: in the transaction of the webhook
delivery that records it, so the opportunity's new state leaves with the change itself instead
of after a trip through Kafka and deals' own consumer (README, issue 23: one transaction, one
relay pass and one consumer pick-up less per change).

The change still goes out on crm.deals.v1 for every other reader. Deals' crm-projection group
finds its inbox row already written here and skips it. When the projection cannot take a
delivery (a value its columns refuse, a deadlock with the consumer), a savepoint undoes the
projection alone: the changes stay recorded and the consumer applies them, or parks them with
their reason, as it does for changes published on crm.deals.v1 by anyone else."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from services.deals.crm_merges import follow_merges
from services.deals.crm_projection import apply_crm_changes
from services.deals.policy import PolicyStore
from shared.db import Connection
from shared.events import Envelope
from shared.events.crm import CrmDealChanged
from shared.inbox import record_handled
from shared.outbox import Outbox
from shared.topics import CRM_DEALS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProjectionAtIntake:
    """What the edge needs to project: the consumer group whose work it does (its inbox rows)
    and the rules of engagement in force (a merge settles the registrations it moves)."""

    group_id: str
    policies: PolicyStore | None = None

    async def apply(
        self, conn: Connection, outbox: Outbox, changes: Sequence[Envelope[CrmDealChanged]]
    ) -> bool:
        """Project `changes` (as just recorded, in delivery order) in `conn`'s transaction and
        announce what they changed, as the consumer would. False: left to the consumer."""
        if not changes:
            return True
        try:
            async with conn.transaction():  # a savepoint inside the delivery's transaction
                outgoing = await apply_crm_changes(conn, changes)
                outgoing += await follow_merges(conn, changes, self.policies)
                await outbox.publish_many(conn, outgoing)
                await record_handled(conn, self.group_id, CRM_DEALS.name, changes)
        except Exception:  # any failure: the consumer path applies or parks them, with a reason
            log.warning(
                "CRM changes left to the consumer: the projection refused them at intake",
                extra={"deal_keys": sorted({change.data.deal_key for change in changes})},
                exc_info=True,
            )
            return False
        return True
