"""The SQL of deals' CRM bookkeeping: refused items kept for operators, the queue of records to
fetch again from their CRM (resyncs), the pull sources' checkpoints, reconciliation reports,
and their retention.

Every function runs in the caller's connection (and transaction, where it locks or writes).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from shared.db import Connection, columns


async def record_refused(
    conn: Connection, source: str, at: datetime, items: Sequence[tuple[int, str, bytes]]
) -> None:
    """Delivered items no adapter could read (at least one): (index in the delivery, reason,
    item as sent)."""
    await conn.execute(
        """
        INSERT INTO crm_refused (source, received_at, item_index, reason, item)
        SELECT $1, $2, i.item_index, i.reason, i.item
        FROM unnest($3::int[], $4::text[], $5::bytea[]) AS i(item_index, reason, item)
        """,
        source,
        at,
        *columns(items),
    )


async def schedule_resyncs(
    conn: Connection,
    source: str,
    requests: Sequence[tuple[str, datetime | None]],
    reason: str,
    at: datetime,
) -> None:
    """Ask for records' current state (at least one: record id, or '*' with `since` for a
    window). A pending request stays (its window widens to the earlier start); a done one is
    asked again."""
    await conn.execute(
        """
        INSERT INTO crm_resyncs (source, record_id, since, reason, requested_at, due_at)
        SELECT $1, r.record_id, r.since, $2, $3, $3
        FROM unnest($4::text[], $5::timestamptz[]) AS r(record_id, since)
        ON CONFLICT (source, record_id) DO UPDATE SET
            since = CASE WHEN crm_resyncs.done_at IS NULL
                         THEN least(crm_resyncs.since, EXCLUDED.since) ELSE EXCLUDED.since END,
            reason = EXCLUDED.reason,
            requested_at = EXCLUDED.requested_at,
            due_at = CASE WHEN crm_resyncs.done_at IS NULL
                          THEN crm_resyncs.due_at ELSE EXCLUDED.due_at END,
            attempts = CASE WHEN crm_resyncs.done_at IS NULL THEN crm_resyncs.attempts ELSE 0 END,
            done_at = NULL
        """,
        source,
        reason,
        at,
        *columns(requests),
    )


async def claim_resyncs(
    conn: Connection, source: str, at: datetime, lease_until: datetime, limit: int
) -> list[asyncpg.Record]:
    """Due requests, leased until `lease_until` so another instance does not take them too
    (a crashed run's lease simply expires)."""
    return list(
        await conn.fetch(
            """
            UPDATE crm_resyncs SET due_at = $3, attempts = attempts + 1
            WHERE (source, record_id) IN (
                SELECT source, record_id FROM crm_resyncs
                WHERE source = $1 AND done_at IS NULL AND due_at <= $2
                ORDER BY due_at LIMIT $4 FOR UPDATE SKIP LOCKED)
            RETURNING source, record_id, since, requested_at, attempts
            """,
            source,
            at,
            lease_until,
            limit,
        )
    )


async def give_back_resyncs(
    conn: Connection, source: str, requests: Sequence[asyncpg.Record], leased_until: datetime
) -> None:
    """Claimed requests not begun within their lease: due again at once, the claim's attempt
    not counted (those another run has leased since stay its own)."""
    await conn.execute(
        """UPDATE crm_resyncs SET due_at = now(), attempts = attempts - 1
           WHERE source = $1 AND record_id = ANY($2::text[]) AND due_at = $3
             AND done_at IS NULL""",
        source,
        [r["record_id"] for r in requests],
        leased_until,
    )


async def finish_resync(
    conn: Connection, source: str, record_id: str, requested_at: datetime, at: datetime
) -> None:
    """Done, unless it was asked for again since it was claimed (then it stays pending)."""
    await conn.execute(
        """UPDATE crm_resyncs SET done_at = $4, last_error = NULL
           WHERE source = $1 AND record_id = $2 AND requested_at = $3""",
        source,
        record_id,
        requested_at,
        at,
    )


async def retry_resync(
    conn: Connection, source: str, record_id: str, due_at: datetime, error: str
) -> None:
    await conn.execute(
        """UPDATE crm_resyncs SET due_at = $3, last_error = $4
           WHERE source = $1 AND record_id = $2 AND done_at IS NULL""",
        source,
        record_id,
        due_at,
        error[:500],
    )


async def lock_checkpoint(conn: Connection, source: str, at: datetime) -> asyncpg.Record:
    """A pulled source's checkpoint, locked for the run (created empty the first time), so two
    instances never pull the same page."""
    await conn.execute(
        """INSERT INTO crm_pull_checkpoints (source, updated_at) VALUES ($1, $2)
           ON CONFLICT (source) DO NOTHING""",
        source,
        at,
    )
    row = await conn.fetchrow(
        "SELECT * FROM crm_pull_checkpoints WHERE source = $1 FOR UPDATE", source
    )
    assert row is not None  # inserted just above
    return row


async def store_checkpoint(
    conn: Connection,
    source: str,
    *,
    watermark: datetime | None,
    window_start: datetime | None,
    continuation: str | None,
    seen_max: datetime | None,
    at: datetime,
) -> None:
    await conn.execute(
        """UPDATE crm_pull_checkpoints SET watermark = $2, window_start = $3,
               continuation = $4, seen_max = $5, updated_at = $6
           WHERE source = $1""",
        source,
        watermark,
        window_start,
        continuation,
        seen_max,
        at,
    )


async def projected(conn: Connection, deal_keys: Sequence[str]) -> dict[str, asyncpg.Record]:
    """The projected opportunities (not locked: a reconciliation only reads them)."""
    rows = await conn.fetch("SELECT * FROM crm_deals WHERE deal_key = ANY($1::text[])", deal_keys)
    return {row["deal_key"]: row for row in rows}


async def store_reconciliation(
    conn: Connection,
    *,
    source: str,
    started_at: datetime,
    finished_at: datetime,
    since: datetime,
    counts: dict[str, int],
    resyncs: int,
    drift: str,
    error: str | None,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        """INSERT INTO crm_reconciliations (source, started_at, finished_at, since, checked,
               in_sync, missing_here, stale_here, deleted_upstream, resyncs_queued, drift, error)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12) RETURNING *""",
        source,
        started_at,
        finished_at,
        since,
        counts["checked"],
        counts["in_sync"],
        counts["missing_here"],
        counts["stale_here"],
        counts["deleted_upstream"],
        resyncs,
        drift,
        error,
    )
    assert row is not None  # INSERT ... RETURNING
    return row


async def reconciliations(conn: Connection, source: str | None, limit: int) -> list[asyncpg.Record]:
    """Reports, newest first (of one source, or all)."""
    return list(
        await conn.fetch(
            """SELECT * FROM crm_reconciliations WHERE $1::text IS NULL OR source = $1
               ORDER BY started_at DESC, id DESC LIMIT $2""",
            source,
            limit,
        )
    )


@dataclass(frozen=True)
class Purged:
    refused: int
    resyncs: int
    reconciliations: int

    def __bool__(self) -> bool:
        return bool(self.refused or self.resyncs or self.reconciliations)


async def purge_bookkeeping(conn: Connection, before: datetime, batch_size: int) -> Purged:
    """Delete, at most `batch_size` of each, refused items received before `before`, resync
    requests done before it (pending ones are never deleted, however old) and reconciliation
    reports started before it."""
    refused = await conn.fetchval(
        """WITH gone AS (DELETE FROM crm_refused WHERE id IN (
               SELECT id FROM crm_refused WHERE received_at < $1 ORDER BY id LIMIT $2)
           RETURNING 1) SELECT count(*) FROM gone""",
        before,
        batch_size,
    )
    resyncs = await conn.fetchval(
        """WITH gone AS (DELETE FROM crm_resyncs WHERE (source, record_id) IN (
               SELECT source, record_id FROM crm_resyncs
               WHERE done_at IS NOT NULL AND done_at < $1 LIMIT $2)
           RETURNING 1) SELECT count(*) FROM gone""",
        before,
        batch_size,
    )
    reports = await conn.fetchval(
        """WITH gone AS (DELETE FROM crm_reconciliations WHERE id IN (
               SELECT id FROM crm_reconciliations WHERE started_at < $1 ORDER BY id LIMIT $2)
           RETURNING 1) SELECT count(*) FROM gone""",
        before,
        batch_size,
    )
    return Purged(refused, resyncs, reports)


async def recorded_earlier(
    conn: Connection, event_ids: Sequence[uuid.UUID], group_id: str
) -> set[uuid.UUID]:
    """Which of `event_ids` the outbox holds or the consumer group `group_id` handled."""
    rows = await conn.fetch(
        """SELECT event_id FROM outbox WHERE event_id = ANY($1::uuid[])
           UNION SELECT event_id FROM inbox WHERE consumer = $2 AND event_id = ANY($1::uuid[])""",
        list(event_ids),
        group_id,
    )
    return {row["event_id"] for row in rows}


async def queue_write_back(
    conn: Connection,
    key: tuple[str, str, str],
    fields: str,
    event: tuple[uuid.UUID, str, bytes],
    at: datetime,
    as_of: datetime,
) -> None:
    """Queue the write of `fields` (JSON) to the record `key` (source, portal, record id) for
    `event` (id, topic, envelope), a decision made at `as_of`. It replaces the record's write
    not sent yet, keeping that one's turn and attempts, unless the record's write (sent or not)
    is of a later decision: a record's registrations' events travel on several partitions, and
    a replayed dead letter comes after the writes that followed it."""
    await conn.execute(
        """
        INSERT INTO crm_writebacks AS w (source, portal, record_id, fields, event_id,
                                         event_topic, event_value, queued_at, due_at, as_of)
        VALUES ($1, $2, $3, $4::json, $5, $6, $7, $8, $8, $9)
        ON CONFLICT (source, portal, record_id) DO UPDATE
        SET fields = excluded.fields, event_id = excluded.event_id,
            event_topic = excluded.event_topic, event_value = excluded.event_value,
            queued_at = CASE WHEN w.due_at IS NULL THEN excluded.queued_at ELSE w.queued_at END,
            attempts = CASE WHEN w.due_at IS NULL THEN 0 ELSE w.attempts END,
            last_error = CASE WHEN w.due_at IS NULL THEN NULL ELSE w.last_error END,
            due_at = coalesce(w.due_at, excluded.due_at),
            as_of = excluded.as_of
        WHERE w.as_of IS NULL OR w.as_of <= excluded.as_of
        """,
        *key,
        fields,
        *event,
        at,
        as_of,
    )


async def claim_write_backs(
    conn: Connection, at: datetime, lease_until: datetime, limit: int
) -> list[asyncpg.Record]:
    """Due write-backs, oldest turn first, leased until `lease_until` (their due time moves
    there: a crashed run's lease simply expires)."""
    return list(
        await conn.fetch(
            """
            UPDATE crm_writebacks SET due_at = $2, attempts = attempts + 1
            WHERE (source, portal, record_id) IN (
                SELECT source, portal, record_id FROM crm_writebacks
                WHERE due_at <= $1 ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED)
            RETURNING *
            """,
            at,
            lease_until,
            limit,
        )
    )


async def give_back_write_backs(
    conn: Connection, writes: Sequence[asyncpg.Record], leased_until: datetime
) -> None:
    """Claimed writes not begun within their lease: due again at once, the claim's attempt not
    counted (those another run has leased since stay its own)."""
    await conn.execute(
        """UPDATE crm_writebacks AS w SET due_at = now(), attempts = w.attempts - 1
           FROM unnest($1::text[], $2::text[], $3::text[]) AS k (source, portal, record_id)
           WHERE (w.source, w.portal, w.record_id) = (k.source, k.portal, k.record_id)
             AND w.due_at = $4""",
        [r["source"] for r in writes],
        [r["portal"] for r in writes],
        [r["record_id"] for r in writes],
        leased_until,
    )


async def settle_write_back(
    conn: Connection,
    claimed: asyncpg.Record,
    *,
    due_at: datetime | None,
    error: str | None,
    at: datetime,
) -> bool:
    """The claimed write's outcome: sent (`due_at` and `error` None), to be tried again at
    `due_at`, or over (`due_at` None with an `error`: given up). A write that replaced it
    meanwhile is due at once instead. Returns whether the claimed write was still the row's."""
    settled = await conn.fetchval(
        """
        UPDATE crm_writebacks
        SET due_at = CASE WHEN event_id = $4 THEN $5::timestamptz ELSE $7::timestamptz END,
            last_error = CASE WHEN event_id = $4 THEN $6::text ELSE last_error END,
            sent_at = CASE WHEN event_id = $4 AND $6::text IS NULL THEN $7 ELSE sent_at END
        WHERE source = $1 AND portal = $2 AND record_id = $3
        RETURNING event_id = $4
        """,
        claimed["source"],
        claimed["portal"],
        claimed["record_id"],
        claimed["event_id"],
        due_at,
        None if error is None else error[:500],
        at,
    )
    return bool(settled)
