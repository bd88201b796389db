"""The rows a settlement works on, as one transaction holds them in memory: a deal, its
touchpoints, the credits it issues and reverses. `repository` reads and writes them; a `DealBook`
(`crediting`) changes them by the rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import MAX_EMAX, Context, Decimal
from typing import Any

from services.attribution.domain.corrections import HeldCredit
from services.attribution.domain.deals import DealState, won_at
from shared.db import from_row
from shared.events.crm import DealStatus
from shared.events.opportunities import DealStateChanged
from shared.events.registrations import RegistrationStatus


def instant(value: datetime) -> datetime:
    """A timestamptz as Postgres gives it back (UTC; a naive value is taken as local time, as
    asyncpg sends it)."""
    return value.astimezone(UTC)


_ONE = Decimal(1)


def numeric(value: Decimal | None) -> Decimal | None:
    """A numeric as it comes back from Postgres, which keeps a value's scale, writes a whole
    number without an exponent (1E+4 -> 10000) and has no negative zero. (Its text is part of a
    change's description, so a later snapshot in the same run must see what a fresh read
    would.)"""
    if value is None or not value.is_finite():
        return value
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        # Written out in decimal, exactly at any size: int(value) converted to binary and back
        # (a million digits took 85 s of the event loop, before the contract bounded amounts).
        return value.quantize(_ONE, context=Context(prec=value.adjusted() + 1, Emax=MAX_EMAX))
    return abs(value) if value.is_zero() else value


@dataclass
class DealRow:
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
    won_at: datetime | None = None  # the moment it was won (`deals.won_at`); None unless won
    had_parked: bool = False  # parked credits were stored for it (`load_deals`)
    snapshot: bool = False  # a newer snapshot was taken: the whole row is written
    settled: bool = False  # settled again: calculation and last_note are written

    @classmethod
    def of_row(cls, row: Any) -> DealRow:
        return from_row(cls, row, products=tuple(row["products"]))

    @classmethod
    def of_snapshot(
        cls, event: DealStateChanged, ingested_at: datetime | None, old: DealRow | None
    ) -> DealRow:
        return cls(
            deal_key=event.deal_key,
            source=old.source if old is not None else event.source.value,  # never updated
            revision=event.revision,
            status=event.status.value,
            deleted=event.deleted,
            amount=numeric(event.amount),
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
            had_parked=old is not None and old.had_parked,
            won_at=won_at(
                None if old is None else DealStatus(old.status),
                None if old is None else old.won_at,
                event.status,
                min(t for t in (ingested_at, event.changed_at) if t is not None),
            ),
            snapshot=True,
        )

    @property
    def state(self) -> DealState:
        return DealState(
            self.revision,
            DealStatus(self.status),
            self.deleted,
            self.amount,
            self.currency,
            self.close_date,
            self.partner_ref,
            self.won_at,
        )


@dataclass
class TouchpointRow:
    """A row of `touchpoints` as this transaction holds it (of a stored row, only the last
    three columns change, and its deal when a CRM merge moves it)."""

    touchpoint_id: str
    deal_key: str
    partner_id: str
    kind: str
    source: str
    origin: str
    occurred_at: datetime
    registration_status: str | None
    active: bool
    approved: bool = False  # reported ones: a channel manager reported or approved it
    changed: bool = False  # new, or one of the mutable columns changed
    # Sourcing ones: the moment of the newest word on its link (a snapshot listing it, or its
    # registration's event), and whether that word was "linked to no deal" (a CRM merge).
    linked_at: datetime | None = None
    unlinked: bool = False
    campaign_id: str | None = None  # a campaign touchpoint's campaign
    received_at: datetime | None = None  # reported ones: when the report came in

    @classmethod
    def of_row(cls, row: Any) -> TouchpointRow:
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
            row["approved"],
            linked_at=row["linked_at"],
            unlinked=row["unlinked"],
            campaign_id=row["campaign_id"],
            received_at=row["received_at"],
        )

    @property
    def status(self) -> RegistrationStatus | None:
        return (
            None
            if self.registration_status is None
            else RegistrationStatus(self.registration_status)
        )


@dataclass(frozen=True)
class Reversal:
    reversal_id: str
    reason: str
    at: datetime


@dataclass
class NewCredit:
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
    reversal: Reversal | None = None
