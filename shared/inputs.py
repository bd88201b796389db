"""What a request may carry: the constrained types every request model and CRM adapter parses
its inputs into, once, at the edge. Contracts only (no I/O).

Every string is bounded and clean: no NUL, no lone surrogate (Postgres and the JSON encoder
refuse both), no C0/C1 control character (free text may hold tab, newline and carriage return),
no explicit bidirectional control (embeddings, overrides, isolates: they reorder what a page
shows after the value).
Names are NFKC-normalised with their whitespace collapsed and must keep a letter or digit.
Currencies are ISO 4217 codes with a minor unit (from the `iso4217` package), countries ISO
3166-1 alpha-2 codes (from `pycountry`); an amount fits the ledgers' `numeric(20, 2)` columns
and has no more decimals than its currency allows (JPY has none). Instants carry their offset
and lie in years 1900-9999, so converting one to UTC never overflows.

Free JSON kept as sent (an xAPI statement's context) holds no NUL, lone surrogate or non-finite
number anywhere (jsonb refuses the first two; `json.loads` reads NaN, Infinity and 1e999 as
floats that a JSON encoder writes as null). E-mail addresses follow RFC 5322's plain form and a
real domain's syntax (`email-validator`, without DNS).

The checks are plain functions too (`clean_ident`, `clean_name`, `currency_code`, ...): the CRM
adapters, which read payloads pydantic does not model, call them with the field's path.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import unicodedata
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache
from itertools import accumulate
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import iso4217
import pycountry
from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BeforeValidator, Field, Strict

from shared.addresses import url_host
from shared.clock import now
from shared.errors import RequestError
from shared.events.crm import CrmSource

NAME_MAX = 200
IDENT_MAX = 200
TEXT_MAX = 2000
LIST_MAX = 50
MONEY_MAX_DIGITS = 16  # with 2 decimals: below 10^14, inside numeric(20, 2) and numeric(20, 4)
MONEY_DECIMALS = 2
EARLIEST_YEAR = 1900
LATEST_YEAR = 9999

# The explicit bidirectional formatting controls: embeddings and overrides (U+202A-202E: LRE,
# RLE, PDF, LRO, RLO) and isolates (U+2066-2069: LRI, RLI, FSI, PDI). Found from outside: a
# company name ending in U+202E reversed what the console printed after it ("(isv,
# moc.tfosorcim)" read as a Microsoft domain), and a customer name the amount beside it. No
# real name needs them: the Unicode bidi algorithm lays out Arabic or Hebrew by itself. The
# implicit marks (LRM, RLM, ALM) stay: they are part of writing such text, cannot reverse a
# run of letters, and the portal isolates whatever a person sent from the text around it.
_BIDI = "\u202a-\u202e\u2066-\u2069"
# C0 and C1 controls, DEL, the surrogate range (a lone surrogate is not text) and bidi controls.
_CONTROL = re.compile(rf"[\x00-\x1f\x7f-\x9f\ud800-\udfff{_BIDI}]")
_CONTROL_IN_TEXT = re.compile(rf"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff{_BIDI}]")
_BIDI_CONTROL = re.compile(f"[{_BIDI}]")


class InputError(ValueError):
    """A value a request may not carry; the message says why (pydantic reports it as 422)."""


def _refuse_controls(value: str, pattern: re.Pattern[str], what: str) -> str:
    found = pattern.search(value)
    if found is None:
        return value
    char = found.group()
    if char == "\x00":
        raise InputError(f"{what} must not contain NUL characters")
    if "\ud800" <= char <= "\udfff":
        raise InputError(f"{what} must not contain lone surrogates (U+{ord(char):04X})")
    if _BIDI_CONTROL.match(char):
        raise InputError(
            f"{what} must not contain bidirectional embedding, override or isolate controls "
            f"(U+{ord(char):04X})"
        )
    raise InputError(f"{what} must not contain control characters (U+{ord(char):04X})")


def clean_ident(value: str, what: str = "identifier") -> str:
    """An identifier, exactly as given, without control characters."""
    return _refuse_controls(value, _CONTROL, what)


def clean_text(value: str, what: str = "text") -> str:
    """Free text: tab, newline and carriage return allowed, other controls refused."""
    return _refuse_controls(value, _CONTROL_IN_TEXT, what)


_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


# A place in a JSON value: its parent's place and its key (or index); None is the top. Linked,
# so the place of each of N items costs one tuple, not a copy of its parent's path: found in
# review, one key of K characters over an array of N numbers built K x N bytes of paths (a
# 304 kB xAPI statement took 398 MiB, a 1 MB one 4.8 GB), all to name a place no error needed.
_Place = tuple[Any, "str | int"] | None


def _place_text(what: str, place: _Place) -> str:
    """The place as a path (`what.key[3]`), each key cut to 64 characters."""
    steps: list[str] = []
    while place is not None:
        place, step = place
        if isinstance(step, int):
            steps.append(f"[{step}]")
        else:
            steps.append(f".{step[:64]}{'...' if len(step) > 64 else ''}")
    return what + "".join(reversed(steps))


def storable_json(value: Any, what: str = "JSON") -> Any:
    """`value` (JSON as parsed) unchanged, or an InputError naming the first place that holds
    what Postgres' jsonb cannot keep exactly: a NUL or a lone surrogate in a key or a string, a
    number that is not finite. Linear in the value's size."""
    pending: list[tuple[_Place, Any]] = [(None, value)]
    while pending:
        place, item = pending.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                _refuse_controls(item, _UNSTORABLE, _place_text(what, place))
        elif (isinstance(item, float) and not math.isfinite(item)) or (
            isinstance(item, Decimal) and not item.is_finite()
        ):
            raise InputError(
                f"{_place_text(what, place)} must be a finite number (not NaN, Infinity or "
                "beyond a double)"
            )
        elif isinstance(item, dict):
            for key, inner in item.items():
                name = str(key)
                if _UNSTORABLE.search(name):
                    _refuse_controls(name, _UNSTORABLE, f"a key in {_place_text(what, place)}")
                pending.append(((place, name), inner))
        elif isinstance(item, list):
            pending.extend(((place, index), inner) for index, inner in enumerate(item))
    return value


