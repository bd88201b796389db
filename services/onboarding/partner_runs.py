"""Scheduled runs over many partners (requalification, the programme year): each partner in its
own transaction, so one partner's failure neither undoes nor stops the others'."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

from shared.db import Connection, Pool
from shared.errors import NotFound

log = logging.getLogger(__name__)

# What a run does to one partner, in its transaction: the names of what it did ([]: nothing).
PartnerStep = Callable[[Connection, str], Awaitable[list[str]]]


async def each_partner(
    pool: Pool, partner_ids: Iterable[str], run: str, step: PartnerStep
) -> dict[str, list[str]]:
    """What `step` did, per partner it did anything to; `["not_found"]` for a partner named
    that does not exist (the caller's mistake, said in the answer: an admin naming a thousand
    unknown ids wrote a thousand error tracebacks); `["error"]` for a partner whose step failed
    (logged, naming the `run`, and rolled back)."""
    results: dict[str, list[str]] = {}
    for partner_id in partner_ids:
        try:
            async with pool.acquire() as conn, conn.transaction():
                done = await step(conn, partner_id)
        except NotFound:
            done = ["not_found"]
        except Exception:
            log.exception("%s failed", run, extra={"partner_id": partner_id})
            done = ["error"]
        if done:
            results[partner_id] = done
    return results
