"""What tests of deals need beyond the shared support: a registration's request body,
partners deals knows of, a migrated
deals schema of one's own, its CRM consumers as the service wires them, a registration
linked to a CRM deal, and the steps the tests of running deals instances take again and again
(register, link, deliver a Salesforce change, wait for a status or an announcement)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Protocol

import asyncpg
import httpx

from services.deals.crm_ingestion import CRM_PROJECTION
from services.deals.crm_writeback import WRITEBACK_GROUP, run_write_backs
from services.deals.handlers import crm_batch_locks, on_crm_changes, on_registration_for_crm
from services.deals.settings import DealsSettings
from shared.consumer import EventConsumer, Outcome
from shared.db import Pool
from shared.events import Envelope
from shared.events.crm import CrmDealChanged
from shared.events.registrations import (
    RegistrationDecided,
    RegistrationStatus,
    RegistrationStatusChanged,
)
from shared.outbox import Outbox
from shared.provisions import Provisions
from shared.topics import (
    CRM_DEALS,
    DEAL_REGISTRATIONS,
    PARTNER_NOTIFICATIONS,
    Topic,
)
from tests.support.crm import salesforce_delivery
from tests.support.infra import ROOT, Infra, ScratchService, migrated_pool, scratch_schema
from tests.support.kafka import announce_partners, as_records, wait_for_keyed
from tests.support.polling import eventually
from tests.support.tokens import auth

DEALS_MIGRATIONS = ROOT / "services" / "deals" / "migrations"


def deals_outbox() -> Outbox:
    return Outbox("deals", source="pollinate/deals")


@asynccontextmanager
async def deals_schema(infra: Infra) -> AsyncIterator[tuple[ScratchService, Pool]]:
    """A throw-away schema (its own role) migrated like the deals service's, and a pool of its
    runtime role."""
    async with (
        scratch_schema(infra) as service,
        migrated_pool(service, "deals", DEALS_MIGRATIONS) as pool,
    ):
        yield service, pool


@asynccontextmanager
async def deals_pool(infra: Infra) -> AsyncIterator[Pool]:
    """`deals_schema`'s pool, for tests that need nothing else of the schema."""
    async with deals_schema(infra) as (_, pool):
        yield pool


def _deals_consumer(name: str, topic: Topic, pool: Pool, **options: Any) -> EventConsumer:
    return EventConsumer(
        name=name, service="deals", topics=[topic], pool=pool, outbox=deals_outbox(), **options
    )


def crm_projection(pool: Pool, **options: Any) -> EventConsumer:
    """The consumer projecting crm.deals.v1, with the batch handler the service registers."""
    consumer = _deals_consumer(CRM_PROJECTION, CRM_DEALS, pool, **options)
    consumer.handles_batch(CrmDealChanged)(on_crm_changes)
    consumer.locks_first(crm_batch_locks)
    return consumer


def crm_writeback(pool: Pool, settings: DealsSettings) -> EventConsumer:
    """The consumer queueing the write-backs of registration decisions to the CRMs `settings`
    point at (the write-back job sends them: `run_write_backs`)."""
    provisions = Provisions()
    provisions.provide(settings)
    consumer = _deals_consumer(
        WRITEBACK_GROUP,
        DEAL_REGISTRATIONS,
        pool,
        provisions=provisions,
        max_attempts=3,
        backoff_initial_seconds=0.01,
    )
    consumer.handles(RegistrationDecided)(on_registration_for_crm)
    consumer.handles(RegistrationStatusChanged)(on_registration_for_crm)
    return consumer


class CrmDouble(Protocol):
    """A local server standing in for a CRM, which answers 503 while `down`."""

    down: bool


async def write_back_through_an_outage(
    infra: Infra,
    settings: DealsSettings,
    events: Sequence[RegistrationDecided | RegistrationStatusChanged],
    crms: Sequence[CrmDouble],
    nothing_written: Callable[[], bool],
    when_back: Callable[[], None] = lambda: None,
) -> tuple[list[Outcome], list[str]]:
    """The crm-writeback consumer handed `events` (it queues their writes), then the write-back
    job run while every CRM in `crms` is down: nothing written, nothing lost (every write waits
    with the CRM's answer as its last error). Then `when_back()`, the CRMs answer again and the
    job sends what waits: the consumer's outcomes, and why deals dead-lettered the writes the
    job parked."""
    records = await registration_records(infra, events)
    async with deals_pool(infra) as pool:
        outcomes = await crm_writeback(pool, settings).process_batch(records)
        for crm in crms:
            crm.down = True
        down = await run_write_backs(pool, deals_outbox(), settings, 100)
        assert down.dead_lettered == 0, down  # a CRM up meanwhile takes its writes
        assert nothing_written()
        waiting = await pool.fetch("SELECT last_error FROM crm_writebacks WHERE due_at IS NOT NULL")
        assert len(waiting) == down.retried > 0
        assert all(row["last_error"] for row in waiting), waiting

        for crm in crms:
            crm.down = False
        when_back()
        await send_write_backs(pool, settings)
        return outcomes, await dead_letter_reasons(pool)


