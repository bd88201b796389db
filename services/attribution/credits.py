"""Service layer of attribution: keeps each deal's touchpoints and state, and settles its
credits (through the pure domain) whenever either changes, in the caller's transaction.

Every path that can move a deal's credits (a deal snapshot, a registration event, a reported
touchpoint) first takes the deal's advisory lock, so two instances never settle one deal at once
and a touchpoint reported while the deal closes is never missed.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.attribution.domain.config import AttributionConfig
from services.attribution.domain.corrections import HeldCredit, Settlement, settle
from services.attribution.domain.models import (
    Attribution,
    Touchpoint,
    TouchpointKind,
    attribute,
    close_instant,
)
from shared.db import Connection, advisory_key
from shared.events.attribution import CreditIssued, CreditKind, CreditReversed
from shared.events.crm import CrmSource, Customer, DealStatus
from shared.events.notifications import PartnerNotification
from shared.events.opportunities import DealStateChanged
from shared.events.registrations import RegistrationStatus
from shared.outbox import Outbox
from shared.topics import ATTRIBUTION_CREDITS, PARTNER_NOTIFICATIONS

CREDIT_NAMESPACE = uuid.UUID("9d7a4c1e-6f2b-4e0a-8c55-3a1b2d4e6f70")

# A registration makes its partner the deal's source once approved (and stays so when the deal
# closes: deals marks it won or lost then).
SOURCING_STATUSES = frozenset(
    {RegistrationStatus.APPROVED, RegistrationStatus.WON, RegistrationStatus.LOST}
)
# Registration statuses only move forward; a snapshot and a registration event may arrive in
# either order, so the more advanced status wins.
_STATUS_RANK = {
    RegistrationStatus.SUBMITTED: 0,
    RegistrationStatus.PENDING_REVIEW: 1,
    RegistrationStatus.APPROVED: 2,
    RegistrationStatus.REJECTED: 3,
    RegistrationStatus.EXPIRED: 3,
    RegistrationStatus.WON: 4,
    RegistrationStatus.LOST: 4,
}
# The partner a CRM names on the opportunity: a marketplace seller for AWS ACE, a referral
# otherwise (Microsoft co-sell referrals, a partner field in Salesforce/HubSpot).
_CRM_PARTNER_KIND = {
    CrmSource.AWS_ACE: TouchpointKind.MARKETPLACE_TRANSACTION,
    CrmSource.MICROSOFT: TouchpointKind.REFERRAL,
    CrmSource.SALESFORCE: TouchpointKind.REFERRAL,
    CrmSource.HUBSPOT: TouchpointKind.REFERRAL,
}


def now() -> datetime:
    return datetime.now(UTC)


async def lock_deal(conn: Connection, deal_key: str) -> None:
    """Serialise everything that settles one deal (released at commit)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", advisory_key("attribution", deal_key))


def _more_advanced(current: str | None, new: RegistrationStatus) -> RegistrationStatus:
    if current is None:
        return new
    held = RegistrationStatus(current)
    return new if _STATUS_RANK[new] >= _STATUS_RANK[held] else held


async def upsert_registration_touchpoint(
    conn: Connection,
    *,
    registration_id: str,
    partner_id: str,
    deal_key: str,
    status: RegistrationStatus,
    occurred_at: datetime,
    authoritative_time: bool,
) -> bool:
    """Record a linked registration as the deal's sourcing touchpoint; True if it changed."""
    touchpoint_id = f"registration:{registration_id}"
    row = await conn.fetchrow(
        "SELECT * FROM touchpoints WHERE touchpoint_id = $1 FOR UPDATE", touchpoint_id
    )
    merged = _more_advanced(row["registration_status"] if row else None, status)
    active = merged in SOURCING_STATUSES
    if row is None:
        await conn.execute(
            """INSERT INTO touchpoints (touchpoint_id, deal_key, partner_id, kind, occurred_at,
                   source, origin, registration_status, active)
               VALUES ($1, $2, $3, $4, $5, 'deals', 'registration', $6, $7)""",
            touchpoint_id,
            deal_key,
            partner_id,
            TouchpointKind.SOURCED_REGISTRATION.value,
            occurred_at,
            merged.value,
            active,
        )
        return active
    # Only the snapshot knows the submission time; registration events know the decision time.
    when = occurred_at if authoritative_time else row["occurred_at"]
    if (row["registration_status"], row["active"], row["occurred_at"]) == (
        merged.value,
        active,
        when,
    ):
        return False
    await conn.execute(
        """UPDATE touchpoints SET registration_status = $2, active = $3, occurred_at = $4
           WHERE touchpoint_id = $1""",
        touchpoint_id,
        merged.value,
        active,
        when,
    )
    return True


