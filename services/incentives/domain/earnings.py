"""Turning one credit into earnings: base rebate, kickers, SPIFFs, stacking and the period cap.

Pure: the service layer gathers the facts (tier, whether the customer or region is new, what the
partner already earned in the period) and stores what this returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from services.incentives.domain.programs import IncentivePrograms, Kicker, KickerKind, Spiff

ZERO = Decimal("0.00")


def money(value: Decimal, decimals: int) -> Decimal:
    """Round to the currency's smallest unit (`decimals`: the cent, 2; the yen, 0), half up:
    the one rounding rule of the ledger."""
    return value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


class EntryType(StrEnum):
    ACCRUAL = "accrual"  # base rebate
    KICKER = "kicker"
    SPIFF = "spiff"
    REVERSAL = "reversal"  # clawback of an entry
    PAYOUT = "payout"


@dataclass(frozen=True)
class CreditFacts:
    """A credit plus what the service knows about its context."""

    credit_id: str
    partner_id: str
    kind: str  # sourced | influenced
    amount: Decimal
    currency: str
    products: frozenset[str]
    co_sell: bool
    close_date: date
    tier: str
    partner_status: str | None
    new_logo: bool
    new_region: bool
    partner_type: str | None = None  # as onboarding last described it; None: not known


@dataclass(frozen=True)
class EarningLine:
    entry_type: EntryType
    rule: str  # e.g. "base:gold", "kicker:new_logo", "spiff:q4-ai"
    basis: Decimal  # the credited amount the rate applies to
    rate: Decimal | None  # None for a fixed amount
    uncapped_amount: Decimal
    amount: Decimal  # what is booked (after the period cap)
    note: str = ""  # why the amount differs from the rate (trim, cap), or empty


@dataclass(frozen=True)
class Earnings:
    period: str
    lines: tuple[EarningLine, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO)


def _of_type(types: tuple[str, ...], facts: CreditFacts) -> bool:
    """A rule for some partner types applies to a partner of one of them (none listed: all)."""
    return not types or facts.partner_type in types


def _kicker_applies(programs: IncentivePrograms, kicker: Kicker, facts: CreditFacts) -> bool:
    if facts.kind not in kicker.credit_kinds or not _of_type(kicker.partner_types, facts):
        return False
    match kicker.kind:
        case KickerKind.NEW_LOGO:
            return facts.new_logo
        case KickerKind.NEW_REGION:
            return facts.new_region
        case KickerKind.CO_SELL:
            return facts.co_sell
        case KickerKind.LEGACY_MIGRATION:
            return bool(facts.products & set(programs.legacy_migration_products))
        case KickerKind.STRATEGIC_PRODUCT:
            return bool(facts.products & set(programs.strategic_products))
    raise AssertionError(kicker.kind)  # pragma: no cover


def _spiff_applies(spiff: Spiff, facts: CreditFacts) -> bool:
    return (
        spiff.starts <= facts.close_date <= spiff.ends
        and facts.kind in spiff.credit_kinds
        and (not spiff.tiers or facts.tier in spiff.tiers)
        and _of_type(spiff.partner_types, facts)
        and (not spiff.products or bool(facts.products & set(spiff.products)))
        and (not spiff.new_logo_only or facts.new_logo)
    )


def base_rate(
    programs: IncentivePrograms, tier: str, kind: str, partner_type: str | None = None
) -> Decimal:
    """The tier's base rate, the partner type's own where its table lists the tier."""
    own = next((t for k, t in programs.base_rates_by_type.items() if k == partner_type), {})
    rate = own.get(tier, programs.base_rates.get(tier, Decimal(0)))
    return rate * programs.influenced_factor if kind == "influenced" else rate


def stacked_kickers(
    programs: IncentivePrograms, facts: CreditFacts
) -> tuple[list[tuple[Kicker, Decimal, str]], list[str]]:
    """The kickers that pay, with their effective rate after stacking, and stacking notes."""
    eligible = [k for k in programs.kickers if _kicker_applies(programs, k, facts)]
    notes: list[str] = []
    dropped: set[str] = set()
    order = {k.id: i for i, k in enumerate(programs.kickers)}
    for group in programs.stacking.exclusive:
        members = [k for k in eligible if k.id in group]
        if len(members) > 1:
            winner = max(members, key=lambda k: (k.rate, -order[k.id]))
            for k in members:
                if k is not winner:
                    dropped.add(k.id)
                    notes.append(f"kicker {k.id} does not combine with {winner.id}")
    kept = [k for k in eligible if k.id not in dropped]
    headroom = programs.stacking.max_combined_rate - base_rate(
        programs, facts.tier, facts.kind, facts.partner_type
    )
    effective: list[tuple[Kicker, Decimal, str]] = []
    used = Decimal(0)
    for k in kept:
        rate = max(Decimal(0), min(k.rate, headroom - used))
        note = ""
        if rate < k.rate:
            note = (
                f"trimmed from {k.rate} to {rate}: max combined rate "
                f"{programs.stacking.max_combined_rate}"
            )
            notes.append(f"kicker {k.id} {note}")
        used += rate
        if rate > 0:
            effective.append((k, rate, note))
    return effective, notes


def compute_earnings(
    programs: IncentivePrograms, facts: CreditFacts, earned_in_period: Decimal
) -> Earnings:
    """What one credit earns. `earned_in_period`: the partner's net earnings already booked in
    the credit's period (the cap counts them)."""
    period = programs.period_of(facts.close_date)
    refused = programs.ineligibility(facts.partner_status)
    if refused is not None:
        return Earnings(period, (), (refused,))
    if facts.amount <= 0:
        return Earnings(period, (), ("nothing credited",))
    raw: list[tuple[EntryType, str, Decimal | None, Decimal, str]] = []
    rate = base_rate(programs, facts.tier, facts.kind, facts.partner_type)
    if rate > 0:
        raw.append((EntryType.ACCRUAL, f"base:{facts.tier}", rate, facts.amount * rate, ""))
    kickers, notes = stacked_kickers(programs, facts)
    for kicker, kicker_rate, note in kickers:
        raw.append(
            (EntryType.KICKER, f"kicker:{kicker.id}", kicker_rate, facts.amount * kicker_rate, note)
        )
    for spiff in programs.spiffs:
        if _spiff_applies(spiff, facts):
            if spiff.rate is not None:
                value = facts.amount * spiff.rate
            else:
                assert spiff.fixed_amount is not None
                value = spiff.fixed_amount
            raw.append((EntryType.SPIFF, f"spiff:{spiff.id}", spiff.rate, value, ""))

    cap = programs.caps.for_tier(facts.tier)
    remaining = None if cap is None else max(ZERO, cap - earned_in_period)
    lines: list[EarningLine] = []
    for entry_type, rule, line_rate, value, note in raw:
        uncapped = money(value, programs.decimals)
        amount = uncapped
        if remaining is not None:
            amount = min(uncapped, remaining)
            remaining -= amount
            if amount < uncapped:
                cap_note = (
                    f"capped from {uncapped} to {amount}: period cap {cap} for {period} "
                    f"({earned_in_period} already earned)"
                )
                note = f"{note}; {cap_note}" if note else cap_note
        if uncapped == 0:
            continue
        lines.append(EarningLine(entry_type, rule, facts.amount, line_rate, uncapped, amount, note))
    return Earnings(period, tuple(lines), tuple(notes))


