from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.events import as_utc
from shared.events.crm import DealStage


class AdapterError(ValueError):
    """The upstream payload cannot be mapped; the message says exactly why."""


def require(mapping: Any, key: str, where: str) -> Any:
    if not isinstance(mapping, dict):
        raise AdapterError(f"{where}: expected an object, got {type(mapping).__name__}")
    if key not in mapping or mapping[key] in (None, ""):
        raise AdapterError(f"{where}.{key} is required")
    return mapping[key]


def to_decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, float):
        value = repr(value)  # shortest round-trip text, then exact: 185000.0 -> Decimal('185000.0')
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError) as error:
        raise AdapterError(f"{where}: {value!r} is not a number") from error
    if not amount.is_finite() or amount < 0:
        raise AdapterError(f"{where}: {value!r} is not a non-negative amount")
    return amount


def from_epoch_ms(value: Any, where: str) -> datetime:
    if not isinstance(value, int):
        raise AdapterError(f"{where}: expected epoch milliseconds, got {value!r}")
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def parse_datetime(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise AdapterError(f"{where}: expected an ISO-8601 timestamp, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise AdapterError(f"{where}: {value!r} is not an ISO-8601 timestamp") from error
    return as_utc(parsed)


def parse_date(value: Any, where: str) -> date | None:
    if value in (None, ""):
        return None
    return (
        parse_datetime(value, where).date() if "T" in str(value) else date.fromisoformat(str(value))
    )


def map_stage(table: dict[str, DealStage], value: Any, where: str) -> DealStage:
    stage = table.get(str(value).strip().lower())
    if stage is None:
        known = ", ".join(sorted(table))
        raise AdapterError(f"{where}: unknown stage {value!r} (known: {known})")
    return stage
