"""Write side of attribution: the rows a settlement reads and writes (deals, touchpoints,
credits, registration signals), the per-deal advisory locks, and the set-based statements that
write a whole run back: at most one statement per table and kind of change, however many deals
the run holds."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from services.attribution.domain.corrections import HeldCredit
from services.attribution.domain.crm_links import CrmLink, LinkStatus
from services.attribution.domain.parking import Parked, Standing
from services.attribution.domain.touchpoints import ReportedTouchpoint, StoredTouchpoint
from services.attribution.records import DealRow, NewCredit, Reversal, TouchpointRow
from shared.db import Connection, advisory_key, columns, lock_in_order
from shared.events.attribution import CreditKind
from shared.events.partners import PartnerStatus
from shared.events.registrations import RegistrationStatus

# -- locks ---------------------------------------------------------------------------------------


def _lock_key(deal_key: str) -> int:
    return advisory_key("attribution", deal_key)


async def lock_deal(conn: Connection, deal_key: str) -> None:
    """Serialise everything that settles one deal (released at commit)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(deal_key))


async def lock_touchpoint(conn: Connection, touchpoint_id: str) -> None:
    """Serialise reports of one touchpoint id (a partner's source and external id), which may
    name two deals at once (taken before a deal's lock; released at commit)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1)", advisory_key("attribution-touchpoint", touchpoint_id)
    )


def deal_lock_keys(deal_keys: Iterable[str]) -> set[int]:
    """The advisory keys of deals."""
    return {_lock_key(key) for key in deal_keys}


async def lock_deals(conn: Connection, deal_keys: Sequence[str]) -> None:
    """Lock several deals in key order (no deadlocks between runs)."""
    await lock_in_order(conn, deal_lock_keys(deal_keys))


def reference_lock_keys(references: Iterable[str]) -> set[int]:
    """The advisory keys of CRM references (whatever the CRM: an identity link serves them
    all)."""
    return {advisory_key("attribution-crm-ref", ref) for ref in references}


async def lock_references(conn: Connection, references: Iterable[str]) -> None:
    """Serialise confirming or removing a CRM link with the snapshots naming its reference.
    Taken before any deal's lock: a consumer batch takes every reference it names first
    (handlers.batch_locks), so a later run of the batch never waits for one holding a deal."""
    await lock_in_order(conn, reference_lock_keys(references))


# -- loading a run -------------------------------------------------------------------------------


async def load_deals(conn: Connection, deal_keys: Sequence[str]) -> dict[str, DealRow]:
    rows = await conn.fetch(
        """SELECT d.*, EXISTS (SELECT 1 FROM parked_credits p WHERE p.deal_key = d.deal_key)
               AS had_parked
           FROM deals d WHERE d.deal_key = ANY($1::text[]) ORDER BY d.deal_key FOR UPDATE OF d""",
        deal_keys,
    )
    return {r["deal_key"]: DealRow.of_row(r) for r in rows}


async def load_touchpoints(
    conn: Connection, deal_keys: Sequence[str], touchpoint_ids: Iterable[str]
) -> dict[str, TouchpointRow]:
    """The deals' touchpoints and these touchpoints (they may name another deal), by id."""
    rows = await conn.fetch(
        """SELECT * FROM touchpoints
           WHERE deal_key = ANY($1::text[]) OR touchpoint_id = ANY($2::text[])
           ORDER BY touchpoint_id FOR UPDATE""",
        deal_keys,
        sorted(set(touchpoint_ids)),
    )
    return {r["touchpoint_id"]: TouchpointRow.of_row(r) for r in rows}


async def touchpoint_deals(conn: Connection, touchpoint_ids: Sequence[str]) -> list[str]:
    """The deals these touchpoints are on now (a registration's may have moved)."""
    rows = await conn.fetch(
        "SELECT DISTINCT deal_key FROM touchpoints WHERE touchpoint_id = ANY($1::text[])",
        list(touchpoint_ids),
    )
    return [row["deal_key"] for row in rows]


