"""Service layer of attribution: keeps each deal's touchpoints and state, and settles its
credits (through the pure domain) whenever either changes, in the caller's transaction.

Every path that can move a deal's credits (deal snapshots, a registration event, a reported
touchpoint) first takes the deals' advisory locks, so two instances never settle one deal at once
and a touchpoint reported while the deal closes is never missed.

One implementation serves one event and a run of many: a `DealBook` loads the deals it is given
(their rows, touchpoints and active credits) with a few queries, applies the changes in order in
memory (a later snapshot of a deal sees what an earlier one did), and writes the results back
with a few set-based statements; the events to publish are collected in order.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.attribution.domain.config import AttributionConfig
from services.attribution.domain.corrections import HeldCredit, Settlement, settle
from services.attribution.domain.models import (
    Attribution,
    CannotAttribute,
    Touchpoint,
    TouchpointKind,
    attribute,
    close_instant,
)
from shared.db import Connection, advisory_key
from shared.events import Envelope, EventPayload
from shared.events.attribution import CreditIssued, CreditKind, CreditReversed
from shared.events.crm import CrmSource, Customer, DealStatus
from shared.events.notifications import PartnerNotification
from shared.events.opportunities import DealStateChanged
from shared.events.registrations import RegistrationStatus
from shared.outbox import Outbox, OutgoingEvent
from shared.topics import ATTRIBUTION_CREDITS, PARTNER_NOTIFICATIONS, Topic

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


def _lock_key(deal_key: str) -> int:
    return advisory_key("attribution", deal_key)


async def lock_deal(conn: Connection, deal_key: str) -> None:
    """Serialise everything that settles one deal (released at commit)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(deal_key))


def _more_advanced(current: str | None, new: RegistrationStatus) -> RegistrationStatus:
    if current is None:
        return new
    held = RegistrationStatus(current)
    return new if _STATUS_RANK[new] >= _STATUS_RANK[held] else held


def _instant(value: datetime) -> datetime:
    """A timestamptz as Postgres gives it back (UTC; a naive value is taken as local time, as
    asyncpg sends it)."""
    return value.astimezone(UTC)


def _numeric(value: Decimal | None) -> Decimal | None:
    """A numeric as it comes back from Postgres through asyncpg, which writes whole numbers
    with trailing groups of four zeros as an exponent (10000 -> 1E+4) and has no negative zero.
    (Its text is part of a change's description, so a later snapshot in the same run must see
    what a fresh read would.)"""
    if value is None or not value.is_finite():
        return value
    sign, _, exponent = value.as_tuple()
    if isinstance(exponent, int) and exponent < 0:
        return abs(value) if value.is_zero() else value
    whole = int(value)
    if whole == 0:
        return Decimal(0)
    groups = 0
    while whole % 10000 == 0:
        whole //= 10000
        groups += 1
    return Decimal((sign, tuple(int(d) for d in str(abs(whole))), 4 * groups))


@dataclass
class _Deal:
    """A row of `deals` as this transaction holds it."""

    deal_key: str
    source: str
    revision: int
    status: str
    deleted: bool
    amount: Decimal | None
    currency: str | None
    close_date: date | None
    customer: str  # JSON
    products: tuple[str, ...]
    co_sell: bool
    partner_ref: str | None
    created_at: datetime | None
    changed_at: datetime
    ingested_at: datetime | None
    calculation: int
    last_note: str | None
    snapshot: bool = False  # a newer snapshot was taken: the whole row is written
    settled: bool = False  # settled again: calculation and last_note are written

    @classmethod
    def of_row(cls, row: Any) -> _Deal:
        return cls(
            deal_key=row["deal_key"],
            source=row["source"],
            revision=row["revision"],
            status=row["status"],
            deleted=row["deleted"],
            amount=row["amount"],
            currency=row["currency"],
            close_date=row["close_date"],
            customer=row["customer"],
            products=tuple(row["products"]),
            co_sell=row["co_sell"],
            partner_ref=row["partner_ref"],
            created_at=row["created_at"],
            changed_at=row["changed_at"],
            ingested_at=row["ingested_at"],
            calculation=row["calculation"],
            last_note=row["last_note"],
        )

    @classmethod
    def of_snapshot(
        cls, event: DealStateChanged, ingested_at: datetime | None, old: _Deal | None
    ) -> _Deal:
        return cls(
            deal_key=event.deal_key,
            source=old.source if old is not None else event.source.value,  # never updated
            revision=event.revision,
            status=event.status.value,
            deleted=event.deleted,
            amount=_numeric(event.amount),
            currency=event.currency,
            close_date=event.close_date,
            customer=event.customer.model_dump_json(),
            products=tuple(event.products),
            co_sell=event.co_sell,
            partner_ref=event.partner_ref,
            created_at=event.created_at,
            changed_at=event.changed_at,
            ingested_at=ingested_at,
            calculation=old.calculation if old is not None else 0,
            last_note=old.last_note if old is not None else None,
            snapshot=True,
        )


