"""Write-back: the originating CRM learns what Pollinate decided about a registration on one
of its deals (status, partner attached, registration id, when).

Deals' own registration events (published by the outbox in the decision's transaction) are
consumed by the `crm-writeback` group, which only queues the write in `crm_writebacks`, one row
per CRM record: the write of the newest decision replaces one not sent yet, and an older one
(another registration's, on another partition; a dead letter replayed) changes nothing. The
write-back job leases the due rows and sends each on its own, out of any transaction: a CRM that
is down (or a record it keeps failing) is retried with backoff and holds up only its own
writes, where the consumer sending them held up every CRM's behind it and sent a batch's earlier
writes again at each retry. A request limit pauses that CRM's leased writes for as long as it
asks. A write the CRM refuses for good (an unknown field, a deleted record), or one still
failing after DEALS_WRITEBACK_GIVE_UP_HOURS, dead-letters its event with the reason, as the
consumer's own letter: replayed after the fix, it is queued again (unless a newer decision's
write is queued or sent by then). The writes set values (PATCH), so a write sent again after a
crash writes the same thing."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from services.deals import crm_repository
from services.deals.crm_clients import (
    CrmRefused,
    CrmUnavailable,
    HubSpotClient,
    RateLimited,
    SalesforceClient,
    backoff,
    outlasts_a_call,
)
from services.deals.domain.writeback import WriteBack, write_back_for
from services.deals.partner_program_clients import AceClient, MicrosoftReferralsClient
from services.deals.settings import DealsSettings
from shared.clock import now
from shared.db import Connection, Pool
from shared.dead_lettering import park_kept_event
from shared.events import Envelope
from shared.events.registrations import RegistrationDecided, RegistrationStatusChanged
from shared.outbox import Outbox
from shared.topics import dead_letter_topic, group_id_of

log = logging.getLogger(__name__)
WRITEBACK_GROUP = "crm-writeback"
LEASE = timedelta(minutes=2)  # above the clients' 20 s timeout


def configured(settings: DealsSettings, source: str) -> bool:
    """Whether deals may write to `source` (its API configured)."""
    return {
        "salesforce": settings.salesforce_rest,
        "hubspot": bool(settings.hubspot_tokens),
        "aws_ace": settings.ace_pull,
        "microsoft": settings.microsoft_pull,
    }[source]


async def queue_write_back(
    conn: Connection,
    settings: DealsSettings,
    envelope: Envelope[RegistrationDecided] | Envelope[RegistrationStatusChanged],
    topic: str,
) -> WriteBack | None:
    """Queue the write-back of the registration event's status on its CRM deal, in `conn`'s
    transaction; returns what was queued (None: nothing to write, or that CRM not configured)."""
    event = envelope.data
    at = event.decided_at if isinstance(event, RegistrationDecided) else event.changed_at
    writing = write_back_for(
        event.crm_deal_key, event.registration_id, event.partner_id, event.status, at
    )
    if writing is None:
        return None
    if not configured(settings, writing.source):
        log.warning(
            "%s write-back not configured", writing.source, extra={"record": writing.record_id}
        )
        return None
    await crm_repository.queue_write_back(
        conn,
        (writing.source, writing.portal or "", writing.record_id),
        json.dumps(writing.fields),
        (envelope.id, topic, envelope.to_bytes()),
        now(),
        at,
    )
    return writing


async def send(settings: DealsSettings, writing: WriteBack) -> None:
    """Write to the CRM (PATCH): CrmUnavailable (RateLimited) when it cannot answer now,
    CrmRefused when it refuses the write for good."""
    if writing.source == "salesforce":
        client = SalesforceClient.from_settings(settings)
        await client.update_opportunity(writing.record_id, writing.fields)
    elif writing.source == "aws_ace":
        await AceClient.from_settings(settings).update_opportunity(
            writing.record_id, writing.fields
        )
    elif writing.source == "microsoft":
        referrals = MicrosoftReferralsClient.from_settings(settings)
        await referrals.update_referral(writing.record_id, writing.fields)
    else:
        await HubSpotClient.from_settings(settings).update_deal(
            writing.portal or "", writing.record_id, writing.fields
        )


@dataclass
class WriteBackRun:
    sent: int = 0
    retried: int = 0  # the CRM down or limiting requests: tried again later
    dead_lettered: int = 0  # refused for good, or given up

    def __bool__(self) -> bool:
        return bool(self.sent or self.retried or self.dead_lettered)


async def run_write_backs(
    pool: Pool, outbox: Outbox, settings: DealsSettings, limit: int, lease: timedelta = LEASE
) -> WriteBackRun:
    """Send the due write-backs (at most `limit`), each on its own. A write after the first
    is begun only while the lease outlasts the slowest one (SLOWEST_CRM_CALLS); the rest are
    given back, due at once: begun later, the lease could lapse mid-write and another instance
    send the same write (found in review, as for e-mails)."""
    run, started = WriteBackRun(), now()
    async with pool.acquire() as conn, conn.transaction():
        claimed = await crm_repository.claim_write_backs(conn, started, started + lease, limit)
    paused: dict[str, tuple[datetime, str]] = {}  # a source's request limit: until, why
    for position, row in enumerate(claimed):
        if position and not outlasts_a_call(started + lease):
            async with pool.acquire() as conn:
                await crm_repository.give_back_write_backs(
                    conn, claimed[position:], started + lease
                )
            break
        source = row["source"]
        if source in paused:
            until, why = paused[source]
            await _settle(pool, row, due_at=until, error=why)
            run.retried += 1
            continue
        try:
            await send(settings, _writing(row))
        except RateLimited as limited:
            paused[source] = (now() + timedelta(seconds=limited.wait_seconds), str(limited))
            await _settle(pool, row, due_at=paused[source][0], error=str(limited))
            run.retried += 1
        except CrmUnavailable as error:
            give_up_after = timedelta(hours=settings.writeback_give_up_hours)
            if now() - row["queued_at"] >= give_up_after:
                reason = f"CRM write-back given up after {_hours(give_up_after)}: {error}"
                await _dead_letter(pool, outbox, row, reason)
                run.dead_lettered += 1
                continue
            wait = backoff(row["attempts"])
            await _settle(pool, row, due_at=now() + wait, error=str(error))
            run.retried += 1
        except CrmRefused as error:
            await _dead_letter(pool, outbox, row, f"CRM write-back refused: {error}")
            run.dead_lettered += 1
        else:
            await _settle(pool, row, due_at=None, error=None)
            run.sent += 1
    return run


def _writing(row: asyncpg.Record) -> WriteBack:
    fields: dict[str, Any] = json.loads(row["fields"])
    return WriteBack(row["source"], row["portal"] or None, row["record_id"], fields)


def _hours(span: timedelta) -> str:
    return f"{span.total_seconds() / 3600:g} h"


async def _settle(
    pool: Pool, row: asyncpg.Record, *, due_at: datetime | None, error: str | None
) -> None:
    async with pool.acquire() as conn:
        await crm_repository.settle_write_back(conn, row, due_at=due_at, error=error, at=now())


async def _dead_letter(pool: Pool, outbox: Outbox, row: asyncpg.Record, reason: str) -> None:
    """The write is over: its event is dead-lettered as the crm-writeback group's own letter
    (replayed after a fix, it is queued again), unless a newer write replaced it meanwhile."""
    log.warning(
        "CRM write-back dead-lettered",
        extra={"source": row["source"], "record": row["record_id"], "reason": reason},
    )
    async with pool.acquire() as conn, conn.transaction():
        if not await crm_repository.settle_write_back(
            conn, row, due_at=None, error=reason, at=now()
        ):
            return  # replaced: the newer write is due now
        await park_kept_event(
            outbox,
            conn,
            bytes(row["event_value"]),
            reason,
            topic=row["event_topic"],
            consumer=group_id_of("deals", WRITEBACK_GROUP),
            dead_letter_topic=dead_letter_topic("deals").name,
        )