async def load_active_credits(
    conn: Connection, deal_keys: Sequence[str]
) -> dict[str, list[HeldCredit]]:
    """The deals' active credits, by deal key, each deal's in credit id order."""
    rows = await conn.fetch(
        """SELECT * FROM credits WHERE deal_key = ANY($1::text[]) AND reversed_at IS NULL
           ORDER BY credit_id""",
        deal_keys,
    )
    held: dict[str, list[HeldCredit]] = {}
    for r in rows:
        held.setdefault(r["deal_key"], []).append(
            HeldCredit(
                r["credit_id"],
                r["partner_id"],
                CreditKind(r["kind"]),
                r["amount"],
                r["currency"],
                r["original_amount"],
                r["original_currency"],
                r["close_date"],
            )
        )
    return held


# -- writing a run back --------------------------------------------------------------------------


async def save_snapshots(conn: Connection, deals: Sequence[DealRow]) -> None:
    """Deals that took a newer snapshot, written in full (one statement)."""
    if not deals:
        return
    await conn.execute(
        """
        INSERT INTO deals (deal_key, source, revision, status, deleted, amount, currency,
            close_date, customer, products, co_sell, partner_ref, created_at, changed_at,
            ingested_at, calculation, last_note, won_at, updated_at)
        SELECT d.deal_key, d.source, d.revision, d.status, d.deleted, d.amount,
            d.currency, d.close_date, d.customer::jsonb,
            ARRAY(SELECT p FROM jsonb_array_elements_text(d.products::jsonb)
                  WITH ORDINALITY AS x(p, n) ORDER BY n),
            d.co_sell, d.partner_ref, d.created_at, d.changed_at, d.ingested_at,
            d.calculation, d.last_note, d.won_at, now()
        FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::bool[],
            $6::numeric[], $7::text[], $8::date[], $9::text[], $10::text[], $11::bool[],
            $12::text[], $13::timestamptz[], $14::timestamptz[], $15::timestamptz[],
            $16::int[], $17::text[], $18::timestamptz[])
            AS d(deal_key, source, revision, status, deleted, amount, currency,
                 close_date, customer, products, co_sell, partner_ref, created_at,
                 changed_at, ingested_at, calculation, last_note, won_at)
        ON CONFLICT (deal_key) DO UPDATE SET revision = EXCLUDED.revision,
            status = EXCLUDED.status, deleted = EXCLUDED.deleted,
            amount = EXCLUDED.amount, currency = EXCLUDED.currency,
            close_date = EXCLUDED.close_date, customer = EXCLUDED.customer,
            products = EXCLUDED.products, co_sell = EXCLUDED.co_sell,
            partner_ref = EXCLUDED.partner_ref, created_at = EXCLUDED.created_at,
            changed_at = EXCLUDED.changed_at, ingested_at = EXCLUDED.ingested_at,
            calculation = EXCLUDED.calculation, last_note = EXCLUDED.last_note,
            won_at = EXCLUDED.won_at, updated_at = now()
        """,
        [d.deal_key for d in deals],
        [d.source for d in deals],
        [d.revision for d in deals],
        [d.status for d in deals],
        [d.deleted for d in deals],
        [d.amount for d in deals],
        [d.currency for d in deals],
        [d.close_date for d in deals],
        [d.customer for d in deals],
        [json.dumps(list(d.products)) for d in deals],
        [d.co_sell for d in deals],
        [d.partner_ref for d in deals],
        [d.created_at for d in deals],
        [d.changed_at for d in deals],
        [d.ingested_at for d in deals],
        [d.calculation for d in deals],
        [d.last_note for d in deals],
        [d.won_at for d in deals],
    )


async def save_settlements(conn: Connection, deals: Sequence[DealRow]) -> None:
    """Deals settled again without a new snapshot: their calculation and note (one statement)."""
    if not deals:
        return
    await conn.execute(
        """UPDATE deals SET calculation = d.calculation, last_note = d.last_note
           FROM unnest($1::text[], $2::int[], $3::text[])
               AS d(deal_key, calculation, last_note)
           WHERE deals.deal_key = d.deal_key""",
        [d.deal_key for d in deals],
        [d.calculation for d in deals],
        [d.last_note for d in deals],
    )