async def sync_crm_partner(conn: Connection, event: DealStateChanged) -> None:
    """The partner the CRM names is a touchpoint; naming another partner retires the old one."""
    await conn.execute(
        """UPDATE touchpoints SET active = false
           WHERE deal_key = $1 AND origin = 'crm' AND partner_id IS DISTINCT FROM $2""",
        event.deal_key,
        event.partner_ref,
    )
    if not event.partner_ref:
        return
    await conn.execute(
        """INSERT INTO touchpoints (touchpoint_id, deal_key, partner_id, kind, occurred_at, source,
               origin, active)
           VALUES ($1, $2, $3, $4, $5, $6, 'crm', true)
           ON CONFLICT (touchpoint_id) DO UPDATE SET active = true""",
        f"crm:{event.deal_key}:{event.partner_ref}",
        event.deal_key,
        event.partner_ref,
        _CRM_PARTNER_KIND[event.source].value,
        event.created_at or event.changed_at,
        event.source.value,
    )


def _describe_change(old: Any, event: DealStateChanged) -> str:
    head = f"revision {event.revision}"
    if old is None:
        return f"{head}: deal {event.status.value}"
    changes = []
    if event.deleted and not old["deleted"]:
        changes.append("deal deleted")
    if old["status"] != event.status.value:
        changes.append(f"status {old['status']} -> {event.status.value}")
    if (old["amount"], old["currency"]) != (event.amount, event.currency):
        changes.append(
            f"amount {old['amount']} {old['currency']} -> {event.amount} {event.currency}"
        )
    if old["close_date"] != event.close_date:
        changes.append(f"close date {old['close_date']} -> {event.close_date}")
    if old["partner_ref"] != event.partner_ref:
        changes.append(f"CRM partner {old['partner_ref']} -> {event.partner_ref}")
    return f"{head}: {', '.join(changes) or 'touchpoints or details changed'}"


async def apply_deal_state(
    conn: Connection,
    outbox: Outbox,
    config: AttributionConfig,
    event: DealStateChanged,
    ingested_at: datetime | None,
) -> Settlement | None:
    """Take a deal snapshot (newer revisions only), sync its touchpoints, settle its credits.

    Raises CannotAttribute when the deal is won but cannot be split (the caller dead-letters)."""
    await lock_deal(conn, event.deal_key)
    old = await conn.fetchrow("SELECT * FROM deals WHERE deal_key = $1", event.deal_key)
    if old is not None and old["revision"] >= event.revision:
        return None  # an older or repeated snapshot: the deal already moved past it
    trigger = _describe_change(old, event)
    await conn.execute(
        """
        INSERT INTO deals (deal_key, source, revision, status, deleted, amount, currency,
            close_date, customer, products, co_sell, partner_ref, created_at, changed_at,
            ingested_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12, $13, $14, $15, now())
        ON CONFLICT (deal_key) DO UPDATE SET revision = EXCLUDED.revision,
            status = EXCLUDED.status, deleted = EXCLUDED.deleted, amount = EXCLUDED.amount,
            currency = EXCLUDED.currency, close_date = EXCLUDED.close_date,
            customer = EXCLUDED.customer, products = EXCLUDED.products,
            co_sell = EXCLUDED.co_sell, partner_ref = EXCLUDED.partner_ref,
            created_at = EXCLUDED.created_at, changed_at = EXCLUDED.changed_at,
            ingested_at = EXCLUDED.ingested_at, updated_at = now()
        """,
        event.deal_key,
        event.source.value,
        event.revision,
        event.status.value,
        event.deleted,
        event.amount,
        event.currency,
        event.close_date,
        event.customer.model_dump_json(),
        list(event.products),
        event.co_sell,
        event.partner_ref,
        event.created_at,
        event.changed_at,
        ingested_at,
    )
    for linked in event.registrations:
        await upsert_registration_touchpoint(
            conn,
            registration_id=linked.registration_id,
            partner_id=linked.partner_id,
            deal_key=event.deal_key,
            status=linked.status,
            occurred_at=linked.submitted_at,
            authoritative_time=True,
        )
    await sync_crm_partner(conn, event)
    return await recalculate(
        conn,
        outbox,
        config,
        event.deal_key,
        at=event.changed_at,
        trigger=trigger,
        ingested_at=ingested_at,
    )


