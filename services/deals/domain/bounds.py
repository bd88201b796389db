"""The bounds a rules-of-engagement policy's settings keep (domain/rules.py validates a
document against them). Plain values, no I/O."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from services.deals.domain.engagement import MAX_DAYS
from shared.inputs import Money, check_date

# Bounds a policy's settings keep, so that every date the rules compute from a moment of this
# era stays a date (a window of 10**20 days overflowed, a 500) and every stored version can be
# named in a URL, an event and a log line.
MAX_HOURS = 8784  # a leap year
MAX_BUSINESS_DAYS = 260  # a year of working days
MAX_EXTENSIONS = 100
MONEY_LIMIT = Decimal(10) ** 14  # the platform's money columns (shared/inputs.MONEY_MAX_DIGITS)
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$"

Days = Annotated[int, Field(le=MAX_DAYS)]  # lower bounds: rules_from_mapping's, each worded
Hours = Annotated[int, Field(le=MAX_HOURS)]
Limit = Annotated[Decimal, Field(ge=0, lt=MONEY_LIMIT)]
CooldownDays = Annotated[int, Field(ge=0, le=MAX_DAYS)]  # 0 turns the cooldown off

# What a proposed document must also keep, on top of what a stored version is read with
# (rules_from_mapping): versions stored before these checks are read as they were written then
# (a stored version is never judged again: one in force that failed would stop every
# registration), while a new proposal is held to the JSON it should be (found from outside:
# `true` read as 1, "1" as Monday, a holiday in year 1, a precedence of 10^30, `1_000` and
# Arabic-Indic digits read as limits).
COUNTS = (
    "protection_days",
    "extension_days",
    "max_extensions",
    "expiry_warning_days",
    "reregistration_cooldown_days",
    "review_reminder_hours",
    "review_overdue_grace_hours",
)
COUNT_MAPS = ("review_days", "hyperscaler_acceptance_hours")
MAX_PRECEDENCE = 100  # a rank among a handful of partner types
_AMOUNT = TypeAdapter(Money)


def proposal_problem(document: Mapping[str, Any]) -> str | None:
    """What makes a proposed document unfit beyond the policy's own validation (None: nothing),
    naming the setting."""
    counts = [(name, document[name]) for name in COUNTS if name in document]
    for name in COUNT_MAPS:
        counts += [(f"{name}.{k}", v) for k, v in _items(document.get(name))]
    counts += [
        (f"business_weekdays[{i}]", v) for i, v in enumerate(_list(document, "business_weekdays"))
    ]
    for type_name, rules in _items(document.get("partner_types")):
        for key, value in _items(rules):
            where = f"partner_types.{type_name}.{key}"
            if key == "protection_days" and value is not None:
                counts.append((where, value))
            elif key == "precedence" and not (_is_int(value) and 0 <= value <= MAX_PRECEDENCE):
                return f"{where} must be a JSON integer from 0 to {MAX_PRECEDENCE}"
            elif key == "exclusive" and not isinstance(value, bool):
                return f"{where} must be true or false"
    for where, value in counts:
        if not _is_int(value):
            return f"{where} must be a JSON integer, not {json.dumps(value, default=str)[:40]}"
    for index, holiday in enumerate(_list(document, "holidays")):
        try:
            check_date(date.fromisoformat(holiday), f"holidays[{index}]")
        except (TypeError, ValueError) as error:  # InputError is a ValueError
            return (
                str(error) if str(error).startswith("holidays") else f"holidays[{index}]: {error}"
            )
    limits = [
        (f"auto_approve_limits.{k}", v) for k, v in _items(document.get("auto_approve_limits"))
    ]
    if "review_auto_approve_limit" in document:
        limits.append(("review_auto_approve_limit", document["review_auto_approve_limit"]))
    for where, value in limits:
        try:
            _AMOUNT.validate_python(value)
        except ValidationError as error:
            return f"{where}: {error.errors(include_url=False)[0]['msg']}"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _items(value: Any) -> list[tuple[str, Any]]:
    return list(value.items()) if isinstance(value, dict) else []


def _list(document: Mapping[str, Any], name: str) -> list[Any]:
    value = document.get(name)
    return list(value) if isinstance(value, list) else []