def check_email(
    value: str, what: str = "email", *, ascii_only: bool = False, mailbox: bool = True
) -> str:
    """`value` unchanged if it is a plain e-mail address (dot-atom local part, no quoting,
    comments or display name; a domain with a dot, no special-use name such as .local), else an
    InputError with email-validator's reason. `ascii_only` refuses an internationalised local
    part (SMTPUTF8). Not `mailbox`: an address that names someone but is never mailed (an xAPI
    actor's mbox): a learning system's sandbox domain under .test is taken."""
    _refuse_controls(value, _CONTROL, what)
    try:
        validate_email(
            value,
            check_deliverability=False,
            allow_smtputf8=not ascii_only,
            globally_deliverable=mailbox,
            test_environment=not mailbox,  # takes the .test sandboxes' domains
        )
    except EmailNotValidError as error:
        raise InputError(f"{what} is not a valid e-mail address: {error}") from error
    return value


def check_https_url(value: str, what: str = "url") -> str:
    """`value` unchanged if it is an absolute https URL a browser opens as written: no spaces,
    controls or credentials; its host a DNS name (`shared.addresses.ascii_host`, an underscore
    allowed), an IPv4 address in dotted decimal form or an IPv6 address in brackets; its port,
    when given, a number from 1 to 65535. Else an InputError saying which part is wrong. Found
    from outside: `https://res.example:abc/a`, `:99999`, `:0` and `https://[::1/a` were
    stored as resource addresses, and every page listing them failed reading them (a 500)."""
    _refuse_controls(value, _CONTROL, what)
    if any(char.isspace() for char in value):
        raise InputError(f"{what} must not contain spaces")
    try:
        parts = urlsplit(value)
        _ = parts.port  # ValueError: not ASCII digits, or beyond 65535
    except ValueError as error:
        raise InputError(f"{what} is not a valid URL: {error}") from None
    if parts.scheme != "https":
        raise InputError(f"{what} must be an https URL")
    if parts.username is not None or parts.password is not None:
        raise InputError(f"{what} must not carry credentials")
    try:
        host, literal = url_host(parts, what)
    except ValueError as error:
        raise InputError(str(error)) from None
    # A zone names an interface of one machine, not a place on the web.
    if isinstance(literal, ipaddress.IPv6Address) and "%" in host:
        raise InputError(f"{what}'s IPv6 address must not name a zone")
    return value


def clean_name(value: str, what: str = "name") -> str:
    """A name: NFKC-normalised, whitespace collapsed, and at least one letter or digit left."""
    _refuse_controls(value, _CONTROL, what)
    normalised = " ".join(unicodedata.normalize("NFKC", value).split())
    if not any(char.isalnum() for char in normalised):
        raise InputError(f"{what} must contain a letter or a digit")
    if len(normalised) > NAME_MAX:  # NFKC expands some characters: U+FDFA is 18 letters
        raise InputError(f"{what} is longer than {NAME_MAX} characters once normalised")
    return normalised


