"""The deals use cases' SQL: customer locks, candidate lookups, registrations, the partner
projection and the CRM opportunity projection (loaded, locked and stored a run at a time).

Every function runs in the caller's connection (and transaction, where it locks or writes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.deals.domain.customers import Customer
from services.deals.domain.links import CrmDealSeen
from services.deals.domain.rules import (
    Decision,
    ExistingRegistration,
    OpenOpportunity,
    PartnerView,
    RegistrationRequest,
)
from shared.db import Connection, advisory_key
from shared.events.partners import PartnerStateChanged, PartnerStatus
from shared.events.registrations import RegistrationStatus

# A stored row: as fetched, or as a run holds it in memory.
Row = Mapping[str, Any] | asyncpg.Record

# ---- Partners (projected from partners.lifecycle.v1).


async def load_partner(conn: Connection, partner_id: str) -> PartnerView | None:
    row = await conn.fetchrow("SELECT * FROM partners WHERE partner_id = $1", partner_id)
    if row is None:
        return None
    return PartnerView(
        row["partner_id"],
        PartnerStatus(row["status"]),
        row["tier"],
        frozenset(row["regions"]),
        frozenset(row["products"]),
    )


async def store_partner(conn: Connection, event: PartnerStateChanged) -> None:
    """The partner's projected state; an older version than the one held changes nothing."""
    await conn.execute(
        """
        INSERT INTO partners (partner_id, name, status, tier, regions, products, version, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT (partner_id) DO UPDATE SET name = EXCLUDED.name, status = EXCLUDED.status,
            tier = EXCLUDED.tier, regions = EXCLUDED.regions, products = EXCLUDED.products,
            version = EXCLUDED.version, updated_at = EXCLUDED.updated_at
        WHERE partners.version < EXCLUDED.version
        """,
        event.partner_id,
        event.name,
        event.status.value,
        event.tier,
        list(event.regions),
        list(event.products),
        event.version,
        event.changed_at,
    )


# ---- Candidates of the conflict check. Each branch of a UNION is one index lookup (partial
# indexes on the holding statuses / open deals), so the cost grows with the candidates for one
# customer, not with the table: tests/integration/test_deals_query_plans.py checks the plans.
HOLDING_REGISTRATIONS_SQL = """
SELECT * FROM registrations
WHERE status IN ('submitted', 'approved', 'pending_review')
  AND customer_domain = $1 AND submitted_at >= to_timestamp($3)
UNION
SELECT * FROM registrations
WHERE status IN ('submitted', 'approved', 'pending_review')
  AND name_key = $2 AND submitted_at >= to_timestamp($3)
"""
OPEN_DIRECT_OPPORTUNITIES_SQL = """
SELECT * FROM crm_deals
WHERE status = 'open' AND NOT deleted AND owner IS NOT NULL AND customer_domain = $1
UNION
SELECT * FROM crm_deals
WHERE status = 'open' AND NOT deleted AND owner IS NOT NULL AND name_key = $2
"""


async def load_candidates(
    conn: Connection, customer: Customer, since: datetime
) -> tuple[list[ExistingRegistration], list[OpenOpportunity]]:
    """Registrations submitted since `since` and open opportunities that might be the same
    customer (indexed lookups)."""
    rows = await conn.fetch(
        HOLDING_REGISTRATIONS_SQL, customer.domain, customer.name_key, since.timestamp()
    )
    registrations = [
        ExistingRegistration(
            r["registration_id"],
            r["partner_id"],
            r["customer_name"],
            r["customer_domain"],
            frozenset(r["products"]),
            RegistrationStatus(r["status"]),
            r["submitted_at"],
            r["expires_at"],
        )
        for r in rows
    ]
    deals = await conn.fetch(OPEN_DIRECT_OPPORTUNITIES_SQL, customer.domain, customer.name_key)
    opportunities = [
        OpenOpportunity(
            d["deal_key"],
            d["owner"],
            d["customer_name"],
            d["customer_domain"],
            d["created_at"] or datetime.min.replace(tzinfo=UTC),
        )
        for d in deals
    ]
    return registrations, opportunities


