"""Where a deal's time goes between ingestion and its incentive entry, hop by hop, read from the
outboxes' own stamps: each row's writing transaction started (`created_at`, the transaction's
`now()`), committed (`committed_at`, with track_commit_timestamp) and was acknowledged by Kafka
(`published_at`). A deal's rows are found by its key (the CRM change and the opportunity are
keyed by it, the credit by its deal key, the incentive entry carries it in its payload).

The segments, in the order a deal meets them:
  deals edge tx        the CRM change recorded (the HTTP request's transaction), and since
                       session 15 merged into the projection there, the opportunity announced
  to opportunity       the change's commit -> the opportunity's: 0 when the edge projected it;
                       otherwise (a change left to deals' consumer, or code before session 15)
                       the relay, Kafka, the consumer's pick-up and its projection transaction
  deals relay          the opportunity committed -> acknowledged
  to attribution       ... and so on to incentives' booking transaction and its relay.
A segment's figure is per deal; the sum of the medians is not the median of the sum. Only the
deals with all four rows and every stamp count, so every segment covers the same deals; how
many were left out is said beside them.

`published_at` is the relay's mark: the statement after Kafka acknowledged the relay's whole
batch, not each row's own acknowledgement. So a relay segment includes waiting for the batch's
other acknowledgements and the mark itself, and the next service may start before the mark:
under load a pick-up is understated (it can even be negative) by about what the relay's figure
overstates. In the quiet phase, batches are one or two rows and the difference is a round
trip."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from benchmarks.latency import percentiles
from tests.support.outbox import event_json

# (name, schema, topic, whether the row's key is its deal: else its event's `deal_key` is)
_ROWS = (
    ("change", "deals", "crm.deals.v1", True),
    ("opportunity", "deals", "deals.opportunities.v1", True),
    ("credit", "attribution", "attribution.credits.v1", True),
    ("entry", "incentives", "incentives.ledger.v1", False),
)

# The outboxes a deal's rows are read from (here and in the chain's relay lag).
CHAIN_OUTBOXES = ("deals", "attribution", "incentives")

# Each chain outbox's last position at a moment. A phase's rows are those between the marks
# taken when it opened and when it ended: read through the outbox's key, the only index that
# orders its rows (none names a time: the publish mark is a HOT update only so, shared
# migration 0013), instead of the whole outbox (a day's retention of every run: over a
# million rows, seconds per phase).
OutboxMark = dict[str, int]


async def outbox_mark(admin_dsn: str) -> OutboxMark:
    conn = await asyncpg.connect(admin_dsn)
    try:
        return {
            schema: await conn.fetchval(f"SELECT coalesce(max(position), 0) FROM {schema}.outbox")
            for schema in CHAIN_OUTBOXES
        }
    finally:
        await conn.close()


# (segment, from (row, stamp), to (row, stamp))
SEGMENTS = (
    ("deals edge tx", ("change", "created_at"), ("change", "committed_at")),
    ("to opportunity", ("change", "committed_at"), ("opportunity", "committed_at")),
    ("deals relay", ("opportunity", "committed_at"), ("opportunity", "published_at")),
    ("to attribution", ("opportunity", "published_at"), ("credit", "created_at")),
    ("attribution tx", ("credit", "created_at"), ("credit", "committed_at")),
    ("attribution relay", ("credit", "committed_at"), ("credit", "published_at")),
    ("to incentives", ("credit", "published_at"), ("entry", "created_at")),
    ("incentives tx", ("entry", "created_at"), ("entry", "committed_at")),
    ("incentives relay", ("entry", "committed_at"), ("entry", "published_at")),
)


async def _first_rows(
    conn: asyncpg.Connection,
    schema: str,
    topic: str,
    keyed_by_deal: bool,
    keys: Sequence[str],
    since: OutboxMark,
    until: OutboxMark,
) -> dict[str, asyncpg.Record]:
    """Each deal's first row on `topic` written in the window, by deal key. Only published
    rows count (a deal needs every stamp). A row not keyed by its deal names it in its event,
    which the outbox may keep compressed: read here, not in SQL."""
    rows = await conn.fetch(
        f"""SELECT message_key, value, value_codec, created_at, committed_at, published_at
            FROM {schema}.outbox
            WHERE topic = $1 AND position > $2 AND position <= $3 AND published_at IS NOT NULL
              AND (message_key = ANY($4::text[]) OR NOT $5)
            ORDER BY position""",
        topic,
        since[schema],
        until[schema],
        list(keys),
        keyed_by_deal,
    )
    wanted = set(keys)
    first: dict[str, asyncpg.Record] = {}
    for row in rows:
        deal = row["message_key"] if keyed_by_deal else _deal_key_of(row)
        if deal in wanted and deal not in first:
            first[deal] = row
    return first


def _deal_key_of(row: asyncpg.Record) -> str | None:
    """The deal an event names (None: the topic's events without one, an MDF expiry say)."""
    deal: str | None = event_json(row)["data"].get("deal_key")
    return deal


async def hop_breakdown(
    admin_dsn: str,
    keys: Sequence[str],
    since: OutboxMark,
    until: OutboxMark,
) -> dict[str, Any]:
    """Per segment, the percentiles over the phase's deals (`keys`) that have both stamps.
    Without track_commit_timestamp there are no commit stamps and the result says so."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        if not await conn.fetchval("SELECT current_setting('track_commit_timestamp') = 'on'"):
            return {"unavailable": "track_commit_timestamp is off"}
        rows = {
            name: await _first_rows(conn, schema, topic, keyed_by_deal, keys, since, until)
            for name, schema, topic, keyed_by_deal in _ROWS
        }
    finally:
        await conn.close()
    complete = [
        key
        for key in keys
        if all(
            (row := rows[name].get(key)) is not None
            and None not in (row["created_at"], row["committed_at"], row["published_at"])
            for name, *_ in _ROWS
        )
    ]
    result: dict[str, Any] = {"deals": len(complete), "left_out": len(keys) - len(complete)}
    for segment, (row_a, stamp_a), (row_b, stamp_b) in SEGMENTS:
        result[segment] = percentiles(
            [
                (rows[row_b][key][stamp_b] - rows[row_a][key][stamp_a]).total_seconds() * 1000
                for key in complete
            ]
        )
    return result