@cache
def _minor_units() -> dict[str, int]:
    """ISO 4217 currencies that have a minor unit (funds, metals and test codes have none)."""
    return {c.code: c.exponent for c in iso4217.Currency if c.exponent is not None}


@cache
def _countries() -> frozenset[str]:
    return frozenset(country.alpha_2 for country in pycountry.countries)


def currency_code(value: str, what: str = "currency") -> str:
    if value not in _minor_units():
        raise InputError(f"{what} {value[:8]!r} is not an ISO 4217 currency code")
    return value


def minor_units(currency: str) -> int:
    """How many decimals an amount in `currency` may have (JPY 0, EUR 2, BHD 3)."""
    return _minor_units()[currency]


def country_code(value: str, what: str = "country") -> str:
    if value not in _countries():
        raise InputError(f"{what} {value[:8]!r} is not an ISO 3166-1 alpha-2 country code")
    return value


def iso3_country(value: str, what: str = "country") -> str:
    """An ISO 3166-1 alpha-3 code as its alpha-2 code."""
    found = pycountry.countries.get(alpha_3=value) if value.isascii() and value.isalpha() else None
    if found is None:
        raise InputError(f"{what} {value[:8]!r} is not an ISO 3166-1 country code")
    return str(found.alpha_2)


def decimal_places(amount: Decimal) -> int:
    """How many decimals a finite amount needs, trailing zeros aside, counted from its digits
    (`normalize()` would round to the context's 28 digits first: 1.000...0001 with 30
    decimals came out as 1, and 99999999999999.999999999999999999999 as 10^14)."""
    _, digits, exponent = amount.as_tuple()
    if not isinstance(exponent, int) or not any(digits):
        return 0
    significant = "".join(map(str, digits)).rstrip("0")
    return max(0, -(exponent + len(digits) - len(significant)))


def check_money(amount: Decimal, currency: str | None, what: str = "amount") -> Decimal:
    """An amount that is finite, non-negative, fits the columns and has no more decimals than
    its currency allows."""
    if not amount.is_finite():
        raise InputError(f"{what} must be a finite number")
    if amount < 0:
        raise InputError(f"{what} must not be negative")
    if amount >= Decimal(10) ** (MONEY_MAX_DIGITS - MONEY_DECIMALS):
        raise InputError(f"{what} must be below 10^{MONEY_MAX_DIGITS - MONEY_DECIMALS}")
    decimals = decimal_places(amount)
    allowed = MONEY_DECIMALS if currency is None else min(MONEY_DECIMALS, minor_units(currency))
    if decimals > allowed:
        where = f" in {currency}" if currency else ""
        raise InputError(f"{what} has {decimals} decimals; at most {allowed} allowed{where}")
    return amount


def check_instant(value: datetime, what: str = "timestamp") -> datetime:
    """An aware instant in years 1900-9999, in UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError(f"{what} needs a time zone (a timezone offset, e.g. 2026-01-01T00:00:00Z)")
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise InputError(f"{what} must lie between {EARLIEST_YEAR} and {LATEST_YEAR}")
    try:
        instant = value.astimezone(UTC)
    except OverflowError as error:
        raise InputError(f"{what} must lie between {EARLIEST_YEAR} and {LATEST_YEAR}") from error
    if instant == _INFINITY_INSTANT:
        raise InputError(f"{what} must be before {instant.isoformat()} ({_INFINITY})")
    return instant


def check_date(value: date, what: str = "date") -> date:
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise InputError(f"{what} must lie between {EARLIEST_YEAR} and {LATEST_YEAR}")
    if value == date.max:
        raise InputError(f"{what} must be before {value} ({_INFINITY})")
    return value


# asyncpg writes the last date and the last instant as Postgres' infinity, which has no quarter
# and no difference from any other (found from outside: a credit closing 9999-12-31 made
# programme's KPIs answer 500).
_INFINITY = "the database keeps that day as infinity"
_INFINITY_INSTANT = datetime.max.replace(tzinfo=UTC)


# ---- JSON bodies read by hand

MAX_JSON_DEPTH = 32
TOO_DEEP = f"malformed JSON: nested deeper than {MAX_JSON_DEPTH} levels"
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(raw: bytes) -> int:
    """How deeply a JSON body nests arrays and objects (brackets inside strings do not count).
    Cheap for the usual body: only one with more brackets than the bound is scanned."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return 0
    # Outside strings: with escaped backslashes and then escaped quotes taken out, every quote
    # left opens or closes a string, so every other piece between quotes is outside one (bytes
    # methods only: a regular expression over the strings took 150-450 us for a 6 KB body).
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.split(b'"')[::2])
    brackets = outside.translate(None, _NOT_BRACKET)
    steps = (1 if b in b"[{" else -1 for b in brackets)
    return max(accumulate(steps, initial=0))