async def lock_customer(conn: Connection, customer: Customer) -> None:
    """Serialise decisions per customer across all deals instances (released at commit).

    Two keys, domain and name, taken in sorted order so two transactions never deadlock.
    """
    keys = {advisory_key("deals", "customer-name", customer.name_key)}
    if customer.domain:
        keys.add(advisory_key("deals", "customer-domain", customer.domain))
    for key in sorted(keys):
        await conn.execute("SELECT pg_advisory_xact_lock($1)", key)


async def co_sell_owners(conn: Connection, domain: str | None) -> list[str]:
    """Direct account owners of any opportunity on the customer's domain."""
    rows = await conn.fetch(
        "SELECT DISTINCT owner FROM crm_deals WHERE owner IS NOT NULL AND NOT deleted AND customer_domain = $1",
        domain,
    )
    return [row["owner"] for row in rows]


async def overlapping_partners(conn: Connection, partner_id: str, domain: str | None) -> list[str]:
    """Other active partners holding an approved or pending registration on the domain."""
    rows = await conn.fetch(
        """SELECT DISTINCT r.partner_id FROM registrations r JOIN partners p USING (partner_id)
           WHERE r.status IN ('approved', 'pending_review') AND p.status = 'active'
             AND r.partner_id <> $1 AND r.customer_domain = $2""",
        partner_id,
        domain,
    )
    return [row["partner_id"] for row in rows]


# ---- Registrations.


async def insert_registration(
    conn: Connection,
    registration_id: str,
    request: RegistrationRequest,
    decision: Decision,
    decided_at: datetime,
    crm_deal_key: str | None,
    inputs: Mapping[str, Any],
) -> None:
    await conn.execute(
        """
        INSERT INTO registrations (registration_id, partner_id, customer_name, customer_domain, customer_country,
            name_key, products, amount, currency, status, reasons, conflicts, policy_version, inputs,
            submitted_at, decided_at, expires_at, crm_deal_key, updated_at, partner_reasons)
        VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12::jsonb,$13,$14::jsonb,$15,$16,$17,$18,$16,$19)
        """,
        registration_id,
        request.partner_id,
        request.customer.name,
        request.customer.domain,
        request.customer.country,
        request.customer.name_key,
        sorted(request.products),
        request.amount,
        request.currency,
        decision.status.value,
        list(decision.reasons),
        json.dumps([c.model_dump(mode="json") for c in decision.conflicts]),
        decision.policy_version,
        json.dumps(inputs, default=str),
        request.submitted_at,
        decided_at,
        decision.expires_at,
        crm_deal_key,
        list(decision.partner_reasons),
    )


async def registration_for_update(conn: Connection, registration_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM registrations WHERE registration_id = $1 FOR UPDATE", registration_id
    )


async def store_status(
    conn: Connection,
    row: Row,
    status: RegistrationStatus,
    expires_at: datetime | None = None,
) -> None:
    await conn.execute(
        """UPDATE registrations SET status = $2, expires_at = COALESCE($3, expires_at), updated_at = now()
           WHERE registration_id = $1""",
        row["registration_id"],
        status.value,
        expires_at,
    )


async def store_link(conn: Connection, registration_id: str, deal_key: str, reason: str) -> None:
    """Link the registration, its reasons (the partner's too) saying how the link was found."""
    await conn.execute(
        """UPDATE registrations SET crm_deal_key = $2, reasons = reasons || $3::text,
               partner_reasons = COALESCE(partner_reasons, '{}') || $3::text, updated_at = now()
           WHERE registration_id = $1""",
        registration_id,
        deal_key,
        reason,
    )