async def save_touchpoints(conn: Connection, touchpoints: Sequence[TouchpointRow]) -> None:
    """New touchpoints in full; a stored one changes in its mutable columns (status, activity,
    time, and a sourcing one's link: its deal when a CRM merge moved it)."""
    if not touchpoints:
        return
    await conn.execute(
        """
        INSERT INTO touchpoints (touchpoint_id, deal_key, partner_id, kind, source,
            origin, occurred_at, registration_status, active, linked_at, unlinked, campaign_id)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
            $6::text[], $7::timestamptz[], $8::text[], $9::bool[], $10::timestamptz[],
            $11::bool[], $12::text[])
        ON CONFLICT (touchpoint_id) DO UPDATE SET occurred_at = EXCLUDED.occurred_at,
            registration_status = EXCLUDED.registration_status, active = EXCLUDED.active,
            deal_key = EXCLUDED.deal_key, linked_at = EXCLUDED.linked_at,
            unlinked = EXCLUDED.unlinked
        """,
        [t.touchpoint_id for t in touchpoints],
        [t.deal_key for t in touchpoints],
        [t.partner_id for t in touchpoints],
        [t.kind for t in touchpoints],
        [t.source for t in touchpoints],
        [t.origin for t in touchpoints],
        [t.occurred_at for t in touchpoints],
        [t.registration_status for t in touchpoints],
        [t.active for t in touchpoints],
        [t.linked_at for t in touchpoints],
        [t.unlinked for t in touchpoints],
        [t.campaign_id for t in touchpoints],
    )


async def save_reversals(conn: Connection, reversals: dict[str, Reversal]) -> None:
    """Stored credits reversed in this transaction, by credit id (one statement). Written
    before the new credits: a partner's new credit may take its reversed one's place."""
    if not reversals:
        return
    items = list(reversals.items())
    await conn.execute(
        """UPDATE credits SET reversal_id = r.reversal_id,
               reversal_reason = r.reason, reversed_at = r.at
           FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
               AS r(credit_id, reversal_id, reason, at)
           WHERE credits.credit_id = r.credit_id""",
        [credit_id for credit_id, _ in items],
        [r.reversal_id for _, r in items],
        [r.reason for _, r in items],
        [r.at for _, r in items],
    )


async def save_new_credits(conn: Connection, new: Sequence[NewCredit]) -> None:
    """Credits issued in this transaction (one statement); one issued and reversed again in
    it is written reversed."""
    if not new:
        return
    await conn.execute(
        """
        INSERT INTO credits (credit_id, deal_key, partner_id, kind, amount, currency,
            original_amount, original_currency, fx_rate, share, model, config_version,
            reasons, close_date, deal_revision, replaces, issued_at, reversal_id,
            reversal_reason, reversed_at)
        SELECT c.credit_id, c.deal_key, c.partner_id, c.kind, c.amount, c.currency,
            c.original_amount, c.original_currency, c.fx_rate, c.share, c.model,
            c.config_version, c.reasons::jsonb, c.close_date, c.deal_revision,
            c.replaces, c.issued_at, c.reversal_id, c.reversal_reason, c.reversed_at
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[],
            $6::text[], $7::numeric[], $8::text[], $9::numeric[], $10::numeric[],
            $11::text[], $12::text[], $13::text[], $14::date[], $15::int[],
            $16::text[], $17::timestamptz[], $18::text[], $19::text[],
            $20::timestamptz[])
            AS c(credit_id, deal_key, partner_id, kind, amount, currency,
                 original_amount, original_currency, fx_rate, share, model,
                 config_version, reasons, close_date, deal_revision, replaces, issued_at,
                 reversal_id, reversal_reason, reversed_at)
        """,
        *columns([_credit_row(c) for c in new]),
    )


def _credit_row(credit: NewCredit) -> tuple[Any, ...]:
    """A new credit as its `credits` row, in the order save_new_credits lists the columns."""
    held, reversal = credit.held, credit.reversal
    return (
        held.credit_id,
        credit.deal_key,
        held.partner_id,
        held.kind.value,
        held.amount,
        held.currency,
        held.original_amount,
        held.original_currency,
        credit.fx_rate,
        credit.line_share,
        credit.model,
        credit.config_version,
        json.dumps(credit.reasons),
        held.close_date,
        credit.deal_revision,
        credit.replaces,
        credit.issued_at,
        reversal.reversal_id if reversal else None,
        reversal.reason if reversal else None,
        reversal.at if reversal else None,
    )


# -- registration signals and reported touchpoints ----------------------------------------------