class MalformedJson(RequestError):
    status = 400

    @classmethod
    def because(cls, error: Exception) -> MalformedJson:
        """The refusal of a body the JSON parser refused, with its reason."""
        return cls(f"malformed JSON: {str(error)[:200]}")


def refuse_json_constant(name: str) -> Any:
    """`json.loads`' `parse_constant`: NaN and Infinity are no JSON numbers."""
    raise ValueError(f"{name} is not a JSON number")


def parse_json(raw: bytes) -> Any:
    """A JSON body as routes that read it themselves take it (the CRM webhooks): numbers with
    a fraction or exponent as exact Decimals (`1e400` is not infinity), NaN and Infinity
    refused, invalid UTF-8 or nesting beyond the bound answered 400 like any malformed JSON."""
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise MalformedJson(TOO_DEEP)
    try:
        return json.loads(raw, parse_float=Decimal, parse_constant=refuse_json_constant)
    except (ValueError, RecursionError) as error:  # JSONDecodeError, UnicodeDecodeError, ...
        raise MalformedJson.because(error) from error


# Validators take the value alone (pydantic would hand a second parameter its ValidationInfo).
# A field whose lower bound differs from its type's builds its own
# `Annotated[str, Field(min_length=..., max_length=...), AfterValidator(as_name)]`: pydantic
# reports a bound added on top of these types as "items", not characters.


def as_ident(value: str) -> str:
    return clean_ident(value)


def as_name(value: str) -> str:
    return clean_name(value)


def as_text(value: str) -> str:
    return clean_text(value)


def as_email(value: str) -> str:
    return check_email(value)


def as_https_url(value: str) -> str:
    return check_https_url(value)


def as_storable_json(value: Any) -> Any:
    return storable_json(value)


def _currency(value: str) -> str:
    return currency_code(value)


def _country(value: str) -> str:
    return country_code(value)


# An amount written as text: ASCII digits with an optional sign and decimal part, as JSON
# writes a number (Python's Decimal also reads "1_000", " 100 ", Arabic-Indic and fullwidth digits).
PLAIN_AMOUNT = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def _plain_amount(value: Any) -> Any:
    if isinstance(value, str) and not PLAIN_AMOUNT.fullmatch(value):
        raise InputError(
            "amount text must be ASCII digits with an optional decimal point, like 1250.50"
        )
    return value


def _money(value: Decimal) -> Decimal:
    return check_money(value, None)


def _instant(value: datetime) -> datetime:
    return check_instant(value)


def _date(value: date) -> date:
    return check_date(value)


When = TypeVar("When", date, datetime)

# How far from now an operator's "as of" may be: the runs it drives add windows (years, at
# most) to it, and a moment near the year 9999 has no date after it (found from outside: runs
# as of 9999-12-31 answered 500 or failed in the background with an OverflowError).
AS_OF_REACH = timedelta(days=100 * 365)


def check_reach(value: When, what: str = "date") -> When:
    """A date or moment (a datetime is a date) within a hundred years of now: what the platform
    adds windows to (a deal's close date, a CRM's creation stamp) must have dates after it."""
    if _beyond_reach(value):
        raise InputError(f"{what} must be within a hundred years of now")
    return value


def _beyond_reach(value: date) -> bool:
    distance = abs(value - now()) if isinstance(value, datetime) else abs(value - now().date())
    return distance > AS_OF_REACH


def _in_reach(value: When) -> When:
    if _beyond_reach(value):
        raise InputError("must be within a hundred years of now")
    return value


# Each type's length is a ceiling: a field narrows it with `Annotated[Ident, Field(...)]` (a
# plain `= Field(max_length=...)` next to these types would be ignored by pydantic).

Ident = Annotated[str, Field(min_length=1, max_length=IDENT_MAX), AfterValidator(as_ident)]
"""An id (partner id, deal key, source, external id, reference): exact, no controls."""

Reference = Annotated[str, Field(min_length=1, max_length=TEXT_MAX), AfterValidator(as_ident)]
"""A longer reference (a document URL, an invoice number): exact, no controls."""

Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX), AfterValidator(as_name)]
"""A person's or a company's name: NFKC, whitespace collapsed, a letter or digit required."""