async def apply_registration(
    conn: Connection,
    outbox: Outbox,
    config: AttributionConfig,
    *,
    registration_id: str,
    partner_id: str,
    status: RegistrationStatus,
    conflicts: int | None,
    crm_deal_key: str | None,
    changed_at: datetime,
    ingested_at: datetime | None,
) -> Settlement | None:
    """Remember the registration's signals (health score) and, when it is linked to a CRM deal,
    its sourcing touchpoint; a change to a won deal's touchpoints settles its credits again."""
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
    if not crm_deal_key:
        return None
    await lock_deal(conn, crm_deal_key)
    changed = await upsert_registration_touchpoint(
        conn,
        registration_id=registration_id,
        partner_id=partner_id,
        deal_key=crm_deal_key,
        status=status,
        occurred_at=changed_at,
        authoritative_time=False,
    )
    if not changed:
        return None
    return await recalculate(
        conn,
        outbox,
        config,
        crm_deal_key,
        at=changed_at,
        trigger=f"registration {registration_id} of {partner_id} is {status.value}",
        ingested_at=ingested_at,
    )


async def load_touchpoints(conn: Connection, deal: Any) -> list[Touchpoint]:
    rows = await conn.fetch(
        "SELECT * FROM touchpoints WHERE deal_key = $1 AND active", deal["deal_key"]
    )
    touchpoints = []
    for r in rows:
        occurred = r["occurred_at"]
        if r["origin"] == "crm" and deal["close_date"] is not None:
            # The CRM names its partner without a time: count it no later than the close.
            occurred = min(occurred, close_instant(deal["close_date"]) - timedelta(seconds=1))
        touchpoints.append(
            Touchpoint(
                r["touchpoint_id"],
                r["partner_id"],
                TouchpointKind(r["kind"]),
                occurred,
                r["source"],
            )
        )
    return touchpoints


def wanted_attribution(
    config: AttributionConfig, deal: Any, touchpoints: list[Touchpoint]
) -> Attribution | None:
    """What the deal should hold: a split when it is won (and not deleted), nothing otherwise."""
    if deal["status"] != DealStatus.WON.value or deal["deleted"]:
        return None
    return attribute(config, touchpoints, deal["amount"], deal["currency"], deal["close_date"])


def _trigger_for(deal: Any, trigger: str) -> str:
    if deal["deleted"]:
        return f"{trigger} (deal deleted)"
    if deal["status"] != DealStatus.WON.value:
        return f"{trigger} (deal {deal['status']})"
    return trigger


@dataclass(frozen=True)
class _Ids:
    deal_key: str
    calculation: int

    def credit(self, partner_id: str, kind: CreditKind) -> str:
        seed = f"{self.deal_key}/{self.calculation}/{partner_id}/{kind.value}"
        return f"cr_{uuid.uuid5(CREDIT_NAMESPACE, seed).hex[:24]}"

    def reversal(self, credit_id: str) -> str:
        seed = f"{self.deal_key}/{self.calculation}/reversal/{credit_id}"
        return f"rv_{uuid.uuid5(CREDIT_NAMESPACE, seed).hex[:24]}"


