"""What every adapter reads a CRM payload with: each helper takes the value and its path in
the payload, checks its JSON type and bounds (the same constrained types the request models
use, from `shared.inputs`) and raises AdapterError naming the path otherwise."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from services.deals.domain.customers import normalise_domain
from shared.events.crm import DealStage, DealStatus
from shared.inputs import (
    IDENT_MAX,
    InputError,
    When,
    check_date,
    check_instant,
    check_money,
    check_reach,
    clean_ident,
    clean_name,
    country_code,
    currency_code,
    iso3_country,
)

MAX_CHANGES = 1000  # events in one delivery (a HubSpot batch, Salesforce messages, recordIds)
MAX_PRODUCTS = 50
# Epoch milliseconds of 1900-01-01 and 9999-12-30: what a CRM timestamp may be.
_EPOCH_MS_MIN = -2_208_988_800_000
_EPOCH_MS_MAX = 253_402_128_000_000


class AdapterError(ValueError):
    """The upstream payload cannot be mapped; the message says exactly why."""


class Ignored(AdapterError):
    """A valid upstream event that carries nothing Pollinate keeps (another entity of a
    Salesforce transaction, a HubSpot association change): answered as ignored, never as a
    refusal, and never a reason to drop its neighbours."""


class ResyncNeeded(Ignored):
    """An event that stands for changes it does not carry (a Salesforce gap or overflow, a
    HubSpot association change): the records it names must be fetched from the CRM
    (`record_ids`; empty: every record changed `since`)."""

    def __init__(
        self, message: str, record_ids: tuple[str, ...], since: datetime | None = None
    ) -> None:
        super().__init__(message)
        self.record_ids = record_ids
        self.since = since


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def require(mapping: Any, key: str, where: str) -> Any:
    if not isinstance(mapping, dict):
        raise AdapterError(f"{where}: expected an object, got {_kind(mapping)}")
    if key not in mapping or mapping[key] in (None, ""):
        raise AdapterError(f"{where}.{key} is required")
    return mapping[key]


def obj(value: Any, where: str) -> dict[str, Any]:
    """An optional object: absent or null is empty, anything but an object is refused."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AdapterError(f"{where}: expected an object, got {_kind(value)}")
    return value