async def record_registration(
    conn: Connection,
    *,
    registration_id: str,
    partner_id: str,
    status: RegistrationStatus,
    conflicts: int | None,
    crm_deal_key: str | None,
    changed_at: datetime,
) -> None:
    """Remember a registration's signals (for the health score); an older event never
    overwrites a newer status, and conflicts found are never forgotten."""
    await conn.execute(
        """
        INSERT INTO registrations (registration_id, partner_id, status, conflicts, crm_deal_key,
            changed_at)
        VALUES ($1, $2, $3, COALESCE($4, 0), $5, $6)
        ON CONFLICT (registration_id) DO UPDATE SET
            status = CASE WHEN registrations.changed_at <= EXCLUDED.changed_at
                          THEN EXCLUDED.status ELSE registrations.status END,
            conflicts = GREATEST(registrations.conflicts, COALESCE($4, registrations.conflicts)),
            crm_deal_key = COALESCE(EXCLUDED.crm_deal_key, registrations.crm_deal_key),
            changed_at = GREATEST(registrations.changed_at, EXCLUDED.changed_at)
        """,
        registration_id,
        partner_id,
        status.value,
        conflicts,
        crm_deal_key,
        changed_at,
    )


async def stored_touchpoint(conn: Connection, touchpoint_id: str) -> StoredTouchpoint | None:
    row = await conn.fetchrow(
        """SELECT deal_key, partner_id, kind, occurred_at FROM touchpoints
           WHERE touchpoint_id = $1""",
        touchpoint_id,
    )
    if row is None:
        return None
    return StoredTouchpoint(row["deal_key"], row["partner_id"], row["kind"], row["occurred_at"])


async def reported_of_kind(
    conn: Connection, deal_key: str, partner_id: str, kind: str
) -> str | None:
    """The touchpoint this partner reported of this kind on this deal, if any."""
    found: str | None = await conn.fetchval(
        """SELECT touchpoint_id FROM touchpoints
           WHERE deal_key = $1 AND partner_id = $2 AND kind = $3 AND origin = 'api'
           LIMIT 1""",
        deal_key,
        partner_id,
        kind,
    )
    return found


async def deal_created_at(conn: Connection, deal_key: str) -> datetime | None:
    created: datetime | None = await conn.fetchval(
        "SELECT created_at FROM deals WHERE deal_key = $1", deal_key
    )
    return created


async def reported_deal_key(conn: Connection, touchpoint_id: str) -> str | None:
    """The deal of a touchpoint partner apps or CRMs reported (None: no such touchpoint)."""
    found: str | None = await conn.fetchval(
        "SELECT deal_key FROM touchpoints WHERE touchpoint_id = $1 AND origin = 'api'",
        touchpoint_id,
    )
    return found


async def approve_touchpoint(conn: Connection, touchpoint_id: str) -> bool:
    """Mark a reported touchpoint approved by a channel manager; False if it already was."""
    status: str = await conn.execute(
        """UPDATE touchpoints SET approved = true
           WHERE touchpoint_id = $1 AND origin = 'api' AND NOT approved""",
        touchpoint_id,
    )
    return status.endswith(" 1")


async def insert_reported_touchpoint(conn: Connection, touchpoint: ReportedTouchpoint) -> None:
    await conn.execute(
        """INSERT INTO touchpoints (touchpoint_id, deal_key, partner_id, kind, occurred_at,
               source, origin, external_id, reported_by, received_at, approved, campaign_id)
           VALUES ($1, $2, $3, $4, $5, $6, 'api', $7, $8, $9, $10, $11)""",
        touchpoint.touchpoint_id,
        touchpoint.deal_key,
        touchpoint.partner_id,
        touchpoint.kind.value,
        touchpoint.occurred_at,
        touchpoint.source,
        touchpoint.external_id,
        touchpoint.reported_by,
        touchpoint.received_at,
        touchpoint.approved,
        touchpoint.campaign_id,
    )


# -- partners and parked credits ------------------------------------------------------------------