async def send_write_backs(pool: Pool, settings: DealsSettings) -> None:
    """Run the write-back job until no write waits, each retry's backoff passed at once."""
    for _ in range(10):
        await pool.execute("UPDATE crm_writebacks SET due_at = now() WHERE due_at IS NOT NULL")
        if not (await run_write_backs(pool, deals_outbox(), settings, 100)).retried:
            return
    raise AssertionError("write-backs still retried after ten runs")


async def registration_records(
    infra: Infra, events: Sequence[RegistrationDecided | RegistrationStatusChanged]
) -> list[Any]:
    """The registration events as deals publishes them, as the records a consumer is handed."""
    envelopes = [
        Envelope.wrap(event, source="pollinate/deals", subject=event.registration_id)
        for event in events
    ]
    return await as_records(infra, envelopes)


def registration_won(decided: RegistrationDecided, at: datetime) -> RegistrationStatusChanged:
    """The approved registration's CRM deal closed won at `at`."""
    return RegistrationStatusChanged(
        registration_id=decided.registration_id,
        partner_id=decided.partner_id,
        previous_status=RegistrationStatus.APPROVED,
        status=RegistrationStatus.WON,
        reason="linked CRM opportunity closed won",
        changed_at=at,
        crm_deal_key=decided.crm_deal_key,
    )


async def dead_letter_reasons(pool: Pool) -> list[str]:
    """Why deals dead-lettered each record it parked, in the order it parked them."""
    rows = await pool.fetch(
        "SELECT headers->>'dlq.reason' AS reason FROM outbox WHERE topic = 'deals.dlq.v1'"
        " ORDER BY position"
    )
    return [row["reason"] for row in rows]


async def register_on_deal(
    pool: Pool,
    registration_id: str,
    deal_key: str,
    at: datetime,
    *,
    partner: str = "p-1",
    status: str = "approved",
) -> None:
    """A registration decided at `at` and linked to the CRM deal `deal_key`, written straight
    to the deals schema (the registration flow is not what these tests are about)."""
    await pool.execute(
        """
        INSERT INTO registrations (registration_id, partner_id, customer_name, name_key,
            products, amount, currency, status, reasons, conflicts, policy_version, inputs,
            submitted_at, decided_at, expires_at, crm_deal_key, updated_at)
        VALUES ($1, $2, 'Customer', 'customer', '{data}', 1000, 'USD', $5, '{}',
            '[]', 'p1', '{}', $3, $3, $3::timestamptz + interval '90 days', $4, $3)
        """,
        registration_id,
        partner,
        at,
        deal_key,
        status,
    )


def registration_request(
    customer_name: str, customer_domain: str, amount: str = "12000.00", **overrides: Any
) -> dict[str, Any]:
    """A `POST /registrations` body: a US customer buying data, in dollars; `overrides` change
    or add fields."""
    return {
        "customer_name": customer_name,
        "customer_domain": customer_domain,
        "customer_country": "US",
        "products": ["data"],
        "amount": amount,
        "currency": "USD",
        **overrides,
    }


async def partners_onboarded(infra: Infra, *partner_ids: str) -> None:
    """Announce each partner on partners.lifecycle.v1, as onboarding does, and wait until deals
    has projected every one of them."""
    await announce_partners(infra, *partner_ids)
    conn = await asyncpg.connect(infra.admin_dsn)
    try:

        async def all_there() -> bool:
            count = await conn.fetchval(
                "SELECT count(*) FROM deals.partners WHERE partner_id = ANY($1)", list(partner_ids)
            )
            return bool(count == len(partner_ids))

        await eventually(all_there, what=f"deals knows partners {', '.join(partner_ids)}")
    finally:
        await conn.close()


async def fresh_partners(infra: Infra, *names: str) -> tuple[str, list[str]]:
    """A new run's id and, for each name, the partner `p-<name>-<run>`, once deals knows every
    one of them (the tests share the deals instances: a run's partners and customers are its
    own)."""
    run = uuid.uuid4().hex[:8]
    partners = [f"p-{name}-{run}" for name in names]
    await partners_onboarded(infra, *partners)
    return run, partners