async def lock_crm_link(conn: Connection, deal_key: str) -> None:
    """Serialise links to one CRM opportunity (released at commit): two never both hold it."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1)", advisory_key("deals", "crm-link", deal_key)
    )


async def crm_deal_seen(conn: Connection, deal_key: str) -> CrmDealSeen | None:
    """The opportunity as the link check compares it (None: the projection does not know it)."""
    row = await conn.fetchrow(
        """SELECT deal_key, customer_name, customer_domain, amount, currency, deleted
           FROM crm_deals WHERE deal_key = $1""",
        deal_key,
    )
    if row is None:
        return None
    return CrmDealSeen(
        row["deal_key"],
        Customer.parse(row["customer_name"], row["customer_domain"]),
        row["amount"],
        row["currency"],
        row["deleted"],
    )


async def link_holders(
    conn: Connection, deal_key: str, registration_id: str | None
) -> list[RegistrationStatus]:
    """The statuses of the other registrations linked to `deal_key`."""
    rows = await conn.fetch(
        """SELECT status FROM registrations
           WHERE crm_deal_key = $1 AND registration_id IS DISTINCT FROM $2""",
        deal_key,
        registration_id,
    )
    return [RegistrationStatus(r["status"]) for r in rows]


async def count_extension(conn: Connection, registration_id: str) -> None:
    await conn.execute(
        "UPDATE registrations SET extensions_used = extensions_used + 1 WHERE registration_id = $1",
        registration_id,
    )


# Approved registrations whose window ends soon and whose partner was not warned about this
# end yet (an extension moves the end, so the partner is warned again before the new one).
EXPIRING_SOON_SQL = """
SELECT * FROM registrations
WHERE status = 'approved' AND expires_at <= $1
  AND expiry_warned_for IS DISTINCT FROM expires_at
ORDER BY expires_at LIMIT 500 FOR UPDATE SKIP LOCKED
"""
# Instances share the work: a row being expired by one is skipped by the others.
DUE_TO_EXPIRE_SQL = """
SELECT * FROM registrations WHERE status = 'approved' AND expires_at <= $1
ORDER BY expires_at LIMIT 500 FOR UPDATE SKIP LOCKED
"""


async def expiring_soon(conn: Connection, horizon: datetime) -> list[asyncpg.Record]:
    return list(await conn.fetch(EXPIRING_SOON_SQL, horizon))


async def mark_warned(conn: Connection, registration_id: str) -> None:
    await conn.execute(
        "UPDATE registrations SET expiry_warned_for = expires_at WHERE registration_id = $1",
        registration_id,
    )


async def due_to_expire(conn: Connection, at: datetime) -> list[asyncpg.Record]:
    return list(await conn.fetch(DUE_TO_EXPIRE_SQL, at))


async def awaiting_outcome(conn: Connection, deal_key: str) -> list[asyncpg.Record]:
    """Registrations linked to `deal_key` that close with it, locked, in submission order."""
    return list(
        await conn.fetch(
            """SELECT * FROM registrations
               WHERE crm_deal_key = $1 AND status IN ('approved', 'pending_review')
               ORDER BY submitted_at, registration_id FOR UPDATE""",
            deal_key,
        )
    )


async def move_linked_registrations(
    conn: Connection, merged: str, survivor: str, at: datetime
) -> list[str]:
    """Registrations linked to the opportunity `merged` follow it into `survivor` (a CRM
    merge); returns their ids."""
    rows = await conn.fetch(
        """UPDATE registrations SET crm_deal_key = $2, updated_at = $3
           WHERE crm_deal_key = $1 RETURNING registration_id""",
        merged,
        survivor,
        at,
    )
    return [row["registration_id"] for row in rows]


async def linked_registrations(
    conn: Connection, deal_keys: Sequence[str]
) -> dict[str, list[asyncpg.Record]]:
    """Registrations linked to each of the opportunities, in submission order."""
    rows = await conn.fetch(
        """SELECT crm_deal_key, registration_id, partner_id, status, submitted_at
           FROM registrations WHERE crm_deal_key = ANY($1::text[])
           ORDER BY submitted_at, registration_id""",
        list(deal_keys),
    )
    linked: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        linked.setdefault(row["crm_deal_key"], []).append(row)
    return linked


# ---- The CRM opportunity projection, a run of changes at a time.

# Opportunities of a run, locked in key order (two runs never wait on each other in a cycle).
_LOCK_DEALS_SQL = """
SELECT * FROM crm_deals WHERE deal_key = ANY($1::text[]) ORDER BY deal_key FOR UPDATE
"""
_INSERT_DEALS_SQL = """
INSERT INTO crm_deals (deal_key, source, source_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
RETURNING *
"""
# The merged state of each opportunity of a run (products travel as JSON arrays: unnest cannot
# take an array of arrays).
_STORE_DEALS_SQL = """
UPDATE crm_deals AS d SET
    name = u.name, customer_name = u.customer_name, customer_domain = u.customer_domain,
    customer_country = u.customer_country, name_key = u.name_key,
    products = CASE WHEN u.products IS NULL THEN NULL ELSE ARRAY(
        SELECT p.value FROM jsonb_array_elements_text(u.products::jsonb) WITH ORDINALITY AS p
        ORDER BY p.ordinality) END,
    amount = u.amount, currency = u.currency, stage = u.stage, status = u.status,
    close_date = u.close_date, owner = u.owner, partner_ref = u.partner_ref,
    co_sell = u.co_sell, created_at = u.created_at, deleted = u.deleted,
    field_timestamps = u.field_timestamps::jsonb, revision = u.revision,
    ingested_at = u.ingested_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::numeric[], $9::text[], $10::text[], $11::text[], $12::date[], $13::text[],
            $14::text[], $15::boolean[], $16::timestamptz[], $17::boolean[], $18::text[],
            $19::integer[], $20::timestamptz[])
    AS u(deal_key, name, customer_name, customer_domain, customer_country, name_key, products,
         amount, currency, stage, status, close_date, owner, partner_ref, co_sell, created_at,
         deleted, field_timestamps, revision, ingested_at)