def array(value: Any, where: str, max_items: int = MAX_CHANGES) -> list[Any]:
    """An optional array: absent or null is empty, anything but an array is refused."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise AdapterError(f"{where}: expected an array, got {_kind(value)}")
    if len(value) > max_items:
        raise AdapterError(f"{where}: at most {max_items} items, got {len(value)}")
    return value


def string(value: Any, where: str, max_length: int = IDENT_MAX) -> str:
    if not isinstance(value, str):
        raise AdapterError(f"{where}: expected a string, got {_kind(value)}")
    if len(value) > max_length:
        raise AdapterError(f"{where}: at most {max_length} characters")
    return value


def ident(value: Any, where: str) -> str:
    """An id as a CRM sends it: a string or an integer (HubSpot's ids are numbers)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # bounded as a string is (a 4,000-digit id was accepted, then parked)
    try:
        return clean_ident(string(value, where), where)
    except InputError as error:
        raise AdapterError(str(error)) from error


def optional_ident(value: Any, where: str) -> str | None:
    return None if value in (None, "") else ident(value, where)


def name(value: Any, where: str) -> str | None:
    """A deal's or customer's name: absent stays None; a name must keep a letter or digit."""
    if value in (None, ""):
        return None
    try:
        return clean_name(string(value, where), where)
    except InputError as error:
        raise AdapterError(str(error)) from error


def currency(value: Any, where: str) -> str | None:
    if value in (None, ""):
        return None
    try:
        return currency_code(string(value, where, 3).strip().upper(), where)
    except InputError as error:
        raise AdapterError(str(error)) from error


def country(value: Any, where: str) -> str | None:
    """An ISO 3166-1 country, alpha-2 or alpha-3, as its alpha-2 code."""
    if value in (None, ""):
        return None
    text = string(value, where, 3).strip().upper()
    try:
        return iso3_country(text, where) if len(text) == 3 else country_code(text, where)
    except InputError as error:
        raise AdapterError(str(error)) from error


def domain(value: Any, where: str) -> str | None:
    """A customer's website or domain, as its registrable domain (absent stays None)."""
    return None if value in (None, "") else normalise_domain(string(value, where, 2048))


# A number as CRMs write one, in JSON or as text: ASCII digits, a decimal point, an exponent.
CRM_NUMBER = re.compile(r"-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")


def to_decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise AdapterError(f"{where}: expected a number, got {_kind(value)}")
    if isinstance(value, float):
        value = repr(value)  # shortest round-trip text, then exact: 185000.0 -> Decimal('185000.0')
    text = str(value)
    # Cut to 64 characters, 0...012345 read ten times too small: a longer number is refused,
    # as is one Decimal reads but a CRM does not write ("1_000", " 100 ", "١٢٣", "+5").
    if len(text) > 64 or not (isinstance(value, Decimal) or CRM_NUMBER.fullmatch(text)):
        raise AdapterError(f"{where}: {text[:64]!r} is not a number of ASCII digits (at most 64)")
    try:
        amount = Decimal(text)
    except (InvalidOperation, ValueError) as error:
        raise AdapterError(f"{where}: {text[:64]!r} is not a number") from error
    if not amount.is_finite() or amount < 0:
        raise AdapterError(f"{where}: {str(value)[:64]!r} is not a non-negative amount")
    return amount


def money(value: Any, where: str, in_currency: str | None) -> Decimal:
    """An amount that fits the columns, with no more decimals than its currency allows."""
    try:
        return check_money(to_decimal(value, where), in_currency, where)
    except InputError as error:
        raise AdapterError(str(error)) from error


def from_epoch_ms(value: Any, where: str) -> datetime:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 16:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise AdapterError(f"{where}: expected epoch milliseconds, got {_kind(value)}")
    if not _EPOCH_MS_MIN <= value <= _EPOCH_MS_MAX:
        raise AdapterError(f"{where}: {value} is not epoch milliseconds between 1900 and 9999")
    return in_reach(datetime.fromtimestamp(value / 1000, tz=UTC), where)


def in_reach(value: When, where: str) -> When:
    """A CRM's date or moment within a hundred years of now: the platform adds windows to
    them (a close date's attribution lookback, a review's deadline from the creation stamp),
    and near the year 9999 there is no date after (found from outside: a close date of
    9999-12-31 was accepted, then parked by attribution; a CreatedDate of 9999-12-31 made
    every registration linked to the deal answer 500)."""
    try:
        return check_reach(value, where)
    except InputError as error:
        raise AdapterError(str(error)) from error


def parse_datetime(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise AdapterError(f"{where}: expected an ISO-8601 timestamp, got {_kind(value)}")
    try:
        parsed = datetime.fromisoformat(value[:64].replace("Z", "+00:00"))
    except ValueError as error:
        raise AdapterError(f"{where}: {value[:64]!r} is not an ISO-8601 timestamp") from error
    try:
        instant = check_instant(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC), where)
    except InputError as error:
        raise AdapterError(str(error)) from error
    return in_reach(instant, where)


def parse_date(value: Any, where: str) -> date | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise AdapterError(f"{where}: expected an ISO-8601 date, got {_kind(value)}")
    if "T" in value:
        return parse_datetime(value, where).date()
    try:
        day = date.fromisoformat(value[:32])
    except ValueError as error:
        raise AdapterError(f"{where}: {value[:32]!r} is not an ISO-8601 date") from error
    try:
        check_date(day, where)
    except InputError as error:
        raise AdapterError(str(error)) from error
    return in_reach(day, where)


# The deployment's own stages of a source (none configured): stage id or name, trimmed and
# lower-cased, -> the canonical stage.
NO_CUSTOM_STAGES: Mapping[str, DealStage] = MappingProxyType({})
# The stage an outcome alone stands for: an open stage the CRM says nothing more of is the
# first canonical one (status open is what closing registrations and attribution read).
OUTCOME_STAGES = {
    DealStatus.OPEN: DealStage.PROSPECTING,
    DealStatus.WON: DealStage.CLOSED_WON,
    DealStatus.LOST: DealStage.CLOSED_LOST,
}
# What a configured custom stage may be mapped to: an outcome, or a canonical stage.
STAGE_MEANINGS = {
    **{status.value: stage for status, stage in OUTCOME_STAGES.items()},
    **{stage.value: stage for stage in DealStage},
}
MAX_CUSTOM_STAGES = 1000


def custom_stages(value: Any, setting: str) -> dict[str, DealStage]:
    """A deployment's stage map (JSON object: a stage's id or name -> open, won, lost or a
    canonical stage), keyed as stages are looked up; a ValueError names the setting and the
    entry otherwise (the service does not start with it)."""
    if not isinstance(value, dict):
        raise ValueError(f"{setting}: expected a JSON object of stage -> open|won|lost")
    if len(value) > MAX_CUSTOM_STAGES:
        raise ValueError(f"{setting}: at most {MAX_CUSTOM_STAGES} stages")
    table = {}
    for key, meaning in value.items():
        stage = STAGE_MEANINGS.get(meaning.strip().lower()) if isinstance(meaning, str) else None
        name = key.strip().lower() if isinstance(key, str) else ""
        if stage is None or not name or len(name) > IDENT_MAX:
            raise ValueError(
                f"{setting}: {str(key)[:64]!r} -> {str(meaning)[:64]!r}: expected a stage id or"
                f" name (1-{IDENT_MAX} characters) -> one of {', '.join(STAGE_MEANINGS)}"
            )
        table[name] = stage
    return table


def map_stage(
    table: dict[str, DealStage],
    value: Any,
    where: str,
    custom: Mapping[str, DealStage] = NO_CUSTOM_STAGES,
    setting: str | None = None,
) -> DealStage:
    """The canonical stage of a CRM's stage id or name: the deployment's own map (`custom`,
    held in `setting`) first, then the source's defaults (`table`)."""
    key = string(value, where).strip().lower()
    stage = custom.get(key) or table.get(key)
    if stage is None:
        known = ", ".join(sorted(table))
        if custom:
            known += f", and the {len(custom)} of {setting}"
        how = f"; map it to open, won or lost in {setting}" if setting else ""
        raise AdapterError(f"{where}: unknown stage {value!r} (known: {known}{how})")
    return stage