async def links_and_standings(
    conn: Connection, references: Iterable[tuple[str, str]], partner_ids: Iterable[str]
) -> tuple[list[CrmLink], dict[str, Standing]]:
    """The confirmed links that can resolve these (source, reference) pairs (their own, and
    identity links of the references) and the status of these partners and of the partners
    those links name, as partners.lifecycle.v1 last said (none: never heard of). One
    statement: a run's statement budget is fixed (tests/integration/test_attribution_batches)."""
    pairs = sorted(set(references))
    rows = await conn.fetch(
        """WITH links AS (
               SELECT l.* FROM crm_links l
               WHERE l.status = 'confirmed' AND (
                   (l.source, l.external_id) IN (
                       SELECT * FROM unnest($1::text[], $2::text[]))
                   OR (l.external_id = l.partner_id AND l.external_id = ANY($2::text[]))))
           SELECT true AS link, source, external_id, partner_id, status,
                  NULL::timestamptz AS changed_at, NULL::int AS version
           FROM links
           UNION ALL
           SELECT false, NULL, NULL, a.partner_id, a.status, a.changed_at, a.version
           FROM partner_access a
           WHERE a.partner_id = ANY($3::text[]) OR a.partner_id IN (SELECT partner_id FROM links)""",
        [source for source, _ in pairs],
        [reference for _, reference in pairs],
        sorted(set(partner_ids)),
    )
    links = [_link(r) for r in rows if r["link"]]
    standings = {
        r["partner_id"]: Standing(PartnerStatus(r["status"]), r["changed_at"], r["version"])
        for r in rows
        if not r["link"]
    }
    return links, standings


async def save_parked(conn: Connection, parked: dict[str, tuple[Parked, ...]]) -> None:
    """What the deals settled again park now replaces what they parked before (one statement;
    none when no such deal parked anything, before or now)."""
    if not parked:
        return
    rows = [(key, *_parked_row(p)) for key, held in parked.items() for p in held]
    await conn.execute(
        """WITH gone AS (DELETE FROM parked_credits WHERE deal_key = ANY($1::text[]))
           INSERT INTO parked_credits (deal_key, partner_id, kind, amount, currency, reason)
           SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::numeric[],
               $6::text[], $7::text[])""",
        sorted(parked),
        *(columns(rows) if rows else [[]] * 6),
    )


def _parked_row(parked: Parked) -> tuple[Any, ...]:
    kind = None if parked.kind is None else parked.kind.value
    return (parked.partner_id, kind, parked.amount, parked.currency, parked.reason)


# -- CRM account links ---------------------------------------------------------------------------


def _link(row: Any) -> CrmLink:
    return CrmLink(row["source"], row["external_id"], row["partner_id"], LinkStatus(row["status"]))


async def crm_link(conn: Connection, source: str, external_id: str) -> CrmLink | None:
    row = await conn.fetchrow(
        "SELECT * FROM crm_links WHERE source = $1 AND external_id = $2 FOR UPDATE",
        source,
        external_id,
    )
    return None if row is None else _link(row)


async def propose_link(conn: Connection, link: CrmLink, proposed_by: str, at: datetime) -> None:
    """Record (or re-point, while unconfirmed) a proposed link."""
    await conn.execute(
        """INSERT INTO crm_links (source, external_id, partner_id, status, proposed_by,
               proposed_at)
           VALUES ($1, $2, $3, 'proposed', $4, $5)
           ON CONFLICT (source, external_id) DO UPDATE SET partner_id = EXCLUDED.partner_id,
               proposed_by = EXCLUDED.proposed_by, proposed_at = EXCLUDED.proposed_at
           WHERE crm_links.status = 'proposed'""",
        link.source,
        link.external_id,
        link.partner_id,
        proposed_by,
        at,
    )


async def confirm_link(
    conn: Connection, source: str, external_id: str, confirmed_by: str, at: datetime
) -> bool:
    """Confirm a proposed link; False when it was confirmed already."""
    status: str = await conn.execute(
        """UPDATE crm_links SET status = 'confirmed', confirmed_by = $3, confirmed_at = $4
           WHERE source = $1 AND external_id = $2 AND status = 'proposed'""",
        source,
        external_id,
        confirmed_by,
        at,
    )
    return status.endswith(" 1")


async def remove_link(conn: Connection, source: str, external_id: str) -> None:
    await conn.execute(
        "DELETE FROM crm_links WHERE source = $1 AND external_id = $2", source, external_id
    )


async def deals_naming(conn: Connection, link: CrmLink) -> list[str]:
    """The deals whose CRM reference this link may resolve (an identity link: from every CRM)."""
    rows = await conn.fetch(
        """SELECT deal_key FROM deals
           WHERE partner_ref = $2 AND (source = $1 OR $3) ORDER BY deal_key""",
        link.source,
        link.external_id,
        link.is_identity,
    )
    return [r["deal_key"] for r in rows]
