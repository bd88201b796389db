"""What a consumer's batch locks before any handler runs (`EventConsumer.locks_first`): the
advisory lock keys its first-seen events need, taken together, in ascending order, in one
statement. A batch is one transaction that may hold several runs (another type or a duplicate
splits a run); if each run or event took its own locks, two transactions could take them in
opposite orders and deadlock (Postgres ends one after `deadlock_timeout`, a second's stall)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import asyncpg

from shared.db import DATABASE_UNAVAILABLE, TRANSACTION_COLLISIONS, Connection, lock_in_order
from shared.events import Envelope
from shared.provisions import Provisions

log = logging.getLogger(__name__)

# The advisory lock keys a batch's events need (read-only: it may query, never write).
BatchLocks = Callable[[Connection, Provisions, list[Envelope[Any]]], Awaitable[Iterable[int]]]


class LocksRefused(Exception):
    """Postgres refused what the key function read for the batch's events (a NUL in an id it
    looks up): the batch is to be redone a record at a time."""


async def take_batch_locks(
    conn: Connection,
    keys_of: BatchLocks,
    provisions: Provisions,
    events: list[Envelope[Any]],
    *,
    isolating: bool,
    consumer: str,
) -> None:
    """Take the locks `keys_of` names for `events`. The database out of reach or a collision is
    raised, for the batch to be retried. Postgres refusing what an event holds raises
    LocksRefused on the batch's fast path; redone a record at a time (`isolating`), the read
    runs in a savepoint and, refused again, the batch goes on without its locks: each handler
    takes its own, and the record's handler, meeting the same refusal, has it dead-lettered.
    Raised as any other error, it stalled the partition for ever (found in review). An event
    the key function cannot read at all is likewise its handler's to refuse."""
    try:
        if isolating:
            async with conn.transaction():  # a savepoint: a refusal undoes only itself
                keys = set(await keys_of(conn, provisions, events))
        else:
            keys = set(await keys_of(conn, provisions, events))
    except (*DATABASE_UNAVAILABLE, *TRANSACTION_COLLISIONS):
        raise
    except asyncpg.PostgresError as refusal:
        if not isolating:
            raise LocksRefused() from refusal
        log.warning(
            "batch locks refused: each record takes its own",
            extra={"consumer": consumer, "error": repr(refusal)},
        )
        return
    except Exception:
        log.exception("batch locks not computed", extra={"consumer": consumer})
        return
    await lock_in_order(conn, keys)
