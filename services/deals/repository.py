"""The deals use cases' SQL: customer locks, registrations, the partner projection and the CRM
opportunity projection (loaded, locked and stored a run at a time).

Every function runs in the caller's connection (and transaction, where it locks or writes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from services.deals.domain.customers import Customer
from services.deals.domain.ledger import LedgerEntry
from services.deals.domain.links import CrmDealSeen
from services.deals.domain.rules import Decision, PartnerView, RegistrationRequest
from shared.db import Connection, advisory_key, lock_in_order
from shared.events.crm import CrmDealChanged, DealStatus
from shared.events.partners import PartnerStateChanged
from shared.events.registrations import RegistrationStatus

# A stored row: as fetched, or as a run holds it in memory.
Row = Mapping[str, Any] | asyncpg.Record

# ---- Partners (projected from partners.lifecycle.v1).


async def store_partner(conn: Connection, event: PartnerStateChanged) -> None:
    """The partner's projected state; an older version than the one held changes nothing."""
    await conn.execute(
        """
        INSERT INTO partners (partner_id, name, status, tier, regions, products, version,
            updated_at, partner_type)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (partner_id) DO UPDATE SET name = EXCLUDED.name, status = EXCLUDED.status,
            tier = EXCLUDED.tier, regions = EXCLUDED.regions, products = EXCLUDED.products,
            version = EXCLUDED.version, updated_at = EXCLUDED.updated_at,
            partner_type = EXCLUDED.partner_type
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
        event.partner_type,
    )


async def hold_partner(conn: Connection, partner_id: str) -> None:
    """Keep the partner's projected state as read until commit (FOR SHARE): a state change
    waits for a decision made on it, then sees the registration it stored (uncommitted, it
    would not: READ COMMITTED)."""
    await conn.execute("SELECT 1 FROM partners WHERE partner_id = $1 FOR SHARE", partner_id)


async def partner_view(conn: Connection, partner_id: str) -> PartnerView | None:
    """The partner as deals projects it (None: never heard of)."""
    row = await conn.fetchrow("SELECT * FROM partners WHERE partner_id = $1", partner_id)
    return None if row is None else PartnerView.of(row)


async def partner_status(conn: Connection, partner_id: str) -> str | None:
    """The partner's projected status (None: deals never heard of it)."""
    status: str | None = await conn.fetchval(
        "SELECT status FROM partners WHERE partner_id = $1", partner_id
    )
    return status


async def live_registrations_of(conn: Connection, partner_id: str) -> list[asyncpg.Record]:
    """The partner's registrations that hold customers (submitted, approved, pending review),
    locked, in id order (the same order every time: two closers never deadlock)."""
    return list(
        await conn.fetch(
            """SELECT * FROM registrations
               WHERE partner_id = $1 AND status IN ('submitted', 'approved', 'pending_review')
               ORDER BY registration_id FOR UPDATE""",
            partner_id,
        )
    )


async def lock_customer(conn: Connection, customer: Customer) -> None:
    """Serialise decisions per customer across all deals instances (released at commit).

    Two keys, domain and name, taken in sorted order so two transactions never deadlock.
    """
    keys = {advisory_key("deals", "customer-name", customer.name_key)}
    if customer.former_name_key:  # rows stored under it are looked up by it too
        keys.add(advisory_key("deals", "customer-name", customer.former_name_key))
    if customer.domain:
        keys.add(advisory_key("deals", "customer-domain", customer.domain))
    await lock_in_order(conn, keys)


# Owners of opportunities on the customer's domain and of the registration's linked opportunity
# (no name: they count as they are), and each owner with a name in the customer's name block
# (the caller keeps those whose names are alike): each (owner, name) once, however many
# opportunities carry it.
DIRECT_OWNERS_SQL = """
SELECT owner, NULL AS customer_name FROM crm_deals
WHERE NOT deleted AND owner IS NOT NULL AND customer_domain = $1
UNION
SELECT owner, customer_name FROM crm_deals
WHERE NOT deleted AND owner IS NOT NULL AND name_key = $2 AND customer_name IS NOT NULL
UNION
SELECT owner, NULL FROM crm_deals
WHERE deal_key = $3 AND owner IS NOT NULL
"""


async def direct_owners(
    conn: Connection, customer: Customer, linked_deal: str | None, threshold: float
) -> list[str]:
    """The direct account owners of the customer: the owner of the linked opportunity and of
    every opportunity on the same customer (same domain, or names alike under the policy)."""
    rows = await conn.fetch(DIRECT_OWNERS_SQL, customer.domain, customer.name_key, linked_deal)
    named = {r["customer_name"] for r in rows if r["customer_name"] is not None}
    alike = customer.alike_names(named, threshold)
    return sorted(
        {r["owner"] for r in rows if r["customer_name"] is None or r["customer_name"] in alike}
    )


OVERLAPPING_SQL = """
SELECT r.partner_id, r.customer_name, r.customer_domain FROM registrations r
JOIN partners p USING (partner_id)
WHERE r.status IN ('approved', 'pending_review') AND p.status = 'active' AND r.partner_id <> $1
  AND r.customer_domain = $2
UNION
SELECT r.partner_id, r.customer_name, r.customer_domain FROM registrations r
JOIN partners p USING (partner_id)
WHERE r.status IN ('approved', 'pending_review') AND p.status = 'active' AND r.partner_id <> $1
  AND r.name_key = $3
"""


async def overlapping_partners(
    conn: Connection, partner_id: str, customer: Customer, threshold: float
) -> list[str]:
    """Other active partners holding an approved or pending registration on the customer (same
    domain, or names alike under the policy)."""
    rows = await conn.fetch(OVERLAPPING_SQL, partner_id, customer.domain, customer.name_key)
    return sorted(
        {
            r["partner_id"]
            for r in rows
            if customer.matches(Customer.parse(r["customer_name"], r["customer_domain"]), threshold)
        }
    )


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
    entry: LedgerEntry,
    expires_at: datetime | None = None,
) -> None:
    """The registration's new state with the reasons of the entry that changed it (the ledger
    keeps the earlier ones)."""
    await conn.execute(
        """UPDATE registrations SET status = $2, expires_at = COALESCE($3, expires_at),
               reasons = $4, partner_reasons = $5, updated_at = now()
           WHERE registration_id = $1""",
        row["registration_id"],
        entry.status.value,
        expires_at,
        list(entry.reasons),
        list(entry.told),
    )