@dataclass
class _Touchpoint:
    """A row of `touchpoints` as this transaction holds it (only the last three columns of a
    stored row ever change)."""

    touchpoint_id: str
    deal_key: str
    partner_id: str
    kind: str
    source: str
    origin: str
    occurred_at: datetime
    registration_status: str | None
    active: bool
    changed: bool = False  # new, or one of the mutable columns changed

    @classmethod
    def of_row(cls, row: Any) -> _Touchpoint:
        return cls(
            row["touchpoint_id"],
            row["deal_key"],
            row["partner_id"],
            row["kind"],
            row["source"],
            row["origin"],
            row["occurred_at"],
            row["registration_status"],
            row["active"],
        )


@dataclass
class _NewCredit:
    """A credit issued in this transaction (and maybe reversed again in it)."""

    deal_key: str
    held: HeldCredit
    line_share: Decimal
    fx_rate: Decimal
    model: str
    config_version: str
    reasons: tuple[str, ...]
    deal_revision: int
    replaces: str | None
    issued_at: datetime
    reversal: tuple[str, str, datetime] | None = None  # reversal id, reason, reversed at


@dataclass(frozen=True)
class Emission:
    """An event to publish, and the consumed event that caused it (None: an HTTP request)."""

    topic: Topic
    payload: EventPayload
    subject: str
    cause: Envelope[Any] | None = None


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


def _describe_change(old: _Deal | None, event: DealStateChanged) -> str:
    head = f"revision {event.revision}"
    if old is None:
        return f"{head}: deal {event.status.value}"
    changes = []
    if event.deleted and not old.deleted:
        changes.append("deal deleted")
    if old.status != event.status.value:
        changes.append(f"status {old.status} -> {event.status.value}")
    if (old.amount, old.currency) != (event.amount, event.currency):
        changes.append(f"amount {old.amount} {old.currency} -> {event.amount} {event.currency}")
    if old.close_date != event.close_date:
        changes.append(f"close date {old.close_date} -> {event.close_date}")
    if old.partner_ref != event.partner_ref:
        changes.append(f"CRM partner {old.partner_ref} -> {event.partner_ref}")
    return f"{head}: {', '.join(changes) or 'touchpoints or details changed'}"


def wanted_attribution(
    config: AttributionConfig, deal: _Deal, touchpoints: list[Touchpoint]
) -> Attribution | None:
    """What the deal should hold: a split when it is won (and not deleted), nothing otherwise."""
    if deal.status != DealStatus.WON.value or deal.deleted:
        return None
    return attribute(config, touchpoints, deal.amount, deal.currency, deal.close_date)


def _trigger_for(deal: _Deal, trigger: str) -> str:
    if deal.deleted:
        return f"{trigger} (deal deleted)"
    if deal.status != DealStatus.WON.value:
        return f"{trigger} (deal {deal.status})"
    return trigger


def _notification(
    partner_id: str,
    kind: str,
    reference: str,
    deal_key: str,
    subject: str,
    body: str,
    at: datetime,
    ingested_at: datetime | None,
    cause: Envelope[Any] | None,
) -> Emission:
    return Emission(
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
        partner_id,
        cause,
    )


