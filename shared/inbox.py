"""The inbox beside the consumers (shared/consumer.py writes their rows): rows for events a
service applied before Kafka delivered them, and retention (processed event ids are kept only
as long as Kafka could deliver those events again)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from shared.db import Connection, Pool, delete_in_batches
from shared.events import Envelope


async def purge_inbox(pool: Pool, older_than: datetime, batch_size: int = 5_000) -> int:
    """Delete inbox rows processed before `older_than`, a batch per transaction (short locks,
    no long-running delete). Returns how many rows went."""
    return await delete_in_batches(
        pool,
        """DELETE FROM inbox WHERE ctid = ANY(ARRAY(
               SELECT ctid FROM inbox WHERE processed_at < $1 LIMIT $2))""",
        older_than,
        batch_size=batch_size,
    )


async def record_handled(
    conn: Connection, group_id: str, topic: str, envelopes: Sequence[Envelope[Any]]
) -> set[uuid.UUID]:
    """Mark events as handled by the consumer group `group_id`, in the transaction that applies
    them before Kafka delivers them (shared/migrations/0008): when the group reads them, their
    inbox rows are there and they are duplicates. Kafka has not placed them yet, so the rows
    carry no partition or offset. Returns the ids marked now: an event the group handled
    before is not to be applied again."""
    if not envelopes:
        return set()
    if not conn.is_in_transaction():
        raise RuntimeError("an inbox row must share the transaction of the effects it stands for")
    inserted = await conn.fetch(
        """
        INSERT INTO inbox (consumer, event_id, event_type, topic)
        SELECT $1, e.id, e.type, $2 FROM unnest($3::uuid[], $4::text[]) AS e(id, type)
        ON CONFLICT (consumer, event_id) DO NOTHING
        RETURNING event_id
        """,
        group_id,
        topic,
        [envelope.id for envelope in envelopes],
        [envelope.type for envelope in envelopes],
    )
    return {row["event_id"] for row in inserted}
