"""Postgres advisory locks as a test sees them in `pg_locks`: who waits for a key, and which
keys a backend holds (to check the order a transaction takes its locks in)."""

from __future__ import annotations

from shared.db import Connection
from tests.support.polling import eventually


def lock_id(key: int) -> tuple[int, int]:
    """An advisory key as pg_locks shows it: (classid, objid), its high and low 32 bits."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


def lock_key(classid: int, objid: int) -> int:
    """The (signed, as Postgres orders them) advisory key of a pg_locks row."""
    unsigned = classid << 32 | objid
    return unsigned - (1 << 64) if unsigned >= 1 << 63 else unsigned


async def waiter_of(conn: Connection, key: int, *, what: str) -> int:
    """The backend pid that waits for advisory `key`, once one does."""
    classid, objid = lock_id(key)

    async def waiting() -> int | None:
        pid: int | None = await conn.fetchval(
            """SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
               AND classid = $1 AND objid = $2""",
            classid,
            objid,
        )
        return pid

    pid: int = await eventually(waiting, what=what)
    return pid


async def held_keys(conn: Connection, pid: int) -> list[int]:
    """The advisory keys backend `pid` holds."""
    rows = await conn.fetch(
        """SELECT classid, objid FROM pg_locks
           WHERE locktype = 'advisory' AND granted AND pid = $1""",
        pid,
    )
    return [lock_key(row["classid"], row["objid"]) for row in rows]