FreeText = Annotated[str, Field(max_length=TEXT_MAX), AfterValidator(as_text)]
"""A note, a reason, a description: tab and newline allowed, other controls refused."""

Code = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
"""A product, competency, industry or segment code."""

CurrencyCode = Annotated[
    str,
    Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code", examples=["EUR"]),
    AfterValidator(_currency),
]

CountryCode = Annotated[
    str,
    Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 country code", examples=["DE"]),
    AfterValidator(_country),
]

Money = Annotated[
    Decimal,
    Field(ge=0, max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMALS),
    AfterValidator(_money),
    BeforeValidator(_plain_amount),
]
"""A non-negative amount that fits the ledgers' columns (its currency's minor units are
checked by the model that knows the currency: `check_money(amount, currency)`)."""

PositiveMoney = Annotated[Money, Field(gt=0)]

ListOrder = Literal["oldest", "newest"]
"""Which end of a list comes first (a query parameter `order`)."""

# A key named by its CRM first: `source:...` (a deal key, a CRM link's place in a list).
SOURCE_KEY_PATTERN = "^(" + "|".join(source.value for source in CrmSource) + "):.+$"
LONGEST_SOURCE = max(len(source.value) for source in CrmSource)
# A deal key is `source:source_id`, and a source id may be two identifiers (HubSpot's is
# `portal:deal`), each up to IDENT_MAX: a key the adapters accepted must be one a caller can name.
DEAL_KEY_MAX = LONGEST_SOURCE + 1 + 2 * IDENT_MAX + 1
DealKey = Annotated[
    str,
    Field(
        max_length=DEAL_KEY_MAX,
        pattern=SOURCE_KEY_PATTERN,
        description="source:source_id of a CRM opportunity (the source one of the CRMs)",
        examples=["salesforce:0065g00000XyZaAAAV"],
    ),
    AfterValidator(as_ident),
]
"""A CRM deal's key: a deal of a CRM the platform does not ingest cannot exist."""

Instant = Annotated[datetime, AfterValidator(_instant)]
"""An aware moment in years 1900-9999 (year 1 with an offset would overflow in UTC)."""

Day = Annotated[date, AfterValidator(_date)]
"""A calendar date in years 1900-9999."""

AsOf = Annotated[datetime, AfterValidator(_instant), AfterValidator(_in_reach)]
"""The moment an admin run is asked to act as of: aware, within a hundred years of now."""

NearDay = Annotated[date, AfterValidator(_date), AfterValidator(_in_reach)]
"""A calendar date the platform counts windows from, within a hundred years of now (found from
outside: a campaign ending on 9999-12-30 made approving its budget answer 500, its claims'
deadline 61 days later having no date)."""

EmailAddress = Annotated[str, Field(max_length=254), AfterValidator(as_email)]
"""A person's e-mail address, exactly as given (see `check_email`)."""

HttpsUrl = Annotated[
    str, Field(max_length=TEXT_MAX, pattern=r"^https://\S+$"), AfterValidator(as_https_url)
]
"""An address a person's browser is sent to, exactly as given (see `check_https_url`)."""

Integer = Annotated[int, Strict()]
"""A whole number in a JSON body, as a JSON integer: pydantic takes `true` for 1 (a survey
answered `true` was a score of 1, a detractor), "5" and 5.0 for 5. Not for a query parameter,
which is text."""

JsonObject = Annotated[dict[str, Any], AfterValidator(as_storable_json)]
"""A free JSON object kept as sent: see `storable_json`."""

__all__ = [
    "DEAL_KEY_MAX",
    "LIST_MAX",
    "LONGEST_SOURCE",
    "SOURCE_KEY_PATTERN",
    "AsOf",
    "Code",
    "CountryCode",
    "CurrencyCode",
    "Day",
    "DealKey",
    "EmailAddress",
    "FreeText",
    "HttpsUrl",
    "Ident",
    "InputError",
    "Instant",
    "Integer",
    "JsonObject",
    "ListOrder",
    "Money",
    "Name",
    "NearDay",
    "PositiveMoney",
    "Reference",
    "as_https_url",
    "as_ident",
    "as_name",
    "as_text",
    "check_email",
    "check_https_url",
    "check_money",
    "check_reach",
    "clean_ident",
    "clean_name",
    "clean_text",
    "country_code",
    "currency_code",
    "minor_units",
    "storable_json",
]