WHERE d.deal_key = u.deal_key
"""
_STORED_COLUMNS = (
    "deal_key",
    "name",
    "customer_name",
    "customer_domain",
    "customer_country",
    "name_key",
    "products",
    "amount",
    "currency",
    "stage",
    "status",
    "close_date",
    "owner",
    "partner_ref",
    "co_sell",
    "created_at",
    "deleted",
    "field_timestamps",
    "revision",
    "ingested_at",
)


async def field_stamps(conn: Connection, keys: Sequence[str]) -> dict[str, dict[str, str]]:
    """Each held opportunity's field source times (field -> ISO time), unlocked: they only
    move forward, so a change older than all of them stays stale."""
    rows = await conn.fetch(
        "SELECT deal_key, field_timestamps FROM crm_deals WHERE deal_key = ANY($1::text[])",
        list(keys),
    )
    return {r["deal_key"]: json.loads(r["field_timestamps"]) for r in rows}


async def record_refused(
    conn: Connection, source: str, at: datetime, items: Sequence[tuple[int, str, bytes]]
) -> None:
    """Delivered items no adapter could read: (index in the delivery, reason, item as sent)."""
    await conn.execute(
        """
        INSERT INTO crm_refused (source, received_at, item_index, reason, item)
        SELECT $1, $2, i.item_index, i.reason, i.item
        FROM unnest($3::int[], $4::text[], $5::bytea[]) AS i(item_index, reason, item)
        """,
        source,
        at,
        [index for index, _, _ in items],
        [reason for _, reason, _ in items],
        [item for _, _, item in items],
    )


async def schedule_resyncs(
    conn: Connection,
    source: str,
    requests: Sequence[tuple[str, datetime | None]],
    reason: str,
    at: datetime,
) -> None:
    """Ask for records' current state (record id, or '*' with `since` for a window). A pending
    request stays (its window widens to the earlier start); a done one is asked again."""
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
        [record_id for record_id, _ in requests],
        [since for _, since in requests],
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


async def lock_deals(
    conn: Connection, keys: Sequence[str], new: Mapping[str, tuple[str, str]]
) -> dict[str, dict[str, Any]]:
    """The opportunities of `keys`, locked; those not held yet are created first from `new`
    (deal key -> (source, source id)). One statement, two when some are new."""
    rows = {r["deal_key"]: dict(r) for r in await conn.fetch(_LOCK_DEALS_SQL, list(keys))}
    missing = [key for key in keys if key not in rows]
    if missing:
        inserted = await conn.fetch(
            _INSERT_DEALS_SQL,
            missing,
            [new[key][0] for key in missing],
            [new[key][1] for key in missing],
        )
        rows.update({r["deal_key"]: dict(r) for r in inserted})
    return rows


async def store_deals(conn: Connection, rows: Sequence[Row]) -> None:
    """The merged opportunities, in one statement (`field_timestamps` and `products` as JSON)."""
    await conn.execute(
        _STORE_DEALS_SQL,
        *([row[column] for row in rows] for column in _STORED_COLUMNS),
    )


async def bump_revision(conn: Connection, deal_key: str) -> asyncpg.Record | None:
    """The opportunity with its revision bumped (None if unknown)."""
    return await conn.fetchrow(
        "UPDATE crm_deals SET revision = revision + 1 WHERE deal_key = $1 RETURNING *", deal_key
    )
