"""What the portal's pages show and who reaches them: plain rules, no I/O."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Context, Decimal, InvalidOperation
from typing import TypeVar
from urllib.parse import quote

from shared.identity import Caller, Role
from shared.inputs import decimal_places, minor_units

T = TypeVar("T")

# A registration still in play: the partner may act on it or is waiting for a decision.
OPEN_STATUSES = frozenset({"submitted", "approved", "pending_review"})
# Only an approved registration has a protection window a partner can extend.
EXTENDABLE_STATUSES = frozenset({"approved"})
LATEST_NOTIFICATIONS = 10
# The most digits before or after the point an amount is written out with (the ledgers keep 20).
MONEY_SHOWN_DIGITS = 40
# Room for any amount shown written out (the default context's 28 digits would refuse some).
_WIDE = Context(prec=2 * MONEY_SHOWN_DIGITS + 8)


def segment(value: object) -> str:
    """`value` as exactly one path segment of a URL: the portal's own (a form's action, a link)
    or a service's it calls. Found from outside: an id taken from a page's address went into
    deals' path as it was, so `x?limit=1` became a query and `x#` cut the path short. Every
    character but unreserved ones is escaped ('/', '?', '#', '%', spaces), and "." and ".."
    too, which HTTP clients would otherwise resolve as a step up the path."""
    text = quote(str(value), safe="")
    return text.replace(".", "%2E") if text in (".", "..") else text


def money(amount: object, currency: object = None) -> str:
    """An amount as a page shows it: with its currency's minor units when that loses nothing.
    The services answer amounts at the precision they keep them (a CRM deal's amount with four
    places, "4200.0000"; a credit with the currency's two); a person reads 4200.00 USD either
    way. More places than the currency has are shown as they are, never rounded, and a value
    that is not a finite number is shown as it came."""
    if amount is None:
        return ""
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        return str(amount)
    if value.is_zero():
        value = Decimal(0)  # 0E-50 is zero whatever its exponent
    if not value.is_finite() or abs(value.adjusted()) > MONEY_SHOWN_DIGITS:
        return str(amount)  # written out, 1E+999999 would be a million digits
    places = _currency_places(currency)
    if places is None or decimal_places(value) > places:
        return f"{value:f}"
    return f"{value.quantize(Decimal(1).scaleb(-places), context=_WIDE):f}"


def _currency_places(currency: object) -> int | None:
    try:
        return minor_units(currency) if isinstance(currency, str) else None
    except KeyError:
        return None


def landing_page(who: Caller) -> str | None:
    """Where a signed-in person starts: a partner's people at their home, channel managers at
    the console, finance at the payouts. System clients have no pages."""
    if who.partner_id is not None:
        return "/home"
    if who.has(Role.CHANNEL_MANAGER):
        return "/console"
    if who.has(Role.FINANCE):
        return "/finance/payouts"
    return None


def is_open(status: str) -> bool:
    return status in OPEN_STATUSES


def may_extend(
    status: str, extensions_left: int, expires_at: datetime | None, now: datetime
) -> bool:
    """Whether the extension button is offered: deals decides (and may still refuse with 409);
    the page only hides a button that could not succeed. `extensions_left`: what deals says the
    policy in force still allows (found in review: the page assumed one extension, whatever
    the policy said); a window already over is not extended either (found in review: it was
    offered beside "expired" until the expiry job ran, and deals always refused it)."""
    over = expires_at is not None and expires_at <= now
    return status in EXTENDABLE_STATUSES and extensions_left > 0 and not over


def countdown(expires_at: datetime | None, now: datetime) -> str:
    """How long a protection window has left, in words a person reads at a glance."""
    if expires_at is None:
        return "no expiry"
    left = expires_at - now
    seconds = int(left.total_seconds())
    if seconds <= 0:
        return "expired"
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    if days:
        return f"{days} day{'s' if days != 1 else ''} {hours} h left"
    if hours:
        return f"{hours} h {minutes} min left"
    return f"{max(minutes, 1)} min left"


def latest(items: Sequence[T], count: int = LATEST_NOTIFICATIONS) -> list[T]:
    """The newest `count` of an oldest-first list, newest first."""
    return list(reversed(items[-count:])) if count > 0 else []


def open_first(statuses: Iterable[tuple[str, T]]) -> list[T]:
    """Items whose status is open, in their given order."""
    return [item for status, item in statuses if is_open(status)]


def quarter_of(at: datetime) -> str:
    return f"{at.year}-Q{(at.month - 1) // 3 + 1}"


def recent_quarters(at: datetime, count: int = 8) -> list[str]:
    """The statement periods a person picks from: this quarter and the ones before it."""
    year, quarter = at.year, (at.month - 1) // 3 + 1
    periods = []
    for _ in range(count):
        periods.append(f"{year}-Q{quarter}")
        year, quarter = (year, quarter - 1) if quarter > 1 else (year - 1, 4)
    return periods


_QUARTER = re.compile(r"([0-9]{4})-Q([1-4])")
_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")
PERIOD_YEARS = 2  # how far back the statement's periods go


def recent_periods(current: str, years: int = PERIOD_YEARS) -> list[str]:
    """The statement periods a person picks from, in the form the incentive programme books
    them, which its current period (incentives' `/programs`) is in: `2026-Q4` by quarter,
    `2026-11` by month. That one and the ones before it over `years`, newest first; a
    ValueError for a period in neither form."""
    if quarter := _QUARTER.fullmatch(current):
        year, number, per_year, spell = int(quarter[1]), int(quarter[2]), 4, "{}-Q{}"
    elif month := _MONTH.fullmatch(current):
        year, number, per_year, spell = int(month[1]), int(month[2]), 12, "{}-{:02d}"
    else:
        raise ValueError(f"period {current[:16]!r} is neither a quarter nor a month")
    periods = []
    for _ in range(per_year * years):
        periods.append(spell.format(year, number))
        year, number = (year, number - 1) if number > 1 else (year - 1, per_year)
    return periods


ENTRY_LABELS = {
    "accrual": "Accrual",
    "kicker": "Kicker",
    "spiff": "SPIFF",
    "clawback": "Clawback",
    "reversal": "Reversal",
    "payout": "Payout",
}


def entry_label(entry_type: str) -> str:
    """How a ledger entry's type reads on a statement (unknown types as they are)."""
    return ENTRY_LABELS.get(entry_type, entry_type.replace("_", " ").capitalize())
