"""Inbox retention: the processed event ids a service's consumers keep only as long as Kafka
could deliver those events again (shared/consumer.py writes them)."""

from __future__ import annotations

from datetime import datetime

from shared.db import Pool


async def purge_inbox(pool: Pool, older_than: datetime, batch_size: int = 5_000) -> int:
    """Delete inbox rows processed before `older_than`, a batch per transaction (short locks,
    no long-running delete). Returns how many rows went."""
    purged = 0
    while True:
        result = await pool.execute(
            """DELETE FROM inbox WHERE ctid = ANY(ARRAY(
                   SELECT ctid FROM inbox WHERE processed_at < $1 LIMIT $2))""",
            older_than,
            batch_size,
        )
        deleted = int(result.split()[-1])
        purged += deleted
        if deleted < batch_size:
            return purged