async def store_link(
    conn: Connection, registration_id: str, deal_key: str, reason: str, told: str
) -> None:
    """Link the registration, its reasons saying how the link was found (`told`: the partner's)."""
    await conn.execute(
        """UPDATE registrations SET crm_deal_key = $2, reasons = reasons || $3::text,
               partner_reasons = COALESCE(partner_reasons, '{}') || $4::text, updated_at = now()
           WHERE registration_id = $1""",
        registration_id,
        deal_key,
        reason,
        told,
    )


async def lock_crm_link(conn: Connection, deal_key: str) -> None:
    """Serialise links to one CRM opportunity (released at commit): two never both hold it."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1)", advisory_key("deals", "crm-link", deal_key)
    )


async def crm_deal_seen(conn: Connection, deal_key: str) -> CrmDealSeen | None:
    """The opportunity as the link check compares it (None: the projection does not know it),
    held against change until the link commits (FOR SHARE): a link read beside a projection
    closing the deal saw it open, while the projection did not see the link yet, and the
    registration stayed approved on a closed deal (found in review). Now one waits for the
    other, and whichever comes second sees what the first did."""
    row = await conn.fetchrow(
        """SELECT deal_key, customer_name, customer_domain, amount, currency, deleted, status,
               closed_at
           FROM crm_deals WHERE deal_key = $1 FOR SHARE""",
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
        DealStatus(row["status"]),
        row["closed_at"],
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


async def append_ledger(conn: Connection, registration_id: str, entry: LedgerEntry) -> int:
    """One entry of the registration's decision ledger (append-only; the table refuses
    changes); returns its sequence number."""
    seq: int = await conn.fetchval(
        """INSERT INTO registration_ledger (registration_id, what, previous_status, status,
               principal_kind, principal, policy_version, reasons, partner_reasons, evidence)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb) RETURNING seq""",
        registration_id,
        entry.what.value,
        entry.previous_status.value if entry.previous_status else None,
        entry.status.value,
        entry.principal.kind.value,
        entry.principal.id,
        entry.policy_version,
        list(entry.reasons),
        list(entry.told),
        json.dumps(dict(entry.evidence), default=str),
    )
    return seq


async def policy_version_in_force(conn: Connection) -> str | None:
    """The policy version in force now (services/deals/policy.py keeps the versions), for
    changes made outside a route or job that holds the policy (a CRM close)."""
    version: str | None = await conn.fetchval(
        """SELECT version FROM policy_activations WHERE active_from <= now()
           ORDER BY active_from DESC, seq DESC LIMIT 1"""
    )
    return version


async def won_deal(conn: Connection, crm_deal_key: str | None) -> str | None:
    """'won' when the registration's linked opportunity is won now, else None: what a review
    decides from. The outcome stored when the deal closed during the review went stale when
    the deal reopened or the registration lost its link (a merge), and an approval then made
    it won (found in review)."""
    if crm_deal_key is None:
        return None
    status = await conn.fetchval(
        "SELECT status FROM crm_deals WHERE deal_key = $1 AND NOT deleted", crm_deal_key
    )
    return "won" if status == "won" else None


async def store_deal_outcome(conn: Connection, registration_id: str, outcome: str) -> None:
    """The outcome of the linked opportunity that closed while the registration awaited review."""
    await conn.execute(
        "UPDATE registrations SET deal_outcome = $2 WHERE registration_id = $1",
        registration_id,
        outcome,
    )


async def referral_of(conn: Connection, deal_key: str) -> tuple[str, datetime | None] | None:
    """The CRM source of an opportunity and when it was created (a referral's time)."""
    row = await conn.fetchrow(
        "SELECT source, created_at FROM crm_deals WHERE deal_key = $1", deal_key
    )
    return None if row is None else (row["source"], row["created_at"])


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


async def awaiting_outcome(
    conn: Connection, deal_key: str, closed_at: datetime | None
) -> list[asyncpg.Record]:
    """Registrations linked to `deal_key` that close with it, locked, in submission order: one
    awaiting review, and an approved one whose window held at the close (`closed_at`, by the
    CRM's clock), even if the expiry job expired it before the close was heard. Only one that
    was approved when it expired (its expiry entry says so; one without an entry, from before
    the ledger, counts as it did): found in review, a registration still awaiting review when
    its partner was expelled (expired then) became won on a close heard after it."""
    return list(
        await conn.fetch(
            """SELECT * FROM registrations r
               WHERE crm_deal_key = $1
                 AND (status = 'pending_review'
                      OR (status = 'approved' AND ($2::timestamptz IS NULL OR expires_at > $2))
                      OR (status = 'expired' AND expires_at > $2
                          AND coalesce((SELECT l.previous_status FROM registration_ledger l
                               WHERE l.registration_id = r.registration_id AND l.what = 'expired'
                               ORDER BY l.seq DESC LIMIT 1), 'approved') = 'approved'))
               ORDER BY submitted_at, registration_id FOR UPDATE""",
            deal_key,
            closed_at,
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
# The merged state of the run's opportunities, as arrays (products travel as JSON arrays:
# unnest cannot take an array of arrays), in `_STORED_COLUMNS` order.
_MERGED_ROWS = """
unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
       $8::numeric[], $9::text[], $10::text[], $11::text[], $12::date[], $13::text[],
       $14::text[], $15::boolean[], $16::timestamptz[], $17::boolean[], $18::text[],
       $19::integer[], $20::timestamptz[], $21::text[], $22::text[], $23::text[],
       $24::timestamptz[])
    AS u(deal_key, name, customer_name, customer_domain, customer_country, name_key, products,
         amount, currency, stage, status, close_date, owner, partner_ref, co_sell, created_at,
         deleted, field_timestamps, revision, ingested_at, merged_into, source, source_id,
         closed_at)
"""
_PRODUCTS = """CASE WHEN u.products IS NULL THEN NULL ELSE ARRAY(
        SELECT p.value FROM jsonb_array_elements_text(u.products::jsonb) WITH ORDINALITY AS p
        ORDER BY p.ordinality) END"""
# A new opportunity's first row is its merged state (one row version, not an empty row and
# its update). A plain insert: one created meanwhile by someone not holding its advisory key
# is a unique violation, never overwritten.
_INSERT_DEALS_SQL = f"""
INSERT INTO crm_deals (deal_key, source, source_id, name, customer_name, customer_domain,
    customer_country, name_key, products, amount, currency, stage, status, close_date, owner,
    partner_ref, co_sell, created_at, deleted, field_timestamps, revision, ingested_at,
    merged_into, closed_at)
SELECT u.deal_key, u.source, u.source_id, u.name, u.customer_name, u.customer_domain,
    u.customer_country, u.name_key, {_PRODUCTS}, u.amount, u.currency, u.stage, u.status,
    u.close_date, u.owner, u.partner_ref, u.co_sell, u.created_at, u.deleted,
    u.field_timestamps::jsonb, u.revision, u.ingested_at, u.merged_into, u.closed_at
FROM {_MERGED_ROWS}
"""
_UPDATE_DEALS_SQL = f"""
UPDATE crm_deals AS d SET
    name = u.name, customer_name = u.customer_name, customer_domain = u.customer_domain,
    customer_country = u.customer_country, name_key = u.name_key, products = {_PRODUCTS},
    amount = u.amount, currency = u.currency, stage = u.stage, status = u.status,
    close_date = u.close_date, owner = u.owner, partner_ref = u.partner_ref,
    co_sell = u.co_sell, created_at = u.created_at, deleted = u.deleted,
    field_timestamps = u.field_timestamps::jsonb, revision = u.revision,
    ingested_at = u.ingested_at, merged_into = u.merged_into, closed_at = u.closed_at
FROM {_MERGED_ROWS}
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
    "merged_into",
    "source",
    "source_id",
    "closed_at",
)


async def field_stamps(conn: Connection, keys: Sequence[str]) -> dict[str, dict[str, str]]:
    """Each held opportunity's field source times (field -> ISO time), unlocked: they only
    move forward, so a change older than all of them stays stale."""
    rows = await conn.fetch(
        "SELECT deal_key, field_timestamps FROM crm_deals WHERE deal_key = ANY($1::text[])",
        list(keys),
    )
    return {r["deal_key"]: json.loads(r["field_timestamps"]) for r in rows}


def crm_deal_lock_keys(changes: Sequence[CrmDealChanged]) -> set[int]:
    """The advisory keys of the opportunities CRM changes touch (a merge's survivor too)."""
    keys = {change.deal_key for change in changes}
    keys |= {f"{c.source.value}:{c.merged_into}" for c in changes if c.merged_into is not None}
    return {advisory_key("deals", "crm-deal", key) for key in keys}


async def lock_crm_deal_keys(conn: Connection, changes: Sequence[CrmDealChanged]) -> None:
    """Taken by the intake and by the consumer's batch before any opportunity row, all at once
    in ascending order: neither creates an opportunity the other is creating, nor waits for
    one the other holds while holding one it waits for (services/deals/crm_at_intake.py)."""
    await lock_in_order(conn, crm_deal_lock_keys(changes))


async def lock_deals(
    conn: Connection, keys: Sequence[str], new: Mapping[str, tuple[str, str]]
) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """The opportunities of `keys`, locked (one statement), and which of them are new: those
    not held yet, from `new` (deal key -> (source, source id)), as their row would read if
    created empty, for `store_deals` to insert. The caller holds their advisory keys
    (`lock_crm_deal_keys`), so nobody else creates them meanwhile."""
    rows = {r["deal_key"]: dict(r) for r in await conn.fetch(_LOCK_DEALS_SQL, list(keys))}
    created = {key for key in keys if key not in rows}
    for key in keys:  # in key order, as they are inserted
        if key in created:
            rows[key] = new_crm_deal(key, *new[key])
    return rows, created


def new_crm_deal(deal_key: str, source: str, source_id: str) -> dict[str, Any]:
    """An opportunity nobody has told us anything about yet, as the table's defaults make it
    (services/deals/migrations/0001_init.sql and later): open, not deleted, revision 0, no
    field stamps, every other field unknown."""
    row: dict[str, Any] = dict.fromkeys(_STORED_COLUMNS)
    row.update(
        deal_key=deal_key,
        source=source,
        source_id=source_id,
        name_key="",
        status="open",
        deleted=False,
        field_timestamps="{}",
        revision=0,
    )
    return row


async def store_deals(conn: Connection, rows: Sequence[Row], created: set[str]) -> None:
    """The merged opportunities: those in `created` inserted, the others updated, a statement
    each (`field_timestamps` and `products` as JSON)."""
    for sql, part in (
        (_INSERT_DEALS_SQL, [row for row in rows if row["deal_key"] in created]),
        (_UPDATE_DEALS_SQL, [row for row in rows if row["deal_key"] not in created]),
    ):
        if part:
            await conn.execute(sql, *([row[column] for row in part] for column in _STORED_COLUMNS))


async def bump_revision(conn: Connection, deal_key: str) -> asyncpg.Record | None:
    """The opportunity with its revision bumped (None if unknown)."""
    return await conn.fetchrow(
        "UPDATE crm_deals SET revision = revision + 1 WHERE deal_key = $1 RETURNING *", deal_key
    )


async def unlink_registration(conn: Connection, registration_id: str) -> None:
    """The registration no longer holds a CRM deal (another holds the deal it followed)."""
    await conn.execute(
        "UPDATE registrations SET crm_deal_key = NULL, updated_at = now() WHERE registration_id = $1",
        registration_id,
    )