def customer_keys(
    domain: str | None, name: str | None, folded_name: str | None = None
) -> tuple[str, ...]:
    """Every key a customer is known by for "new logo", the one its credits are filed under
    first: its domain (deals' registrable domain), its name as deals compares customers
    (`folded_name`: case, legal form and look-alike letters aside), and the name as this
    service keyed it before deals said how (customers first credited then are found by it).
    A customer is new when none of its keys was credited before (so one name is one customer
    whatever its domains, as deals' conflict rules match names). Found in review: one key,
    the domain else the name as typed, let "Acme Inc" (with a domain), "Acme" (without one in
    another CRM), "ACME Incorporated" and "Acme" with a Cyrillic A each earn the new-logo kicker."""
    keys = [
        key
        for key in (
            customer_key(domain, None),
            f"folded:{folded_name}" if folded_name else None,
            customer_key(None, name),
        )
        if key is not None
    ]
    return tuple(dict.fromkeys(keys))


def customer_key(domain: str | None, name: str | None) -> str | None:
    """The customer's identity for "new logo" as this service keyed it alone: its normalised
    domain, else its normalised name (`customer_keys` holds every key it is known by)."""
    if domain:
        host = domain.strip().lower()
        for prefix in ("https://", "http://"):
            host = host.removeprefix(prefix)
        host = host.split("/", 1)[0].split(":", 1)[0].removeprefix("www.").rstrip(".")
        if host:
            return f"domain:{host}"
    if name:
        words = "".join(c if c.isalnum() else " " for c in name.casefold()).split()
        if words:
            return f"name:{' '.join(words)}"
    return None
