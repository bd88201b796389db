"""Attribution models: who gets what share of a won deal, exactly and explainably.

`attribute` takes the deal's touchpoints and amount and returns one line per credited partner.
Every step is deterministic and independent of input order: touchpoints are sorted by
(occurred_at, kind, touchpoint id) before a model looks at them; weights are Decimals (no
floats); the amount is split in the currency's minor units by the largest-remainder method, ties
broken by partner id, so the lines always sum exactly to the amount.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, localcontext
from enum import StrEnum

from services.attribution.domain.config import AttributionConfig, ModelName
from shared.events.attribution import CreditKind
from shared.events.bounds import MONEY_WHOLE_DIGITS
from shared.inputs import decimal_places

SECONDS_PER_DAY = Decimal(86400)
SHARE_PLACES = Decimal("0.00000001")
CREDIT_LIMIT = Decimal(10) ** MONEY_WHOLE_DIGITS  # what a credit event carries


class TouchpointKind(StrEnum):
    SOURCED_REGISTRATION = "sourced_registration"  # an approved registration linked to the deal
    REFERRAL = "referral"
    CO_SELL_MEETING = "co_sell_meeting"
    TECHNICAL_VALIDATION = "technical_validation"
    MARKETPLACE_TRANSACTION = "marketplace_transaction"
    IMPLEMENTATION = "implementation"
    CAMPAIGN = "campaign"  # a co-marketing campaign (it names the campaign)


# Breaks ties between touchpoints at the same instant (the sourcing registration comes first).
_KIND_ORDER = {kind: i for i, kind in enumerate(TouchpointKind)}


@dataclass(frozen=True)
class Touchpoint:
    touchpoint_id: str
    partner_id: str
    kind: TouchpointKind
    occurred_at: datetime
    source: str = ""
    campaign_id: str | None = None  # a campaign touchpoint's campaign

    @property
    def sourcing(self) -> bool:
        return self.kind is TouchpointKind.SOURCED_REGISTRATION

    @property
    def order(self) -> tuple[datetime, int, str]:
        return (self.occurred_at, _KIND_ORDER[self.kind], self.touchpoint_id)

    def describe(self) -> str:
        return f"{self.kind.value} {self.touchpoint_id} at {self.occurred_at.isoformat()}"


class CannotAttribute(ValueError):
    """A won deal that cannot be split as it is (missing amount, no exchange rate...)."""


@dataclass(frozen=True)
class CreditLine:
    partner_id: str
    kind: CreditKind
    share: Decimal  # the model's weight for this partner, normalised (8 places)
    original_amount: Decimal  # in the deal's currency
    amount: Decimal  # in the reporting currency
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Attribution:
    model: ModelName
    config_version: str
    original_amount: Decimal
    original_currency: str
    amount: Decimal
    currency: str
    fx_rate: Decimal
    rate_date: date
    close_date: date
    considered: tuple[Touchpoint, ...]
    excluded: tuple[tuple[Touchpoint, str], ...]
    lines: tuple[CreditLine, ...]

    @property
    def sourced(self) -> Decimal:
        return sum((x.amount for x in self.lines if x.kind is CreditKind.SOURCED), Decimal(0))

    @property
    def influenced(self) -> Decimal:
        return sum((x.amount for x in self.lines if x.kind is CreditKind.INFLUENCED), Decimal(0))


# The close dates a credit may carry: the platform's dates (1900 on, as every input's), and not
# `date.max`, which asyncpg stores as Postgres' infinity, a date with no quarter and no
# difference from any other (credits closing then made programme's KPIs, a partner's revenue
# and health answer 500: found from outside). An open deal may still carry such a date as
# "close date unknown".
CREDITED_CLOSE_DATES = (date(1900, 1, 1), date(9999, 12, 30))


def _check_close_date(close_date: date) -> None:
    if not CREDITED_CLOSE_DATES[0] <= close_date <= CREDITED_CLOSE_DATES[1]:
        raise CannotAttribute(
            f"won deal's close date {close_date} is not one a credit can carry "
            f"({CREDITED_CLOSE_DATES[0]} to {CREDITED_CLOSE_DATES[1]})"
        )


# The first and last instants `datetime` can hold (UTC).
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)


def days_after(instant: datetime, days: int) -> datetime:
    """`instant` moved by `days` (negative: back), saturating at EARLIEST and LATEST.

    A close date is any `date` (deals.opportunities may come from any producer), and the end of
    9999-12-31, a lock period after it or a lookback before year 1 lie outside `datetime`'s
    range (an OverflowError dead-lettered such a deal). An instant past the range is later (or
    earlier) than any a touchpoint or a change can carry, so the range's end stands for it and
    the rules decide as with the exact instant, at every instant but LATEST itself: the window
    reaches back to the first instant, and a lock past the last one never comes. Such a deal is
    credited by the same rules as any other (open deals, whose close date is only expected,
    carry 9999-12-31 as "unknown" too)."""
    try:
        return instant + timedelta(days=days)
    except OverflowError:
        return LATEST if days > 0 else EARLIEST


def close_instant(close_date: date) -> datetime:
    """Deals close on a day: the day's end (UTC) is the instant touchpoints are measured to."""
    return days_after(datetime.combine(close_date, time(0), tzinfo=UTC), 1)


