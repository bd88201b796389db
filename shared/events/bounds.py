"""What a number or a moment in an event may be: bounded by what its consumers store it in and
compute with, so an event outside them is refused at decode, with the field's path and the
bound, in microseconds (never by a handler's DataError or InvalidOperation, or by arithmetic
that takes the event loop for minutes: `int(Decimal("1E+999999"))` converts a million digits to
binary, and froze a consumer for 85 s).

Money is what the consumers' `numeric(20, 4)` and `numeric(20, 2)` columns hold exactly: below
10^16 in magnitude with at most 4 decimals (`Amount4`), or 2 where every column it reaches keeps
cents (`Amount2`: the incentive ledger). Ratios and rates hold at most 28 decimals (what Decimal
arithmetic keeps; Postgres' numeric takes them), integers what their `integer` or `bigint`
columns hold. A decimal written as text is at most 64 characters (a longer one was parsed, all
of it, before any bound was looked at). An instant converts to UTC; an envelope's time lies in
years 1900-9999 before the last instant (asyncpg writes that as infinity), and so does a
campaign's day.

The HTTP side's `shared.inputs` is narrower (an amount there is below 10^14 with its currency's
minor units): events also carry what the platform computes and stores from them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Context, Decimal
from functools import cache
from typing import Annotated, Any, Protocol, TypeVar

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError

INT32_MAX = 2**31 - 1  # Postgres `integer`
INT64_MAX = 2**63 - 1  # Postgres `bigint`
MONEY_WHOLE_DIGITS = 16  # numeric(20, 4): 16 digits before the point (numeric(20, 2): 18)
NUMBER_TEXT_MAX = 64
RATIO_PLACES = 28
EARLIEST_YEAR = 1900
LATEST_YEAR = 9999
_LAST_INSTANT = datetime.max.replace(tzinfo=UTC)


def _refused(why: str) -> PydanticCustomError:
    """A refusal reading as `why` alone (a ValueError's would start "Value error, ")."""
    return PydanticCustomError("out_of_bounds", why)


def _short_text(value: Any) -> Any:
    if isinstance(value, str) and len(value) > NUMBER_TEXT_MAX:
        raise _refused(f"a number written with more than {NUMBER_TEXT_MAX} characters")
    return value


@cache
def _within_places(places: int, whole_digits: int) -> Any:
    """The validator of `places`: the value, with a positive exponent or trailing zeros past
    `places` written as the column would keep it (1E+3 as 1000.0000 at four places, 1.10000
    as 1.1000), or an
    error. Range checks ran first, so the quantizing context always holds the result."""
    unit = Decimal(1).scaleb(-places)
    context = Context(prec=whole_digits + places + 1)

    def check(value: Decimal) -> Decimal:
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and -places <= exponent <= 0:
            return value  # the usual case: nothing to compute
        quantized = value.quantize(unit, context=context)
        if quantized != value:
            raise _refused(f"at most {places} decimal places")
        return quantized

    return check


def bounded_decimal(
    whole_digits: int,
    places: int,
    *,
    ge: int | Decimal | None = None,
    gt: int | Decimal | None = None,
    le: int | Decimal | None = None,
) -> Any:
    """A finite decimal below 10^whole_digits in magnitude with at most `places` decimals,
    in the range `ge`/`gt`/`le` narrows it to."""
    limit = 10**whole_digits
    return Annotated[
        Decimal,
        Field(
            gt=-limit if ge is None and gt is None else gt,
            ge=ge,
            lt=limit if le is None else None,
            le=le,
            allow_inf_nan=False,
        ),
        BeforeValidator(_short_text),
        AfterValidator(_within_places(places, whole_digits)),
    ]


Amount4 = bounded_decimal(MONEY_WHOLE_DIGITS, 4, ge=0)
"""A non-negative amount as `numeric(20, 4)` holds it: a CRM deal's, a registration's, a
credit's (the consumers keep those at four places)."""

Amount2 = bounded_decimal(MONEY_WHOLE_DIGITS, 2, ge=0)
"""A non-negative ledger amount: cents, below 10^16 (incentives keeps `numeric(20, 2)`,
programme `numeric(20, 4)`)."""

PositiveAmount2 = bounded_decimal(MONEY_WHOLE_DIGITS, 2, gt=0)
"""A ledger amount that is never nothing (a payout)."""

Balance2 = bounded_decimal(MONEY_WHOLE_DIGITS, 2)
"""A running ledger figure, of either sign (a balance after a clawback, a fund in deficit)."""

Total4 = bounded_decimal(MONEY_WHOLE_DIGITS, 4)
"""A sum of amounts, of either sign (net of reversals), as `numeric(20, 4)` holds it."""

Fraction = bounded_decimal(1, RATIO_PLACES, ge=0, le=1)
"""A share or a rate between 0 and 1."""

Rate = bounded_decimal(12, RATIO_PLACES, gt=0)
"""A positive exchange rate (reporting units per original unit), below 10^12."""

Ratio = bounded_decimal(MONEY_WHOLE_DIGITS, RATIO_PLACES)
"""A quotient of amounts, of either sign (return per dollar)."""

Score = bounded_decimal(3, 1, ge=0, le=100)
"""A 0-100 score with one decimal, as `numeric(5, 1)` holds it."""

Component = bounded_decimal(2, 4, ge=0, le=1)
"""A 0-1 component of a score with four decimals, as `numeric(6, 4)` holds it."""

Points = bounded_decimal(4, 4, ge=0)
"""Points taken off a score, below 10^4 as `numeric(6, 2)` holds them (from a policy's
figures, which may have more decimals than that column keeps)."""

Nps = bounded_decimal(3, 1, ge=-100, le=100)
"""A net promoter score, -100 to 100, one decimal."""

Count = Annotated[int, Field(ge=0, le=INT32_MAX)]
"""A count as an `integer` column holds it."""

Version = Annotated[int, Field(ge=0, le=INT32_MAX)]
"""A version or revision number as an `integer` column holds it."""

BigCount = Annotated[int, Field(ge=0, le=INT64_MAX)]
"""A non-negative integer as a `bigint` holds it (a CRM's commit or sequence number)."""


def in_utc(value: datetime) -> datetime:
    """`value` (read as UTC without an offset) if it converts to UTC: `0001-01-01T00:00:00+23:59`
    parsed, then overflowed in the consumer that converted it. Nothing narrower: producers
    send the first instant for "unknown" (deals, a direct-sales conflict without its
    opportunity's creation time)."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    try:
        aware.astimezone(UTC)
    except OverflowError as error:
        raise _refused("must convert to UTC within years 1-9999") from error
    return aware


def check_event_time(value: datetime) -> datetime:
    """An envelope's `time` (when its producer wrote it: now) in UTC inside years 1900-9999
    and before the last instant (asyncpg writes that as infinity): consumers store it as the
    event's ingestion time when the payload carries none."""
    aware = in_utc(value)
    utc = aware.astimezone(UTC)
    if not EARLIEST_YEAR <= utc.year <= LATEST_YEAR:
        raise _refused(f"must lie between {EARLIEST_YEAR} and {LATEST_YEAR} in UTC")
    if utc == _LAST_INSTANT:
        raise _refused("must be before the last instant (Postgres keeps it as infinity)")
    return aware


def check_day(value: date) -> date:
    """A calendar day in years 1900-9999 before the last one (asyncpg writes that as
    infinity), as the HTTP side takes one (`shared.inputs.Day`)."""
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise _refused(f"must lie between {EARLIEST_YEAR} and {LATEST_YEAR}")
    if value == date.max:
        raise _refused("must be before the last day (Postgres keeps it as infinity)")
    return value


Day = Annotated[date, AfterValidator(check_day)]
"""A calendar day a consumer can store and count from."""


class _Dated(Protocol):
    @property
    def starts_on(self) -> date: ...

    @property
    def ends_on(self) -> date: ...


D = TypeVar("D", bound=_Dated)


def ends_on_or_after_start(model: D) -> D:
    """A campaign's (or its pre-approval's) dates in order, as the HTTP side that creates them
    requires: its state follows them, and no state fits a campaign ending before it starts."""
    if model.ends_on < model.starts_on:
        raise _refused(f"ends_on {model.ends_on} is before starts_on {model.starts_on}")
    return model