async def recalculate(
    conn: Connection,
    outbox: Outbox,
    config: AttributionConfig,
    deal_key: str,
    *,
    at: datetime,
    trigger: str,
    ingested_at: datetime | None,
) -> Settlement | None:
    """Settle the deal's credits with what it should hold now. The caller holds the deal lock.

    Returns None when the deal is not known yet (its touchpoints wait for it)."""
    deal = await conn.fetchrow("SELECT * FROM deals WHERE deal_key = $1 FOR UPDATE", deal_key)
    if deal is None:
        return None
    touchpoints = await load_touchpoints(conn, deal)
    wanted = wanted_attribution(config, deal, touchpoints)
    held_rows = await conn.fetch(
        "SELECT * FROM credits WHERE deal_key = $1 AND reversed_at IS NULL ORDER BY credit_id",
        deal_key,
    )
    held = tuple(
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
        for r in held_rows
    )
    settlement = settle(config, held, wanted, at, _trigger_for(deal, trigger))
    calculation = deal["calculation"] + (1 if settlement.changes else 0)
    await conn.execute(
        "UPDATE deals SET calculation = $2, last_note = $3 WHERE deal_key = $1",
        deal_key,
        calculation,
        settlement.explanation,
    )
    if not settlement.changes:
        return settlement
    ids = _Ids(deal_key, calculation)
    moment = now()
    for credit in settlement.reverse:
        reversal_id = ids.reversal(credit.credit_id)
        await conn.execute(
            """UPDATE credits SET reversal_id = $2, reversal_reason = $3, reversed_at = $4
               WHERE credit_id = $1""",
            credit.credit_id,
            reversal_id,
            settlement.explanation,
            moment,
        )
        await outbox.publish(
            conn,
            ATTRIBUTION_CREDITS,
            CreditReversed(
                reversal_id=reversal_id,
                credit_id=credit.credit_id,
                deal_key=deal_key,
                partner_id=credit.partner_id,
                kind=credit.kind,
                amount=credit.amount,
                currency=credit.currency,
                reason=settlement.explanation,
                deal_revision=deal["revision"],
                reversed_at=moment,
                ingested_at=ingested_at,
            ),
            subject=deal_key,
        )
        await _notify(
            outbox,
            conn,
            credit.partner_id,
            "credit_reversed",
            reversal_id,
            deal_key,
            f"Credit of {credit.amount} {credit.currency} on deal {deal_key} reversed",
            settlement.explanation,
            moment,
            ingested_at,
        )
    if settlement.issue:
        assert wanted is not None
        customer = Customer.model_validate_json(deal["customer"])
        for line in settlement.issue:
            credit_id = ids.credit(line.partner_id, line.kind)
            replaces = settlement.replaces.get(line.partner_id)
            await conn.execute(
                """
                INSERT INTO credits (credit_id, deal_key, partner_id, kind, amount, currency,
                    original_amount, original_currency, fx_rate, share, model, config_version,
                    reasons, close_date, deal_revision, replaces, issued_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14, $15,
                    $16, $17)
                """,
                credit_id,
                deal_key,
                line.partner_id,
                line.kind.value,
                line.amount,
                wanted.currency,
                line.original_amount,
                wanted.original_currency,
                wanted.fx_rate,
                line.share,
                wanted.model.value,
                wanted.config_version,
                json.dumps(line.reasons),
                wanted.close_date,
                deal["revision"],
                replaces,
                moment,
            )
            await outbox.publish(
                conn,
                ATTRIBUTION_CREDITS,
                CreditIssued(
                    credit_id=credit_id,
                    deal_key=deal_key,
                    partner_id=line.partner_id,
                    kind=line.kind,
                    amount=line.amount,
                    currency=wanted.currency,
                    original_amount=line.original_amount,
                    original_currency=wanted.original_currency,
                    fx_rate=wanted.fx_rate,
                    share=line.share,
                    model=wanted.model.value,
                    reasons=line.reasons,
                    customer=customer,
                    products=tuple(deal["products"]),
                    co_sell=deal["co_sell"],
                    close_date=wanted.close_date,
                    deal_revision=deal["revision"],
                    replaces=replaces,
                    issued_at=moment,
                    ingested_at=ingested_at,
                    config_version=wanted.config_version,
                    rate_date=wanted.rate_date,
                ),
                subject=deal_key,
            )
            await _notify(
                outbox,
                conn,
                line.partner_id,
                "credit_issued",
                credit_id,
                deal_key,
                f"{line.kind.value.capitalize()} credit of {line.amount} {wanted.currency} "
                f"on deal {deal_key}",
                "; ".join(line.reasons),
                moment,
                ingested_at,
            )
    return settlement


async def _notify(
    outbox: Outbox,
    conn: Connection,
    partner_id: str,
    kind: str,
    reference: str,
    deal_key: str,
    subject: str,
    body: str,
    at: datetime,
    ingested_at: datetime | None,
) -> None:
    await outbox.publish(
        conn,
        PARTNER_NOTIFICATIONS,
        PartnerNotification(
            notification_id=str(uuid.uuid5(CREDIT_NAMESPACE, f"{reference}/{kind}")),
            partner_id=partner_id,
            recipient=partner_id,
            kind=kind,
            subject=subject,
            body=body,
            deal_key=deal_key,
            created_at=at,
            ingested_at=ingested_at,
        ),
        subject=partner_id,
    )