def closed_at(close_date: date, won_at: datetime | None) -> datetime:
    """The instant the deal closed: the moment it was won when that came before the close
    day's end. The close date is only a day: a touchpoint stamped after the win but on the
    same day (implementation, a validation reported to take the last touch) did not help win
    it (found from outside: it moved credit from a co-selling partner)."""
    end_of_day = close_instant(close_date)
    return end_of_day if won_at is None else min(end_of_day, won_at)


def _after_close(close_date: date, won_at: datetime | None, post_close_days: int) -> str:
    end_of_day = close_instant(close_date)
    if won_at is not None and won_at < end_of_day:
        return f"after the deal was won at {won_at.isoformat()} (+{post_close_days}d)"
    return f"after the close date {close_date} (+{post_close_days}d)"


def in_window(
    config: AttributionConfig,
    touchpoints: Iterable[Touchpoint],
    close_date: date,
    won_at: datetime | None = None,
) -> tuple[list[Touchpoint], list[tuple[Touchpoint, str]]]:
    """The touchpoints that count, and why the others do not: none at or after the close (the
    win, or the close day's end: `closed_at`) + `post_close_days`, none before the lookback
    (counted from the close day's end) unless sourcing and the policy says so."""
    end = days_after(closed_at(close_date, won_at), config.post_close_days)
    start = days_after(close_instant(close_date), -(config.lookback_days + 1))
    kept: list[Touchpoint] = []
    excluded: list[tuple[Touchpoint, str]] = []
    for tp in sorted(touchpoints, key=lambda t: t.order):
        if tp.occurred_at >= end:
            excluded.append((tp, _after_close(close_date, won_at, config.post_close_days)))
        elif tp.occurred_at < start and not (tp.sourcing and config.sourced_ignores_lookback):
            excluded.append((tp, f"before the {config.lookback_days}-day lookback window"))
        else:
            kept.append(tp)
    return kept, excluded


