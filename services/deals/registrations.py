"""Service layer of deals: registrations, CRM projection, partner projection, expiry.

Loads what the rules need, calls the pure domain, stores the decision and writes its events to
the outbox, all in the caller's transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any

import asyncpg

from services.deals.domain.crm import (
    CLOSING_WITH_DEAL,
    close_linked_registration,
    closed_outcome,
    merge_crm_change,
)
from services.deals.domain.customers import name_key, normalise_domain
from services.deals.domain.rules import (
    Decision,
    ExistingRegistration,
    OpenOpportunity,
    PartnerView,
    RegistrationRequest,
    RulesOfEngagement,
    check_registration,
)
from shared.db import Connection, Pool, advisory_key
from shared.events.crm import CrmDealChanged, CrmSource, Customer, DealStage, DealStatus
from shared.events.notifications import PartnerNotification
from shared.events.opportunities import DealStateChanged, LinkedRegistration
from shared.events.partners import PartnerStateChanged, PartnerStatus
from shared.events.registrations import (
    RegistrationDecided,
    RegistrationStatus,
    RegistrationStatusChanged,
)
from shared.outbox import Outbox, OutgoingEvent
from shared.topics import DEAL_OPPORTUNITIES, DEAL_REGISTRATIONS, PARTNER_NOTIFICATIONS


def now() -> datetime:
    return datetime.now(UTC)


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


# Candidate lookups of the conflict check. Each branch of a UNION is one index lookup (partial
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


async def load_candidates(
    conn: Connection, request: RegistrationRequest, policy: RulesOfEngagement
) -> tuple[list[ExistingRegistration], list[OpenOpportunity]]:
    """Registrations and open opportunities that might be the same customer (indexed lookups)."""
    key = name_key(request.customer_name)
    since = request.submitted_at.timestamp() - policy.protection_days * 86400
    rows = await conn.fetch(
        HOLDING_REGISTRATIONS_SQL,
        normalise_domain(request.customer_domain),
        key,
        since,
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
    deals = await conn.fetch(
        OPEN_DIRECT_OPPORTUNITIES_SQL,
        normalise_domain(request.customer_domain),
        key,
    )
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


async def lock_customer(conn: Connection, request: RegistrationRequest) -> None:
    """Serialise decisions per customer across all deals instances (released at commit).

    Two keys, domain and name, taken in sorted order so two transactions never deadlock.
    """
    keys = sorted(
        {
            advisory_key("deals", "customer-domain", d)
            for d in [normalise_domain(request.customer_domain)]
            if d
        }
        | {advisory_key("deals", "customer-name", name_key(request.customer_name))}
    )
    for key in keys:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", key)


async def decide(
    conn: Connection, policy: RulesOfEngagement, request: RegistrationRequest
) -> Decision:
    partner = await load_partner(conn, request.partner_id)
    registrations, opportunities = await load_candidates(conn, request, policy)
    return check_registration(policy, request, partner, registrations, opportunities)


def _notification(
    partner_id: str,
    recipient: str,
    kind: str,
    subject: str,
    body: str,
    registration_id: str,
    occurrence: str = "",
) -> PartnerNotification:
    return PartnerNotification(
        notification_id=str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"{registration_id}/{kind}/{recipient}/{occurrence}")
        ),
        partner_id=partner_id,
        recipient=recipient,
        kind=kind,
        subject=subject,
        body=body,
        registration_id=registration_id,
        created_at=now(),
    )


async def register(
    conn: Connection,
    outbox: Outbox,
    policy: RulesOfEngagement,
    request: RegistrationRequest,
    crm_deal_key: str | None,
) -> tuple[str, Decision]:
    await lock_customer(conn, request)
    decision = await decide(conn, policy, request)
    registration_id = f"reg_{uuid.uuid4().hex[:16]}"
    decided_at = now()
    domain = normalise_domain(request.customer_domain)
    inputs = {
        "request": {
            k: (sorted(v) if isinstance(v, frozenset) else v) for k, v in asdict(request).items()
        },
        "conflicts_considered": [c.model_dump(mode="json") for c in decision.conflicts],
    }
    await conn.execute(
        """
        INSERT INTO registrations (registration_id, partner_id, customer_name, customer_domain, customer_country,
            name_key, products, amount, currency, status, reasons, conflicts, policy_version, inputs,
            submitted_at, decided_at, expires_at, crm_deal_key, updated_at)
        VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12::jsonb,$13,$14::jsonb,$15,$16,$17,$18,$16)
        """,
        registration_id,
        request.partner_id,
        request.customer_name,
        domain,
        request.customer_country,
        name_key(request.customer_name),
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
    )
    customer = Customer(name=request.customer_name, domain=domain, country=request.customer_country)
    await outbox.publish(
        conn,
        DEAL_REGISTRATIONS,
        RegistrationDecided(
            registration_id=registration_id,
            partner_id=request.partner_id,
            customer=customer,
            products=tuple(sorted(request.products)),
            amount=request.amount,
            currency=request.currency,
            status=decision.status,
            reasons=decision.reasons,
            conflicts=decision.conflicts,
            policy_version=decision.policy_version,
            decided_at=decided_at,
            expires_at=decision.expires_at,
            crm_deal_key=crm_deal_key,
        ),
        subject=registration_id,
    )
    await _notify_decision(conn, outbox, policy, registration_id, request, decision)
    if crm_deal_key is not None:
        # Downstream learns the sourcing partner of an opportunity it may already know.
        await publish_deal_state(conn, outbox, crm_deal_key, ingested_at=None)
    return registration_id, decision


async def _notify_decision(
    conn: Connection,
    outbox: Outbox,
    policy: RulesOfEngagement,
    registration_id: str,
    request: RegistrationRequest,
    decision: Decision,
) -> None:
    summary = "; ".join(decision.reasons)
    kind = {
        RegistrationStatus.APPROVED: "registration_approved",
        RegistrationStatus.REJECTED: "conflict" if decision.conflicts else "registration_rejected",
        RegistrationStatus.PENDING_REVIEW: "pending_review",
    }[decision.status]
    notes = [
        _notification(
            request.partner_id,
            request.partner_id,
            kind,
            f"Registration {registration_id} for {request.customer_name}: {decision.status.value}",
            summary,
            registration_id,
        )
    ]
    direct = decision.direct_conflict
    if direct is not None:
        notes.append(
            _notification(
                request.partner_id,
                direct.party,
                "direct_sales_conflict",
                f"Partner {request.partner_id} registered {request.customer_name}, "
                f"your open opportunity {direct.reference}",
                summary,
                registration_id,
            )
        )
    if decision.status is RegistrationStatus.APPROVED:
        owners = await conn.fetch(
            "SELECT DISTINCT owner FROM crm_deals WHERE owner IS NOT NULL AND NOT deleted AND customer_domain = $1",
            normalise_domain(request.customer_domain),
        )
        for owner in owners:
            notes.append(
                _notification(
                    request.partner_id,
                    owner["owner"],
                    "co_sell",
                    f"Co-sell: {request.partner_id} is approved on {request.customer_name}",
                    summary,
                    registration_id,
                )
            )
        if policy.overlap_hints:
            others = await conn.fetch(
                """SELECT DISTINCT r.partner_id FROM registrations r JOIN partners p USING (partner_id)
                   WHERE r.status IN ('approved', 'pending_review') AND p.status = 'active'
                     AND r.partner_id <> $1 AND r.customer_domain = $2""",
                request.partner_id,
                normalise_domain(request.customer_domain),
            )
            for other in others:
                notes.append(
                    _notification(
                        other["partner_id"],
                        other["partner_id"],
                        "overlap_hint",
                        f"Another partner is working {request.customer_name}",
                        "A partner registered a different product on an account you are working.",
                        registration_id,
                    )
                )
    for note in notes:
        await outbox.publish(conn, PARTNER_NOTIFICATIONS, note, subject=note.partner_id)


async def store_status(
    conn: Connection, row: Any, status: RegistrationStatus, expires_at: datetime | None = None
) -> None:
    await conn.execute(
        """UPDATE registrations SET status = $2, expires_at = COALESCE($3, expires_at), updated_at = now()
           WHERE registration_id = $1""",
        row["registration_id"],
        status.value,
        expires_at,
    )


def status_change_events(
    row: Any,
    status: RegistrationStatus,
    reason: str,
    expires_at: datetime | None = None,
) -> list[OutgoingEvent]:
    """What a registration's status change announces: the change, and a notification when it
    expired."""
    events = [
        OutgoingEvent(
            DEAL_REGISTRATIONS,
            RegistrationStatusChanged(
                registration_id=row["registration_id"],
                partner_id=row["partner_id"],
                previous_status=RegistrationStatus(row["status"]),
                status=status,
                reason=reason,
                changed_at=now(),
                expires_at=expires_at or row["expires_at"],
                crm_deal_key=row["crm_deal_key"],
                amount=Decimal(row["amount"]),
                currency=row["currency"],
            ),
            subject=row["registration_id"],
        )
    ]
    if status is RegistrationStatus.EXPIRED:
        note = _notification(
            row["partner_id"],
            row["partner_id"],
            "expired",
            f"Registration {row['registration_id']} expired",
            reason,
            row["registration_id"],
        )
        events.append(OutgoingEvent(PARTNER_NOTIFICATIONS, note, subject=row["partner_id"]))
    return events


async def change_status(
    conn: Connection,
    outbox: Outbox,
    row: Any,
    status: RegistrationStatus,
    reason: str,
    expires_at: datetime | None = None,
) -> None:
    await store_status(conn, row, status, expires_at)
    await outbox.publish_many(conn, status_change_events(row, status, reason, expires_at))


async def run_expiry(
    pool: Pool, outbox: Outbox, policy: RulesOfEngagement, at: datetime
) -> tuple[int, int]:
    """Warn partners whose window ends soon and expire the registrations due at `at`, in
    batches (one transaction each) until none is left. Returns (warned, expired)."""
    warned = expired = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            batch_warned = await warn_expiring(conn, outbox, policy, at)
            batch_expired = await expire_due(conn, outbox, at)
        warned += batch_warned
        expired += batch_expired
        if not batch_warned and not batch_expired:
            return warned, expired


async def warn_expiring(
    conn: Connection, outbox: Outbox, policy: RulesOfEngagement, at: datetime
) -> int:
    """Tell partners, once per protection-window end, that their registration expires soon."""
    rows = await conn.fetch(EXPIRING_SOON_SQL, at + timedelta(days=policy.expiry_warning_days))
    warned = 0
    for row in rows:
        expires_at: datetime = row["expires_at"]
        if expires_at <= at:
            continue  # already due: expiry itself tells the partner
        warned += 1
        await conn.execute(
            "UPDATE registrations SET expiry_warned_for = expires_at WHERE registration_id = $1",
            row["registration_id"],
        )
        days = max(1, (expires_at - at).days)
        note = _notification(
            row["partner_id"],
            row["partner_id"],
            "expiring_soon",
            f"Registration {row['registration_id']} for {row['customer_name']} expires in {days} day(s)",
            f"Protection ends {expires_at.isoformat()}; request an extension if the deal is still active.",
            row["registration_id"],
            occurrence=expires_at.isoformat(),
        )
        await outbox.publish(conn, PARTNER_NOTIFICATIONS, note, subject=note.partner_id)
    return warned


async def expire_due(conn: Connection, outbox: Outbox, at: datetime) -> int:
    rows = await conn.fetch(DUE_TO_EXPIRE_SQL, at)
    for row in rows:
        await change_status(
            conn,
            outbox,
            row,
            RegistrationStatus.EXPIRED,
            f"protection window ended at {row['expires_at'].isoformat()}",
        )
    return len(rows)


# How the projection stores what a merge takes: numeric(20, 4) rounds half away from zero,
# timestamptz comes back in UTC. The in-memory state of a run holds values as stored, so a later
# change in the run compares with (and publishes) what one-at-a-time processing would re-read.
_AMOUNT_SCALE = Decimal("0.0001")
_WIDE = Context(prec=100)


def _as_stored(value: Any) -> Any:
    if isinstance(value, Decimal):
        try:
            return value.quantize(_AMOUNT_SCALE, rounding=ROUND_HALF_UP, context=_WIDE)
        except InvalidOperation:
            return value  # far out of range: the write refuses it, as it always did
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return value


def deal_state(row: Mapping[str, Any] | asyncpg.Record, linked: Sequence[Any]) -> DealStateChanged:
    """The whole merged state of an opportunity (as stored) with its linked registrations."""
    return DealStateChanged(
        deal_key=row["deal_key"],
        source=CrmSource(row["source"]),
        source_id=row["source_id"],
        revision=row["revision"],
        name=row["name"],
        customer=Customer(
            name=row["customer_name"],
            domain=row["customer_domain"],
            country=row["customer_country"],
        ),
        products=tuple(row["products"] or ()),
        amount=row["amount"],
        currency=row["currency"],
        stage=DealStage(row["stage"]) if row["stage"] else None,
        status=DealStatus(row["status"]),
        close_date=row["close_date"],
        owner=row["owner"],
        partner_ref=row["partner_ref"],
        co_sell=bool(row["co_sell"]),
        created_at=row["created_at"],
        deleted=row["deleted"],
        registrations=tuple(
            LinkedRegistration(
                registration_id=r["registration_id"],
                partner_id=r["partner_id"],
                status=RegistrationStatus(r["status"]),
                submitted_at=r["submitted_at"],
            )
            for r in linked
        ),
        changed_at=now(),
        ingested_at=row["ingested_at"],
    )


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


async def publish_deal_state(
    conn: Connection, outbox: Outbox, deal_key: str, ingested_at: datetime | None
) -> None:
    """Bump the opportunity's revision and publish its whole merged state (no-op if unknown)."""
    row = await conn.fetchrow(
        """UPDATE crm_deals SET revision = revision + 1,
               ingested_at = COALESCE($2, ingested_at)
           WHERE deal_key = $1 RETURNING *""",
        deal_key,
        ingested_at,
    )
    if row is None:
        return
    linked = (await linked_registrations(conn, [deal_key])).get(deal_key, [])
    await outbox.publish(conn, DEAL_OPPORTUNITIES, deal_state(row, linked), subject=deal_key)