@dataclass
class DealBook:
    """Some deals of one transaction, locked: their rows, their touchpoints and their active
    credits, changed in memory by the rules and written back by `save` (a few statements)."""

    deals: dict[str, _Deal]
    touchpoints: dict[str, _Touchpoint]  # by touchpoint id
    held: dict[str, list[HeldCredit]]  # deal key -> active credits, by credit id
    by_deal: dict[str, dict[str, _Touchpoint]] = field(default_factory=dict)
    issued: dict[str, _NewCredit] = field(default_factory=dict)  # by credit id, in order
    reversed: dict[str, tuple[str, str, datetime]] = field(default_factory=dict)  # stored ones
    emissions: list[Emission] = field(default_factory=list)

    def __post_init__(self) -> None:
        for touchpoint in self.touchpoints.values():
            self.by_deal.setdefault(touchpoint.deal_key, {})[touchpoint.touchpoint_id] = touchpoint

    @classmethod
    async def load(
        cls, conn: Connection, deal_keys: Iterable[str], registration_ids: Iterable[str] = ()
    ) -> DealBook:
        """Lock the deals (in key order: no deadlocks between runs) and load what settling
        them needs, with the touchpoints of these registrations (they may name another deal)."""
        keys = sorted(set(deal_keys))
        await conn.execute(
            "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k ORDER BY k",
            sorted({_lock_key(key) for key in keys}),
        )
        deals = await conn.fetch(
            "SELECT * FROM deals WHERE deal_key = ANY($1::text[]) ORDER BY deal_key FOR UPDATE",
            keys,
        )
        touchpoints = await conn.fetch(
            """SELECT * FROM touchpoints
               WHERE deal_key = ANY($1::text[]) OR touchpoint_id = ANY($2::text[])
               ORDER BY touchpoint_id FOR UPDATE""",
            keys,
            sorted({f"registration:{r}" for r in registration_ids}),
        )
        credits = await conn.fetch(
            """SELECT * FROM credits WHERE deal_key = ANY($1::text[]) AND reversed_at IS NULL
               ORDER BY credit_id""",
            keys,
        )
        held: dict[str, list[HeldCredit]] = {}
        for r in credits:
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
        return cls(
            {r["deal_key"]: _Deal.of_row(r) for r in deals},
            {r["touchpoint_id"]: _Touchpoint.of_row(r) for r in touchpoints},
            held,
        )

    # -- changes, in memory ------------------------------------------------------------------

    def apply_snapshot(
        self,
        config: AttributionConfig,
        event: DealStateChanged,
        ingested_at: datetime | None,
        cause: Envelope[Any] | None = None,
    ) -> Settlement | None:
        """Take a deal snapshot (newer revisions only), sync its touchpoints, settle its credits.

        Raises CannotAttribute when the deal is won but cannot be split."""
        old = self.deals.get(event.deal_key)
        if old is not None and old.revision >= event.revision:
            return None  # an older or repeated snapshot: the deal already moved past it
        trigger = _describe_change(old, event)
        self.deals[event.deal_key] = _Deal.of_snapshot(event, ingested_at, old)
        for linked in event.registrations:
            self.merge_registration(
                registration_id=linked.registration_id,
                partner_id=linked.partner_id,
                deal_key=event.deal_key,
                status=linked.status,
                occurred_at=linked.submitted_at,
                authoritative_time=True,
            )
        self._sync_crm_partner(event)
        return self.recalculate(
            config,
            event.deal_key,
            at=event.changed_at,
            trigger=trigger,
            ingested_at=ingested_at,
            cause=cause,
        )

    def _add_touchpoint(self, touchpoint: _Touchpoint) -> None:
        touchpoint.changed = True
        self.touchpoints[touchpoint.touchpoint_id] = touchpoint
        self.by_deal.setdefault(touchpoint.deal_key, {})[touchpoint.touchpoint_id] = touchpoint

    def merge_registration(
        self,
        *,
        registration_id: str,
        partner_id: str,
        deal_key: str,
        status: RegistrationStatus,
        occurred_at: datetime,
        authoritative_time: bool,
    ) -> bool:
        """Record a linked registration as the deal's sourcing touchpoint; True if it changed.
        (Its id must have been given to `load`.)"""
        touchpoint_id = f"registration:{registration_id}"
        row = self.touchpoints.get(touchpoint_id)
        merged = _more_advanced(row.registration_status if row else None, status)
        active = merged in SOURCING_STATUSES
        if row is None:
            self._add_touchpoint(
                _Touchpoint(
                    touchpoint_id,
                    deal_key,
                    partner_id,
                    TouchpointKind.SOURCED_REGISTRATION.value,
                    "deals",
                    "registration",
                    _instant(occurred_at),
                    merged.value,
                    active,
                )
            )
            return active
        # Only the snapshot knows the submission time; registration events know the decision time.
        when = _instant(occurred_at) if authoritative_time else row.occurred_at
        if (row.registration_status, row.active, row.occurred_at) == (merged.value, active, when):
            return False
        row.registration_status, row.active, row.occurred_at = merged.value, active, when
        row.changed = True
        return True

    def _sync_crm_partner(self, event: DealStateChanged) -> None:
        """The partner the CRM names is a touchpoint; naming another partner retires the old one."""
        for row in self.by_deal.get(event.deal_key, {}).values():
            if row.origin == "crm" and row.partner_id != event.partner_ref and row.active:
                row.active = False
                row.changed = True
        if not event.partner_ref:
            return
        touchpoint_id = f"crm:{event.deal_key}:{event.partner_ref}"
        existing = self.touchpoints.get(touchpoint_id)
        if existing is None:
            self._add_touchpoint(
                _Touchpoint(
                    touchpoint_id,
                    event.deal_key,
                    event.partner_ref,
                    _CRM_PARTNER_KIND[event.source].value,
                    event.source.value,
                    "crm",
                    _instant(event.created_at or event.changed_at),
                    None,
                    True,
                )
            )
        elif not existing.active:
            existing.active = True
            existing.changed = True

    def _active_touchpoints(self, deal: _Deal) -> list[Touchpoint]:
        touchpoints = []
        for r in self.by_deal.get(deal.deal_key, {}).values():
            if not r.active:
                continue
            occurred = r.occurred_at
            if r.origin == "crm" and deal.close_date is not None:
                # The CRM names its partner without a time: count it no later than the close.
                occurred = min(occurred, close_instant(deal.close_date) - timedelta(seconds=1))
            touchpoints.append(
                Touchpoint(
                    r.touchpoint_id, r.partner_id, TouchpointKind(r.kind), occurred, r.source
                )
            )
        return touchpoints

    def recalculate(
        self,
        config: AttributionConfig,
        deal_key: str,
        *,
        at: datetime,
        trigger: str,
        ingested_at: datetime | None,
        cause: Envelope[Any] | None = None,
    ) -> Settlement | None:
        """Settle the deal's credits with what it should hold now.

        Returns None when the deal is not known yet (its touchpoints wait for it)."""
        deal = self.deals.get(deal_key)
        if deal is None:
            return None
        wanted = wanted_attribution(config, deal, self._active_touchpoints(deal))
        held = tuple(self.held.get(deal_key, ()))
        settlement = settle(config, held, wanted, at, _trigger_for(deal, trigger))
        deal.calculation += 1 if settlement.changes else 0
        deal.last_note = settlement.explanation
        deal.settled = True
        if not settlement.changes:
            return settlement
        ids = _Ids(deal_key, deal.calculation)
        moment = now()
        reason = settlement.explanation
        for credit in settlement.reverse:
            reversal_id = ids.reversal(credit.credit_id)
            if credit.credit_id in self.issued:
                self.issued[credit.credit_id].reversal = (reversal_id, reason, moment)
            else:
                self.reversed[credit.credit_id] = (reversal_id, reason, moment)
            self.emissions.append(
                Emission(
                    ATTRIBUTION_CREDITS,
                    CreditReversed(
                        reversal_id=reversal_id,
                        credit_id=credit.credit_id,
                        deal_key=deal_key,
                        partner_id=credit.partner_id,
                        kind=credit.kind,
                        amount=credit.amount,
                        currency=credit.currency,
                        reason=reason,
                        deal_revision=deal.revision,
                        reversed_at=moment,
                        ingested_at=ingested_at,
                    ),
                    deal_key,
                    cause,
                )
            )
            self.emissions.append(
                _notification(
                    credit.partner_id,
                    "credit_reversed",
                    reversal_id,
                    deal_key,
                    f"Credit of {credit.amount} {credit.currency} on deal {deal_key} reversed",
                    reason,
                    moment,
                    ingested_at,
                    cause,
                )
            )
        gone = {credit.credit_id for credit in settlement.reverse}
        still_held = [credit for credit in held if credit.credit_id not in gone]
        if settlement.issue:
            assert wanted is not None
            customer = Customer.model_validate_json(deal.customer)
            for line in settlement.issue:
                credit_id = ids.credit(line.partner_id, line.kind)
                replaces = settlement.replaces.get(line.partner_id)
                new = HeldCredit(
                    credit_id,
                    line.partner_id,
                    line.kind,
                    line.amount,
                    wanted.currency,
                    line.original_amount,
                    wanted.original_currency,
                    wanted.close_date,
                )
                still_held.append(new)
                self.issued[credit_id] = _NewCredit(
                    deal_key,
                    new,
                    line.share,
                    wanted.fx_rate,
                    wanted.model.value,
                    wanted.config_version,
                    line.reasons,
                    deal.revision,
                    replaces,
                    moment,
                )
                self.emissions.append(
                    Emission(
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
                            products=deal.products,
                            co_sell=deal.co_sell,
                            close_date=wanted.close_date,
                            deal_revision=deal.revision,
                            replaces=replaces,
                            issued_at=moment,
                            ingested_at=ingested_at,
                            config_version=wanted.config_version,
                            rate_date=wanted.rate_date,
                        ),
                        deal_key,
                        cause,
                    )
                )
                self.emissions.append(
                    _notification(
                        line.partner_id,
                        "credit_issued",
                        credit_id,
                        deal_key,
                        f"{line.kind.value.capitalize()} credit of {line.amount} "
                        f"{wanted.currency} on deal {deal_key}",
                        "; ".join(line.reasons),
                        moment,
                        ingested_at,
                        cause,
                    )
                )
        # Active credits are read by credit id: the order settle() sees them in.
        self.held[deal_key] = sorted(still_held, key=lambda credit: credit.credit_id)
        return settlement

    # -- writing back ------------------------------------------------------------------------

    async def save(self, conn: Connection) -> None:
        """Write what changed: at most one statement per table and kind of change."""
        snapshots = [d for d in self.deals.values() if d.snapshot]
        if snapshots:
            await conn.execute(
                """
                INSERT INTO deals (deal_key, source, revision, status, deleted, amount, currency,
                    close_date, customer, products, co_sell, partner_ref, created_at, changed_at,
                    ingested_at, calculation, last_note, updated_at)
                SELECT d.deal_key, d.source, d.revision, d.status, d.deleted, d.amount,
                    d.currency, d.close_date, d.customer::jsonb,
                    ARRAY(SELECT p FROM jsonb_array_elements_text(d.products::jsonb)
                          WITH ORDINALITY AS x(p, n) ORDER BY n),
                    d.co_sell, d.partner_ref, d.created_at, d.changed_at, d.ingested_at,
                    d.calculation, d.last_note, now()
                FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::bool[],
                    $6::numeric[], $7::text[], $8::date[], $9::text[], $10::text[], $11::bool[],
                    $12::text[], $13::timestamptz[], $14::timestamptz[], $15::timestamptz[],
                    $16::int[], $17::text[])
                    AS d(deal_key, source, revision, status, deleted, amount, currency,
                         close_date, customer, products, co_sell, partner_ref, created_at,
                         changed_at, ingested_at, calculation, last_note)
                ON CONFLICT (deal_key) DO UPDATE SET revision = EXCLUDED.revision,
                    status = EXCLUDED.status, deleted = EXCLUDED.deleted,
                    amount = EXCLUDED.amount, currency = EXCLUDED.currency,
                    close_date = EXCLUDED.close_date, customer = EXCLUDED.customer,
                    products = EXCLUDED.products, co_sell = EXCLUDED.co_sell,
                    partner_ref = EXCLUDED.partner_ref, created_at = EXCLUDED.created_at,
                    changed_at = EXCLUDED.changed_at, ingested_at = EXCLUDED.ingested_at,
                    calculation = EXCLUDED.calculation, last_note = EXCLUDED.last_note,
                    updated_at = now()
                """,
                [d.deal_key for d in snapshots],
                [d.source for d in snapshots],
                [d.revision for d in snapshots],
                [d.status for d in snapshots],
                [d.deleted for d in snapshots],
                [d.amount for d in snapshots],
                [d.currency for d in snapshots],
                [d.close_date for d in snapshots],
                [d.customer for d in snapshots],
                [json.dumps(list(d.products)) for d in snapshots],
                [d.co_sell for d in snapshots],
                [d.partner_ref for d in snapshots],
                [d.created_at for d in snapshots],
                [d.changed_at for d in snapshots],
                [d.ingested_at for d in snapshots],
                [d.calculation for d in snapshots],
                [d.last_note for d in snapshots],
            )
        settled = [d for d in self.deals.values() if d.settled and not d.snapshot]
        if settled:
            await conn.execute(
                """UPDATE deals SET calculation = d.calculation, last_note = d.last_note
                   FROM unnest($1::text[], $2::int[], $3::text[])
                       AS d(deal_key, calculation, last_note)
                   WHERE deals.deal_key = d.deal_key""",
                [d.deal_key for d in settled],
                [d.calculation for d in settled],
                [d.last_note for d in settled],
            )
        touchpoints = [t for t in self.touchpoints.values() if t.changed]
        if touchpoints:
            # New rows in full; a stored row only ever changes in its last three columns.
            await conn.execute(
                """
                INSERT INTO touchpoints (touchpoint_id, deal_key, partner_id, kind, source,
                    origin, occurred_at, registration_status, active)
                SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                    $6::text[], $7::timestamptz[], $8::text[], $9::bool[])
                ON CONFLICT (touchpoint_id) DO UPDATE SET occurred_at = EXCLUDED.occurred_at,
                    registration_status = EXCLUDED.registration_status, active = EXCLUDED.active
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
            )
        if self.reversed:
            # Before the new credits: a partner's new credit may take its reversed one's place.
            reversals = list(self.reversed.items())
            await conn.execute(
                """UPDATE credits SET reversal_id = r.reversal_id,
                       reversal_reason = r.reason, reversed_at = r.at
                   FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
                       AS r(credit_id, reversal_id, reason, at)
                   WHERE credits.credit_id = r.credit_id""",
                [credit_id for credit_id, _ in reversals],
                [reversal_id for _, (reversal_id, _, _) in reversals],
                [reason for _, (_, reason, _) in reversals],
                [at for _, (_, _, at) in reversals],
            )
        if self.issued:
            # A credit issued and reversed again in this transaction is written reversed.
            new = list(self.issued.values())
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
                [c.held.credit_id for c in new],
                [c.deal_key for c in new],
                [c.held.partner_id for c in new],
                [c.held.kind.value for c in new],
                [c.held.amount for c in new],
                [c.held.currency for c in new],
                [c.held.original_amount for c in new],
                [c.held.original_currency for c in new],
                [c.fx_rate for c in new],
                [c.line_share for c in new],
                [c.model for c in new],
                [c.config_version for c in new],
                [json.dumps(c.reasons) for c in new],
                [c.held.close_date for c in new],
                [c.deal_revision for c in new],
                [c.replaces for c in new],
                [c.issued_at for c in new],
                [c.reversal[0] if c.reversal else None for c in new],
                [c.reversal[1] if c.reversal else None for c in new],
                [c.reversal[2] if c.reversal else None for c in new],
            )

    async def publish(self, conn: Connection, outbox: Outbox) -> None:
        """Record the collected events (in order) in one statement, in the current trace."""
        await outbox.publish_many(
            conn, [OutgoingEvent(e.topic, e.payload, e.subject) for e in self.emissions]
        )


@dataclass(frozen=True)
class Snapshot:
    """A consumed deal snapshot: the event, when its change entered Pollinate, its envelope."""

    event: DealStateChanged
    ingested_at: datetime | None
    cause: Envelope[Any] | None = None


class UnattributableSnapshot(Exception):
    """A won deal in a run of snapshots cannot be split as it is (the caller dead-letters)."""

    def __init__(self, snapshot: Snapshot, error: Exception) -> None:
        super().__init__(str(error))
        self.snapshot = snapshot
        self.error = error


async def apply_deal_states(
    conn: Connection, config: AttributionConfig, snapshots: Sequence[Snapshot]
) -> list[Emission]:
    """Apply deal snapshots in order (each one as if alone, after the ones before it) and write
    the results; returns the events to publish, in order, each with its cause.

    Raises UnattributableSnapshot (nothing written) when a won deal cannot be split."""
    book = await DealBook.load(
        conn,
        (s.event.deal_key for s in snapshots),
        (r.registration_id for s in snapshots for r in s.event.registrations),
    )
    for snapshot in snapshots:
        try:
            book.apply_snapshot(config, snapshot.event, snapshot.ingested_at, snapshot.cause)
        except CannotAttribute as error:
            raise UnattributableSnapshot(snapshot, error) from error
    await book.save(conn)
    return book.emissions


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
    book = await DealBook.load(conn, [crm_deal_key], [registration_id])
    changed = book.merge_registration(
        registration_id=registration_id,
        partner_id=partner_id,
        deal_key=crm_deal_key,
        status=status,
        occurred_at=changed_at,
        authoritative_time=False,
    )
    settlement = None
    if changed:
        settlement = book.recalculate(
            config,
            crm_deal_key,
            at=changed_at,
            trigger=f"registration {registration_id} of {partner_id} is {status.value}",
            ingested_at=ingested_at,
        )
    await book.save(conn)
    await book.publish(conn, outbox)
    return settlement


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
    """Settle the deal's credits with what it should hold now (the deal's lock is taken, again
    if the caller holds it), write and publish the result.

    Returns None when the deal is not known yet (its touchpoints wait for it)."""
    book = await DealBook.load(conn, [deal_key])
    settlement = book.recalculate(config, deal_key, at=at, trigger=trigger, ingested_at=ingested_at)
    await book.save(conn)
    await book.publish(conn, outbox)
    return settlement