def weights(
    config: AttributionConfig, touchpoints: Sequence[Touchpoint], close_date: date
) -> list[tuple[Touchpoint, Decimal, str]]:
    """Each touchpoint's raw weight under the configured model, with the reason for it.

    `touchpoints` must be sorted (see `Touchpoint.order`); zero-weight touchpoints are kept so
    the explanation can say why they earned nothing."""
    model = config.model
    n = len(touchpoints)
    if n == 0:
        return []
    if model is ModelName.SOURCED_ONLY:
        return [
            (tp, Decimal(1), "sourced-only: the sourcing registration takes the deal")
            if tp.sourcing
            else (tp, Decimal(0), "sourced-only: influence earns no credit")
            for tp in touchpoints
        ]
    if model is ModelName.FIRST_TOUCH:
        return [
            (tp, Decimal(1 if i == 0 else 0), "first touch" if i == 0 else "not the first touch")
            for i, tp in enumerate(touchpoints)
        ]
    if model is ModelName.LAST_TOUCH:
        return [
            (tp, Decimal(1 if i == n - 1 else 0), "last touch" if i == n - 1 else "not the last")
            for i, tp in enumerate(touchpoints)
        ]
    if model is ModelName.LINEAR:
        return [(tp, Decimal(1), f"linear: 1 of {n} touchpoints") for tp in touchpoints]
    if model is ModelName.POSITION_BASED:
        pw = config.position_weights
        if n == 1:
            return [(touchpoints[0], Decimal(1), "position-based: the only touchpoint")]
        if n == 2:
            # No middle: the ends share everything in the ratio first:last.
            return [
                (touchpoints[0], pw.first, "position-based: first touch (no middle touches)"),
                (touchpoints[1], pw.last, "position-based: last touch (no middle touches)"),
            ]
        middle = pw.middle / (n - 2)
        out = [(touchpoints[0], pw.first, "position-based: first touch")]
        out += [
            (tp, middle, f"position-based: 1 of {n - 2} middle touches") for tp in touchpoints[1:-1]
        ]
        out.append((touchpoints[-1], pw.last, "position-based: last touch"))
        return out
    # Time decay: a touchpoint's weight halves every half-life before the close.
    end = close_instant(close_date)
    out = []
    for tp in touchpoints:
        age_days = max(Decimal(0), Decimal(int((end - tp.occurred_at).total_seconds())))
        age_days /= SECONDS_PER_DAY
        weight = Decimal(2) ** (-age_days / config.half_life_days)
        out.append(
            (
                tp,
                weight,
                f"time decay: {age_days.quantize(Decimal('0.1'))} days before close, "
                f"half-life {config.half_life_days} days",
            )
        )
    return out


def allocate(total: Decimal, places: int, shares: Sequence[tuple[str, Decimal]]) -> list[Decimal]:
    """Split `total` in proportion to the weights, exactly, in units of 10**-places.

    Largest remainder: everyone gets the floor of their exact share, then the leftover units go
    one by one to the largest fractional parts (ties: the key, ascending). Deterministic, and
    the result always sums to the (rounded) total."""
    unit = Decimal(1).scaleb(-places)
    units = int((total / unit).to_integral_value(ROUND_HALF_EVEN))
    weight_sum = sum((w for _, w in shares), Decimal(0))
    if not shares or weight_sum <= 0:
        return [Decimal(0).quantize(unit) for _ in shares]
    with localcontext() as ctx:
        ctx.prec = 50
        exact = [Decimal(units) * w / weight_sum for _, w in shares]
    floors = [int(x.to_integral_value(ROUND_FLOOR)) for x in exact]
    leftover = units - sum(floors)
    order = sorted(range(len(shares)), key=lambda i: (-(exact[i] - floors[i]), shares[i][0]))
    for j in range(leftover):
        floors[order[j % len(order)]] += 1
    return [(Decimal(f) * unit).quantize(unit) for f in floors]