async def register(
    client: httpx.AsyncClient, deals: str, partner: str, body: dict[str, Any]
) -> httpx.Response:
    """`partner` submits the registration `body` at the deals instance `deals`: the answer."""
    return await client.post(f"{deals}/registrations", headers=auth(partner), json=body)


async def approved(
    client: httpx.AsyncClient, deals: str, partner: str, body: dict[str, Any]
) -> dict[str, Any]:
    """`partner` registers `body` at the deals instance `deals` and is approved: the decision."""
    response = await register(client, deals, partner, body)
    assert response.status_code == 201, response.text
    decision: dict[str, Any] = response.json()
    assert decision["status"] == "approved", decision
    return decision


async def link_crm_deal(
    client: httpx.AsyncClient, deals: str, partner: str, registration_id: str, deal_key: str
) -> httpx.Response:
    """`partner` links the registration to the CRM deal `deal_key` at the deals instance
    `deals`: the answer."""
    return await client.post(
        f"{deals}/registrations/{registration_id}/crm-link",
        headers=auth(partner),
        json={"crm_deal_key": deal_key},
    )


async def deliver_salesforce(client: httpx.AsyncClient, deals: str, *changes: Any) -> None:
    """Salesforce's change events, delivered in order to the deals instance's webhook: each
    accepted."""
    for change in changes:
        response = await client.post(f"{deals}/crm/salesforce", **salesforce_delivery(change))
        assert response.status_code == 202, response.text


async def crm_deal_projected(
    conn: Any,
    deal_key: str,
    holds: Callable[[asyncpg.Record], bool],
    what: str = "as the change says",
) -> None:
    """Wait until deals' CRM projection holds the deal `deal_key`, its row such that
    `holds(row)` (`what` that means, for the failure message)."""

    async def projected() -> bool:
        row = await conn.fetchrow("SELECT * FROM deals.crm_deals WHERE deal_key = $1", deal_key)
        return row is not None and holds(row)

    await eventually(projected, what=f"deals projects {deal_key} {what}")


async def admin_fetch(infra: Infra, sql: str, *args: Any) -> list[asyncpg.Record]:
    """What `sql` answers, read as the stack's admin (every service's schema) on a connection
    of its own."""
    conn = await asyncpg.connect(infra.admin_dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def projected_crm_deal(infra: Infra, deal_key: str, **wanted: Any) -> asyncpg.Record | None:
    """The deal's row in deals' CRM projection once its columns hold `wanted` (None until
    then): for `eventually`."""
    rows = await admin_fetch(infra, "SELECT * FROM deals.crm_deals WHERE deal_key = $1", deal_key)
    if rows and all(rows[0][column] == value for column, value in wanted.items()):
        return rows[0]
    return None


async def registration_status(conn: Any, registration_id: str) -> str | None:
    """The registration's status as deals stored it (None while there is no such row)."""
    status = await conn.fetchval(
        "SELECT status FROM deals.registrations WHERE registration_id = $1", registration_id
    )
    return None if status is None else str(status)


async def registration_reaches(conn: Any, registration_id: str, status: str) -> None:
    """Wait until deals has stored the registration with `status`."""

    async def reached() -> bool:
        return await registration_status(conn, registration_id) == status

    await eventually(reached, what=f"registration {registration_id} {status}")


async def partner_notifications(
    infra: Infra, partner: str, kind: str, *, since: datetime
) -> list[dict[str, Any]]:
    """The notifications keyed by `partner` since `since`, read until one of `kind` is among
    them."""
    return await wait_for_keyed(
        infra.kafka,
        PARTNER_NOTIFICATIONS.name,
        partner,
        lambda events: any(e["data"]["kind"] == kind for e in events),
        since=since,
    )


async def registration_announcements(
    infra: Infra, registration_id: str, count: int, *, since: datetime
) -> list[dict[str, Any]]:
    """The registration's events on deals.registrations.v1 since `since`, read until there are
    `count` of them."""
    return await wait_for_keyed(
        infra.kafka,
        DEAL_REGISTRATIONS.name,
        registration_id,
        lambda events: len(events) >= count,
        since=since,
    )


async def registration_moved_to(
    infra: Infra, registration_id: str, status: str, *, since: datetime
) -> list[dict[str, Any]]:
    """The registration's events on deals.registrations.v1 since `since`, read until one after
    the first (its decision) has moved it to `status`."""
    return await wait_for_keyed(
        infra.kafka,
        DEAL_REGISTRATIONS.name,
        registration_id,
        lambda events: any(e["data"].get("status") == status for e in events[1:]),
        since=since,
    )