@dataclass(frozen=True)
class CrmChange:
    """A consumed canonical CRM change: when it entered Pollinate, and the trace it continues
    (None: the current span's)."""

    change: CrmDealChanged
    ingested_at: datetime | None = None
    traceparent: str | None = None


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


async def apply_crm_changes(conn: Connection, outbox: Outbox, changes: Sequence[CrmChange]) -> None:
    """Merge canonical changes, in order, into the projection, field by field, newest source
    time wins, and publish the merged state after each change that changed anything.

    Set-based: the run's opportunities are locked and loaded (created if new) at once, merged in
    memory, stored with one statement and their states recorded with one more. Closing an
    opportunity that has registrations awaiting the outcome updates those per opportunity."""
    if not changes:
        return
    keys = sorted({item.change.deal_key for item in changes})
    rows = {r["deal_key"]: dict(r) for r in await conn.fetch(_LOCK_DEALS_SQL, keys)}
    first: dict[str, CrmDealChanged] = {}
    for item in changes:
        first.setdefault(item.change.deal_key, item.change)
    missing = [key for key in keys if key not in rows]
    if missing:
        inserted = await conn.fetch(
            _INSERT_DEALS_SQL,
            missing,
            [first[key].source.value for key in missing],
            [first[key].source_id for key in missing],
        )
        rows.update({r["deal_key"]: dict(r) for r in inserted})
    stamps: dict[str, dict[str, str]] = {
        key: json.loads(row["field_timestamps"]) for key, row in rows.items()
    }

    # Merge in order; each change that changed anything publishes the state it left.
    published: list[tuple[CrmChange, dict[str, Any], DealStatus | None]] = []
    for item in changes:
        row = rows[item.change.deal_key]
        updates = merge_crm_change(row, stamps[item.change.deal_key], item.change)
        if not updates:
            continue  # newer source times are still remembered
        row.update({column: _as_stored(value) for column, value in updates.items()})
        row["revision"] += 1
        if item.ingested_at is not None:
            row["ingested_at"] = _as_stored(item.ingested_at)
        published.append((item, dict(row), closed_outcome(updates)))

    outgoing: list[OutgoingEvent] = []
    linked = await linked_registrations(conn, keys) if published else {}
    for item, state, outcome in published:
        key = state["deal_key"]
        events: list[OutgoingEvent] = []
        if outcome is not None and any(
            RegistrationStatus(r["status"]) in CLOSING_WITH_DEAL for r in linked.get(key, ())
        ):
            events += await _close_linked_registrations(conn, key, outcome)
            linked[key] = (await linked_registrations(conn, [key])).get(key, [])
        events.append(
            OutgoingEvent(DEAL_OPPORTUNITIES, deal_state(state, linked.get(key, ())), key)
        )
        outgoing += [replace(event, traceparent=item.traceparent) for event in events]

    for key, row in rows.items():
        row["field_timestamps"] = json.dumps(stamps[key])
        if row["products"] is not None:
            row["products"] = json.dumps(row["products"])
    await conn.execute(
        _STORE_DEALS_SQL,
        *([row[column] for row in rows.values()] for column in _STORED_COLUMNS),
    )
    await outbox.publish_many(conn, outgoing)


async def _close_linked_registrations(
    conn: Connection, deal_key: str, outcome: DealStatus
) -> list[OutgoingEvent]:
    """Close the registrations awaiting the outcome of `deal_key`; returns what to announce."""
    linked = await conn.fetch(
        """SELECT * FROM registrations
           WHERE crm_deal_key = $1 AND status IN ('approved', 'pending_review')
           ORDER BY submitted_at, registration_id FOR UPDATE""",
        deal_key,
    )
    events: list[OutgoingEvent] = []
    for registration in linked:
        closed, reason = close_linked_registration(
            RegistrationStatus(registration["status"]), deal_key, outcome
        )
        await store_status(conn, registration, closed)
        events += status_change_events(registration, closed, reason)
    return events


async def apply_partner_state(conn: Connection, event: PartnerStateChanged) -> None:
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