def _totals(
    config: AttributionConfig, amount: Decimal, currency: str, rate: Decimal
) -> tuple[Decimal, Decimal]:
    """The deal's amount in its currency's minor units and in the reporting currency's."""
    places = config.minor_unit(currency)
    if decimal_places(amount) > places:
        # Rounded, the credits would not sum to the deal (1000.75 JPY split as 1001).
        raise CannotAttribute(
            f"{amount} {currency} has {decimal_places(amount)} decimals; {currency} has "
            f"{places}: the deal cannot be split exactly"
        )
    original_unit = Decimal(1).scaleb(-places)
    reporting_unit = Decimal(1).scaleb(-config.minor_unit(config.reporting_currency))
    # Wide enough for any amount and rate the contract and the config admit (20 and 40
    # digits): in the default 28 digits a large product could not be rounded to the cent.
    with localcontext() as ctx:
        ctx.prec = 80
        original_total = amount.quantize(original_unit, ROUND_HALF_EVEN)
        reporting_total = (original_total * rate).quantize(reporting_unit, ROUND_HALF_EVEN)
    if reporting_total >= CREDIT_LIMIT:
        raise CannotAttribute(
            f"{original_total} {currency} is {reporting_total} {config.reporting_currency}: "
            f"a credit must be below 10^{MONEY_WHOLE_DIGITS}"
        )
    return original_total, reporting_total


def attribute(
    config: AttributionConfig,
    touchpoints: Iterable[Touchpoint],
    amount: Decimal | None,
    currency: str | None,
    close_date: date | None,
    won_at: datetime | None = None,
) -> Attribution:
    """Split a won deal across its partners (`won_at`: the moment it was won, when known).
    Raises CannotAttribute when it cannot be done."""
    if amount is None or currency is None or close_date is None:
        missing = [
            name
            for name, value in (
                ("amount", amount),
                ("currency", currency),
                ("close_date", close_date),
            )
            if value is None
        ]
        raise CannotAttribute(f"won deal lacks {', '.join(missing)}")
    if amount < 0:
        raise CannotAttribute(f"won deal has a negative amount {amount}")
    _check_close_date(close_date)
    found = config.rate_on(currency, close_date)
    if found is None:
        raise CannotAttribute(
            f"no {currency}->{config.reporting_currency} rate on or before the close date "
            f"{close_date} (config {config.version})"
        )
    rate, rate_date = found
    original_total, reporting_total = _totals(config, amount, currency, rate)

    kept, excluded = in_window(config, touchpoints, close_date, won_at)
    weighted = weights(config, kept, close_date)
    per_partner: dict[str, Decimal] = defaultdict(Decimal)
    why: dict[str, list[str]] = defaultdict(list)
    sourcing = {tp.partner_id for tp in kept if tp.sourcing}
    for tp, weight, reason in weighted:
        per_partner[tp.partner_id] += weight
        why[tp.partner_id].append(f"{tp.describe()}: {reason}")
    ranked = sorted((p, w) for p, w in per_partner.items() if w > 0)
    originals = allocate(original_total, config.minor_unit(currency), ranked)
    reportings = allocate(reporting_total, config.minor_unit(config.reporting_currency), ranked)
    weight_sum = sum((w for _, w in ranked), Decimal(0))
    lines = []
    for (partner, weight), original, reported in zip(ranked, originals, reportings, strict=True):
        share = (weight / weight_sum).quantize(SHARE_PLACES, ROUND_HALF_EVEN)
        kind = CreditKind.SOURCED if partner in sourcing else CreditKind.INFLUENCED
        reasons = [
            f"{config.model.value} (config {config.version}): {share * 100:.2f}% of "
            f"{original_total} {currency}",
            *why[partner],
        ]
        if currency != config.reporting_currency:
            reasons.append(
                f"fx: 1 {currency} = {rate} {config.reporting_currency} "
                f"(rate effective {rate_date}, close date {close_date})"
            )
        if kind is CreditKind.SOURCED:
            reasons.append("sourced: the partner holds the deal's approved registration")
        lines.append(CreditLine(partner, kind, share, original, reported, tuple(reasons)))
    return Attribution(
        model=config.model,
        config_version=config.version,
        original_amount=original_total,
        original_currency=currency,
        amount=reporting_total,
        currency=config.reporting_currency,
        fx_rate=rate,
        rate_date=rate_date,
        close_date=close_date,
        considered=tuple(kept),
        excluded=tuple(excluded),
        lines=tuple(line for line in lines if line.original_amount or line.amount),
    )
